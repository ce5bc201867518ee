//! The uploader: sends one staged content to the server and returns what
//! the server confirmed. A leaf with explicit inputs (the client, the part
//! settings, an [`Outgoing`]); the core applies the result to the open file,
//! the journal and the caches (`upload.rs`, `writeback.rs`), as
//! mountpoint-s3's `fs.rs` applies its uploader's results.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::cache::format_time;
use super::journal::{Journal, JournalEntry};
use crate::dio::DirectReader;
use crate::smh::types::FileMeta;
use crate::smh::UploadPlan;
use crate::smh::{ConflictStrategy, ContentHashes, SmhClient, SmhError, SmhPath, UploadOptions};

/// What is sent.
pub(crate) enum Body<'a> {
    /// A staged file; `resume`: a begun upload of exactly this content.
    File {
        path: &'a Path,
        hashes: Option<ContentHashes>,
        resume: Option<&'a UploadPlan>,
    },
    /// The end of a streamed upload (`fs::stream`): the parts the server
    /// lacks, read from the staged file, then the confirm. Never restarted
    /// from scratch (the sent parts are not in the staged file).
    Streamed {
        path: &'a Path,
        plan: &'a UploadPlan,
    },
    /// Content held in memory, sent in one request.
    Bytes { data: Bytes, hashes: ContentHashes },
    /// Content the server already holds (a metadata change): instant
    /// upload only; a server asking for the data gets an error.
    Known { hashes: ContentHashes },
}

/// The body of a [`Body::Known`]: never read unless the server wants data.
struct Absent(u64);

impl crate::smh::PartSource for Absent {
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.0)
    }
    fn read_small(&self, _: u64, _: usize) -> std::io::Result<Bytes> {
        Err(absent())
    }
    fn read_chunk(&self, _: u64, _: usize) -> std::io::Result<Bytes> {
        Err(absent())
    }
    fn chunk_len(&self) -> usize {
        1 << 20
    }
}

fn absent() -> std::io::Error {
    std::io::Error::other("the server did not recognise the content (no instant upload)")
}

/// One upload: where, what, how names clash, and who hears about it.
pub(crate) struct Outgoing<'a> {
    pub(crate) to: &'a SmhPath,
    pub(crate) body: Body<'a>,
    pub(crate) strategy: ConflictStrategy,
    pub(crate) mtime: Option<SystemTime>,
    /// Mode/owner stored with the new version (`fs::posix`).
    pub(crate) posix: super::posix::PosixMeta,
    /// Journaled with the plan once the server assigned one (resumable).
    pub(crate) journal: Option<(Journal, JournalEntry)>,
    /// Bytes sent so far (the progress tracker's counter).
    pub(crate) sent: Arc<AtomicU64>,
    /// The version check just before the confirm (`lostupdate`).
    pub(crate) before_confirm: Option<crate::smh::ConfirmHook>,
}

/// Sends uploads with the mount's part settings.
pub(crate) struct Uploader<'a> {
    pub(crate) client: &'a SmhClient,
    pub(crate) part_size: u64,
    pub(crate) concurrency: usize,
}

/// The server's confirmation and the plan journaled on the way, if any.
pub(crate) struct Sent {
    pub(crate) result: Result<FileMeta, SmhError>,
    pub(crate) plan: Option<UploadPlan>,
}

impl Uploader<'_> {
    /// The client options of an upload (no journal hook).
    pub(crate) fn options(
        &self,
        strategy: ConflictStrategy,
        mtime: Option<SystemTime>,
        posix: super::posix::PosixMeta,
    ) -> UploadOptions {
        UploadOptions {
            strategy,
            part_size: self.part_size,
            concurrency: self.concurrency,
            local_modification_time: mtime.map(format_time),
            meta: {
                let mut m = posix.to_meta_data();
                if let Some(t) = mtime {
                    super::mtimens::mtime_meta(t, &mut m);
                }
                m
            },
            on_plan: None,
            on_progress: None,
            before_confirm: None,
        }
    }

    pub(crate) async fn send(&self, s: Outgoing<'_>) -> Sent {
        let recorded: Arc<parking_lot::Mutex<Option<UploadPlan>>> = Default::default();
        let on_plan = s.journal.map(|(journal, template)| {
            let recorded = recorded.clone();
            let hook: crate::smh::upload::PlanHook = Arc::new(move |plan: &UploadPlan| {
                *recorded.lock() = Some(plan.clone());
                let mut e = template.clone();
                e.plan = Some(plan.clone());
                journal.write(&e)
            });
            hook
        });
        let sent = s.sent;
        let opts = UploadOptions {
            strategy: s.strategy,
            part_size: self.part_size,
            concurrency: self.concurrency,
            local_modification_time: s.mtime.map(format_time),
            meta: {
                let mut m = s.posix.to_meta_data();
                if let Some(t) = s.mtime {
                    super::mtimens::mtime_meta(t, &mut m);
                }
                m
            },
            on_plan,
            on_progress: Some(Arc::new(move |n| {
                sent.fetch_add(n, Ordering::Relaxed);
            })),
            before_confirm: s.before_confirm,
        };
        let result = match s.body {
            // Part bodies are read around the page cache (O_DIRECT where
            // the pages are not cached): a staged file is read once.
            Body::File {
                path,
                hashes,
                resume,
            } => match (resume, DirectReader::shared(path)) {
                (_, Err(e)) => Err(e.into()),
                (Some(plan), Ok(src)) => self.client.resume_from(plan, src, &opts).await,
                (None, Ok(src)) => self.client.upload_from(s.to, src, hashes, &opts).await,
            },
            Body::Streamed { path, plan } => match DirectReader::shared(path) {
                Err(e) => Err(e.into()),
                Ok(src) => self.client.complete_streamed(plan, src, &opts).await,
            },
            Body::Known { hashes } => {
                let src = Arc::new(Absent(hashes.size));
                self.client
                    .upload_from(s.to, src, Some(hashes), &opts)
                    .await
            }
            Body::Bytes { data, hashes } => {
                self.client.upload_bytes(s.to, data, hashes, &opts).await
            }
        };
        let plan = recorded.lock().take();
        Sent { result, plan }
    }
}
