//! The SMH upload flow: begin (with instant-upload hashes) -> PUT parts ->
//! confirm with CRC-64; status, renew and abort for resuming.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::client::SmhClient;
use super::error::Result;
use super::hash::ContentHashes;
use super::path::SmhPath;
use super::types::*;

/// Simple (one PUT of the whole body) or multipart (numbered part PUTs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    Simple,
    Multipart,
}

/// What a begin call answered.
#[derive(Debug, Clone)]
pub enum BeginOutcome {
    /// 200: the content was already stored; the upload is complete.
    Done(FileMeta),
    /// 202: a file with this `beginningHash` exists; send `fullHash` next.
    BeginningHashMatched,
    /// 201: upload the data with this ticket, then confirm.
    Ticket(UploadTicket),
}

/// The parts of an upload, decided before the first byte is sent. Persisted
/// by the journal so an interrupted upload can be resumed part by part.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UploadPlan {
    pub path: SmhPath,
    pub kind_multipart: bool,
    pub confirm_key: String,
    pub size: u64,
    pub part_size: u64,
    pub part_count: u32,
    pub hashes: ContentHashes,
    pub strategy: ConflictStrategy,
}

/// Called with the plan once the ticket is known and before any part is
/// sent (the journal hook); an error aborts the upload.
pub type PlanHook = Arc<dyn Fn(&UploadPlan) -> std::io::Result<()> + Send + Sync>;

#[derive(Clone)]
pub struct UploadOptions {
    pub strategy: ConflictStrategy,
    /// Smallest part size; grown so a file never needs more than 10 000 parts.
    pub part_size: u64,
    /// Part PUTs in flight at once.
    pub concurrency: usize,
    pub local_modification_time: Option<String>,
    pub on_plan: Option<PlanHook>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            strategy: ConflictStrategy::Rename,
            part_size: 8 * 1024 * 1024,
            concurrency: 4,
            local_modification_time: None,
            on_plan: None,
        }
    }
}

impl SmhClient {
    pub async fn begin_upload(
        &self,
        path: &SmhPath,
        kind: UploadKind,
        body: &BeginBody,
        strategy: ConflictStrategy,
        filesize: Option<u64>,
    ) -> Result<BeginOutcome> {
        todo!()
    }

    /// PUT one part (`part_number` from 1) with exactly the ticket's headers.
    pub async fn put_part(
        &self,
        ticket: &UploadTicket,
        part_number: u32,
        body: Bytes,
    ) -> Result<()> {
        todo!()
    }

    /// PUT the whole body of a simple upload.
    pub async fn put_object(&self, ticket: &UploadTicket, body: Bytes) -> Result<()> {
        todo!()
    }

    pub async fn confirm_upload(
        &self,
        confirm_key: &str,
        body: &ConfirmBody,
        strategy: Option<ConflictStrategy>,
    ) -> Result<FileMeta> {
        todo!()
    }

    pub async fn upload_status(&self, confirm_key: &str) -> Result<UploadStatus> {
        todo!()
    }

    pub async fn renew_upload(&self, confirm_key: &str) -> Result<UploadTicket> {
        todo!()
    }

    pub async fn abort_upload(&self, confirm_key: &str) -> Result<()> {
        todo!()
    }

    /// The whole flow for a local file. `hashes` may be given when already
    /// computed while the file was written (saves a read of the file).
    pub async fn upload_file(
        &self,
        path: &SmhPath,
        source: &Path,
        hashes: Option<ContentHashes>,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        todo!()
    }

    /// Continues an interrupted multipart upload: asks the server which parts
    /// it holds, sends the rest, confirms.
    pub async fn resume_upload(
        &self,
        plan: &UploadPlan,
        source: &Path,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        todo!()
    }
}
