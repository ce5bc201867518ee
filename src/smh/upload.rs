//! The SMH upload flow: begin (with instant-upload hashes) -> PUT parts ->
//! confirm with CRC-64; status, renew and abort for resuming.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};

use super::client::{decode_json, error_chain, error_from_response, ApiCall, SmhClient};
use super::codes;
use super::error::{Result, SmhError};
use super::hash::{ContentHasher, ContentHashes, INSTANT_UPLOAD_MIN_SIZE};
use super::part_source::{PartBody, PlainFile, SharedSource, Source};
use super::path::SmhPath;
use super::redact::redact_url;
use super::telemetry::{self, RequestKind};
use super::types::*;

/// SMH allows at most this many parts per upload.
pub const MAX_PARTS: u64 = 10_000;
const MIB: u64 = 1024 * 1024;
/// Renew a ticket this long before it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(30);

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

/// Where a sent upload is confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmAs {
    /// As planned: at the plan's path with its strategy.
    Planned,
    /// Not over the file at the plan's path: confirmed next to it (with
    /// `rename`) and then moved to this path (with `rename`, in case it
    /// exists). If the plan's path is free by then, it stays there.
    Elsewhere(SmhPath),
    /// Not at all: the task is aborted and the upload fails with
    /// [`SmhError::Superseded`].
    Refused(String),
}

/// Asked with the plan after the last part was accepted, before the
/// confirm; an error fails the upload (the task is left for a resume).
pub type ConfirmHook =
    Arc<dyn Fn(UploadPlan) -> BoxFuture<'static, Result<ConfirmAs>> + Send + Sync>;

/// Called with the byte count of each part (or simple body) the server
/// accepted, for progress display.
pub type ProgressHook = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Clone)]
pub struct UploadOptions {
    pub strategy: ConflictStrategy,
    /// Smallest part size; grown so a file never needs more than 10 000 parts.
    pub part_size: u64,
    /// Part PUTs in flight at once.
    pub concurrency: usize,
    pub local_modification_time: Option<String>,
    /// Custom metadata stored with the new version (`x-smh-meta-*`).
    pub meta: super::types::MetaData,
    pub on_plan: Option<PlanHook>,
    pub on_progress: Option<ProgressHook>,
    /// Asked once the data is sent, just before the confirm.
    pub before_confirm: Option<ConfirmHook>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            strategy: ConflictStrategy::Rename,
            part_size: 8 * 1024 * 1024,
            concurrency: 4,
            local_modification_time: None,
            meta: Default::default(),
            on_plan: None,
            on_progress: None,
            before_confirm: None,
        }
    }
}

/// Part size for a file: at least `min` (and 1 MiB), grown in whole MiB so
/// the part count stays within [`MAX_PARTS`].
pub fn part_size_for(size: u64, min: u64) -> u64 {
    let min = min.max(MIB);
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    min.max(needed)
}

pub(super) fn part_count(size: u64, part_size: u64) -> u32 {
    size.div_ceil(part_size).max(1) as u32
}

/// Byte range of part `n` (from 1).
fn part_range(n: u32, part_size: u64, size: u64) -> (u64, u64) {
    let start = (n as u64 - 1) * part_size;
    (start, part_size.min(size - start))
}

/// Time left on a ticket; `None` without (or with an unreadable) expiration.
fn ticket_left(t: &UploadTicket) -> Option<Duration> {
    super::time::until(t.expiration.as_deref()?)
}

fn ticket_expires_soon(t: &UploadTicket) -> bool {
    ticket_left(t).is_some_and(|d| d < RENEW_MARGIN)
}

/// Renewal margin of a ticket just obtained: [`RENEW_MARGIN`], or a third
/// of its life for short-lived tickets (renewing replaces the credentials,
/// so renewing too eagerly would fail the parts in flight).
fn renew_margin(t: &UploadTicket) -> Duration {
    ticket_left(t).map_or(RENEW_MARGIN, |l| RENEW_MARGIN.min(l / 3))
}

/// At most this many 403-driven renewals per part.
const MAX_403_RENEWALS: u32 = 8;

/// The ticket shared by concurrent part uploads, with a generation so that
/// one 403 leads to one renew, and its renewal margin.
struct SharedTicket {
    ticket: tokio::sync::RwLock<(u64, UploadTicket, Duration)>,
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
        if path.is_root() {
            return Err(SmhError::InvalidPath(
                "cannot upload to the root itself".into(),
            ));
        }
        let method = match kind {
            UploadKind::Simple => Method::PUT,
            UploadKind::Multipart => Method::POST,
        };
        let mut call = ApiCall::new(RequestKind::Begin, method, self.space_path("file", path));
        if kind == UploadKind::Multipart {
            call = call.flag("multipart");
        }
        call = call.query("conflict_resolution_strategy", strategy.as_str());
        if let Some(size) = filesize {
            call = call.query("filesize", size.to_string());
        }
        for (name, value) in &body.meta {
            call.headers
                .push((format!("x-smh-meta-{name}").into(), value.clone()));
        }
        let call = call.json(body);
        let where_ = self.space_path("file", path);
        let resp = self.call(call).await?;
        match resp.status() {
            StatusCode::OK => Ok(BeginOutcome::Done(decode_json(resp, &where_).await?)),
            StatusCode::ACCEPTED => Ok(BeginOutcome::BeginningHashMatched),
            StatusCode::CREATED => Ok(BeginOutcome::Ticket(decode_json(resp, &where_).await?)),
            other => Err(SmhError::Malformed {
                url: where_,
                message: format!("unexpected status {other} from upload begin"),
            }),
        }
    }

    /// Object URL of a ticket; the scheme follows the endpoint's.
    fn object_url(&self, ticket: &UploadTicket, part: Option<u32>) -> String {
        let mut url = format!("{}://{}{}", self.scheme(), ticket.domain, ticket.path);
        if let Some(n) = part {
            let id = ticket.upload_id.as_deref().unwrap_or_default();
            let id = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
            url.push_str(&format!("?partNumber={n}&uploadId={id}"));
        }
        url
    }

    /// One PUT to the object store with the ticket's exact headers; retried
    /// for 5xx/429/connection errors, never for 403 (the caller renews).
    async fn put_to_object_store(
        &self,
        ticket: &UploadTicket,
        part: Option<u32>,
        body: PartBody,
    ) -> Result<()> {
        let url = self.object_url(ticket, part);
        // Only worked out when something is shown (errors).
        let shown = || redact_url(&url);
        let max = self.config().retry.max_retries;
        let kind = if part.is_some() {
            RequestKind::Part
        } else {
            RequestKind::Object
        };
        let mut attempt = 0;
        loop {
            let mut req = self
                .inner
                .http
                .put(&url)
                .header(reqwest::header::CONTENT_LENGTH, body.len())
                .body(body.to_body());
            for (k, v) in ticket.header_pairs() {
                req = req.header(k, v);
            }
            let started = std::time::Instant::now();
            let resp = req.send().await;
            let status = resp.as_ref().ok().map(|r| r.status().as_u16());
            let id = resp
                .as_ref()
                .ok()
                .and_then(|r| telemetry::request_id(r.headers()));
            telemetry::exchange(kind, status, started.elapsed(), id, shown);
            let err = match resp {
                Ok(resp) if resp.status().is_success() => {
                    telemetry::uploaded(body.len());
                    return Ok(());
                }
                Ok(resp) => error_from_response(resp).await,
                Err(e) => SmhError::Network {
                    url: shown(),
                    message: error_chain(&e),
                },
            };
            if err.is_retryable() && attempt < max {
                let d = self.backoff(attempt);
                telemetry::retry(kind, d);
                tracing::warn!(url = %shown(), error = %err, retry_in = ?d, "object PUT failed; retrying");
                tokio::time::sleep(d).await;
                attempt += 1;
                continue;
            }
            return Err(err);
        }
    }

    /// PUT one part (`part_number` from 1) with exactly the ticket's headers.
    pub async fn put_part(
        &self,
        ticket: &UploadTicket,
        part_number: u32,
        body: Bytes,
    ) -> Result<()> {
        if part_number == 0 || part_number as u64 > MAX_PARTS {
            return Err(SmhError::Upload(format!(
                "part number {part_number} out of range"
            )));
        }
        self.put_to_object_store(ticket, Some(part_number), PartBody::Bytes(body))
            .await
    }

    /// PUT the whole body of a simple upload.
    pub async fn put_object(&self, ticket: &UploadTicket, body: Bytes) -> Result<()> {
        self.put_to_object_store(ticket, None, PartBody::Bytes(body))
            .await
    }

    fn upload_task_path(&self, confirm_key: &str) -> Result<String> {
        let key = SmhPath::parse(confirm_key)?;
        if key.segments().len() != 1 {
            return Err(SmhError::InvalidPath(format!(
                "bad confirm key {confirm_key:?}"
            )));
        }
        Ok(self.space_path("file", &key))
    }

    pub async fn confirm_upload(
        &self,
        confirm_key: &str,
        body: &ConfirmBody,
        strategy: Option<ConflictStrategy>,
    ) -> Result<FileMeta> {
        let mut call = ApiCall::new(
            RequestKind::Confirm,
            Method::POST,
            self.upload_task_path(confirm_key)?,
        )
        .flag("confirm");
        if let Some(s) = strategy {
            call = call.query("conflict_resolution_strategy", s.as_str());
        }
        self.call_json(call.json(body)).await
    }

    pub async fn upload_status(&self, confirm_key: &str) -> Result<UploadStatus> {
        let call = ApiCall::new(
            RequestKind::Status,
            Method::GET,
            self.upload_task_path(confirm_key)?,
        )
        .flag("upload");
        self.call_json(call).await
    }

    pub async fn renew_upload(&self, confirm_key: &str) -> Result<UploadTicket> {
        let call = ApiCall::new(
            RequestKind::Renew,
            Method::POST,
            self.upload_task_path(confirm_key)?,
        )
        .flag("renew");
        let t: UploadTicket = self.call_json(call).await?;
        tracing::debug!(expiration = ?t.expiration, "upload ticket renewed");
        Ok(t)
    }

    pub async fn abort_upload(&self, confirm_key: &str) -> Result<()> {
        let call = ApiCall::new(
            RequestKind::Abort,
            Method::DELETE,
            self.upload_task_path(confirm_key)?,
        )
        .flag("upload");
        self.call(call).await.map(drop)
    }

    /// The whole flow for a local file read through the page cache (see
    /// [`upload_from`](Self::upload_from) for other sources).
    pub async fn upload_file(
        &self,
        path: &SmhPath,
        source: &Path,
        hashes: Option<ContentHashes>,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        self.upload_from(path, PlainFile::shared(source)?, hashes, opts)
            .await
    }

    /// The whole flow for the content of `source`. `hashes` may be given
    /// when already computed while it was written (saves a read of it).
    pub async fn upload_from(
        &self,
        path: &SmhPath,
        source: SharedSource,
        hashes: Option<ContentHashes>,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        let size = source.size()?;
        let hashes = match hashes {
            Some(h) if h.size == size => h,
            _ => hash_source(source.clone(), size).await?,
        };
        self.upload_source(path, Source::Parts(source), hashes, opts)
            .await
    }

    /// The whole flow for content in memory whose hashes are known.
    pub async fn upload_bytes(
        &self,
        path: &SmhPath,
        data: Bytes,
        hashes: ContentHashes,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        if hashes.size != data.len() as u64 {
            return Err(SmhError::Upload(format!(
                "hashes are of {} bytes, the body has {}",
                hashes.size,
                data.len()
            )));
        }
        self.upload_source(path, Source::Bytes(data), hashes, opts)
            .await
    }

    async fn upload_source(
        &self,
        path: &SmhPath,
        source: Source,
        hashes: ContentHashes,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        let size = hashes.size;
        let part_size = part_size_for(size, opts.part_size);
        let kind = if size <= part_size {
            UploadKind::Simple
        } else {
            UploadKind::Multipart
        };
        let mut body = BeginBody {
            size: Some(size.to_string()),
            local_modification_time: opts.local_modification_time.clone(),
            meta: opts.meta.clone(),
            ..Default::default()
        };
        // Instant upload (§4.12): beginningHash first; fullHash only after a 202.
        if size >= INSTANT_UPLOAD_MIN_SIZE {
            body.beginning_hash = Some(hashes.beginning_hash.clone());
        }
        let mut outcome = self
            .begin_upload(path, kind, &body, opts.strategy, Some(size))
            .await?;
        if let BeginOutcome::BeginningHashMatched = outcome {
            body.full_hash = Some(hashes.full_hash.clone());
            outcome = self
                .begin_upload(path, kind, &body, opts.strategy, Some(size))
                .await?;
        }
        let ticket = match outcome {
            BeginOutcome::Done(meta) => {
                telemetry::instant_upload(size);
                tracing::info!(path = %path, size, "instant upload: content already stored, no data sent");
                return Ok(meta);
            }
            BeginOutcome::Ticket(t) => t,
            BeginOutcome::BeginningHashMatched => {
                return Err(SmhError::Malformed {
                    url: self.space_path("file", path),
                    message: "begin answered 202 to a request carrying fullHash".into(),
                })
            }
        };
        let confirm_key = ticket
            .confirm_key
            .clone()
            .ok_or_else(|| SmhError::Malformed {
                url: self.space_path("file", path),
                message: "upload ticket without confirmKey".into(),
            })?;
        let plan = UploadPlan {
            path: path.clone(),
            kind_multipart: kind == UploadKind::Multipart,
            confirm_key,
            size,
            part_size,
            part_count: part_count(size, part_size),
            hashes,
            strategy: opts.strategy,
        };
        if let Some(hook) = &opts.on_plan {
            hook(&plan).map_err(SmhError::Io)?;
        }
        match kind {
            UploadKind::Simple => {
                let data = source.part(0, size)?;
                if let Err(e) = self.put_to_object_store(&ticket, None, data.clone()).await {
                    if e.status() != Some(403) {
                        return Err(e);
                    }
                    // Expired signature on a simple upload: begin again (§4.8).
                    tracing::info!(path = %path, "object PUT refused (403); beginning again");
                    let body = BeginBody {
                        size: Some(size.to_string()),
                        local_modification_time: opts.local_modification_time.clone(),
                        meta: opts.meta.clone(),
                        ..Default::default()
                    };
                    let BeginOutcome::Ticket(t) = self
                        .begin_upload(path, kind, &body, opts.strategy, Some(size))
                        .await?
                    else {
                        return Err(SmhError::Upload(
                            "second begin did not return a ticket".into(),
                        ));
                    };
                    self.put_to_object_store(&t, None, data).await?;
                    if let Some(p) = &opts.on_progress {
                        p(size);
                    }
                    let key = t.confirm_key.clone().unwrap_or_default();
                    return self.finish(&key, &plan, opts).await;
                }
                if let Some(p) = &opts.on_progress {
                    p(size);
                }
            }
            UploadKind::Multipart => {
                let parts: Vec<u32> = (1..=plan.part_count).collect();
                self.send_parts(&plan, ticket, source, parts, opts).await?;
            }
        }
        self.finish(&plan.confirm_key, &plan, opts).await
    }

    /// Sends `parts` in parallel, renewing the ticket before expiry and after
    /// a 403; returns the ticket as last renewed.
    pub(super) async fn send_parts(
        &self,
        plan: &UploadPlan,
        ticket: UploadTicket,
        source: Source,
        parts: Vec<u32>,
        opts: &UploadOptions,
    ) -> Result<UploadTicket> {
        let margin = renew_margin(&ticket);
        let shared = Arc::new(SharedTicket {
            ticket: tokio::sync::RwLock::new((0, ticket, margin)),
        });
        let concurrency = opts.concurrency.max(1);
        futures::stream::iter(parts)
            .map(|n| {
                let shared = shared.clone();
                let source = source.clone();
                async move {
                    let (offset, len) = part_range(n, plan.part_size, plan.size);
                    let data = source.part(offset, len)?;
                    let mut refused = 0;
                    // Once per part: a ticket shorter-lived than the margin
                    // would otherwise be renewed forever.
                    let mut renewed_early = false;
                    loop {
                        let (generation, ticket, margin) = shared.ticket.read().await.clone();
                        if !renewed_early && ticket_left(&ticket).is_some_and(|l| l < margin) {
                            renewed_early = true;
                            self.renew_shared(&shared, generation, &plan.confirm_key)
                                .await?;
                            continue;
                        }
                        match self
                            .put_to_object_store(&ticket, Some(n), data.clone())
                            .await
                        {
                            Ok(()) => {
                                if let Some(p) = &opts.on_progress {
                                    p(len);
                                }
                                return Ok::<(), SmhError>(());
                            }
                            Err(e) if e.status() == Some(403) && refused < MAX_403_RENEWALS => {
                                tracing::info!(
                                    part = n,
                                    "part PUT refused (403); renewing the upload ticket"
                                );
                                // A renewal by another part since we read the
                                // ticket is reused, not repeated.
                                refused += 1;
                                self.renew_shared(&shared, generation, &plan.confirm_key)
                                    .await?;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            })
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        let last = shared.ticket.read().await.1.clone();
        Ok(last)
    }

    async fn renew_shared(
        &self,
        shared: &SharedTicket,
        seen: u64,
        confirm_key: &str,
    ) -> Result<()> {
        let mut guard = shared.ticket.write().await;
        if guard.0 != seen {
            return Ok(()); // another part already renewed it
        }
        let fresh = self.renew_upload(confirm_key).await?;
        let margin = renew_margin(&fresh);
        *guard = (seen + 1, fresh, margin);
        Ok(())
    }

    /// Continues an interrupted multipart upload of a local file read
    /// through the page cache (see [`resume_from`](Self::resume_from)).
    pub async fn resume_upload(
        &self,
        plan: &UploadPlan,
        source: &Path,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        self.resume_from(plan, PlainFile::shared(source)?, opts)
            .await
    }

    /// Continues an interrupted multipart upload: asks the server which parts
    /// it holds, sends the rest from `source`, confirms.
    pub async fn resume_from(
        &self,
        plan: &UploadPlan,
        source: SharedSource,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        let size = source.size()?;
        if size != plan.size {
            return Err(SmhError::Upload(format!(
                "the staged file is {size} bytes, the plan says {}",
                plan.size
            )));
        }
        let status = match self.upload_status(&plan.confirm_key).await {
            Ok(s) => s,
            Err(e)
                if e.code() == Some(codes::UPLOAD_NOT_FOUND)
                    || e.code() == Some(codes::CONFIRM_KEY_NOT_FOUND) =>
            {
                tracing::info!(path = %plan.path, "upload task is gone on the server; uploading again");
                let opts = UploadOptions {
                    strategy: plan.strategy,
                    ..opts.clone()
                };
                return self
                    .upload_from(&plan.path, source, Some(plan.hashes.clone()), &opts)
                    .await;
            }
            Err(e) => return Err(e),
        };
        self.resume_with(plan, source, status, opts).await
    }

    /// Continues an upload whose task `status` the server just reported.
    pub(super) async fn resume_with(
        &self,
        plan: &UploadPlan,
        source: SharedSource,
        status: UploadStatus,
        opts: &UploadOptions,
    ) -> Result<FileMeta> {
        if status.confirmed {
            return self.confirmed_meta(&plan.confirm_key, plan).await;
        }
        if !plan.kind_multipart {
            // A simple upload has no parts to resume: start it over.
            let opts = UploadOptions {
                strategy: plan.strategy,
                ..opts.clone()
            };
            return self
                .upload_from(&plan.path, source, Some(plan.hashes.clone()), &opts)
                .await;
        }
        let mut have = vec![false; plan.part_count as usize + 1];
        for p in &status.parts {
            if p.part_number == 0 || p.part_number > plan.part_count {
                continue;
            }
            let (_, expected) = part_range(p.part_number, plan.part_size, plan.size);
            if p.size == expected {
                have[p.part_number as usize] = true;
            } else {
                tracing::warn!(
                    part = p.part_number,
                    stored = p.size,
                    expected,
                    "stored part has the wrong size; sending it again"
                );
            }
        }
        let missing: Vec<u32> = (1..=plan.part_count)
            .filter(|n| !have[*n as usize])
            .collect();
        tracing::info!(path = %plan.path, missing = missing.len(), total = plan.part_count, "resuming upload");
        if let Some(p) = &opts.on_progress {
            let held: u64 = (1..=plan.part_count)
                .filter(|n| have[*n as usize])
                .map(|n| part_range(n, plan.part_size, plan.size).1)
                .sum();
            p(held);
        }
        if !missing.is_empty() {
            let ticket = match status.upload_part_info {
                Some(t) if !ticket_expires_soon(&t) => t,
                _ => self.renew_upload(&plan.confirm_key).await?,
            };
            self.send_parts(plan, ticket, Source::Parts(source), missing, opts)
                .await?;
        }
        self.finish(&plan.confirm_key, plan, opts).await
    }
}

/// Reads a whole source through the SMH hasher (when hashes were not
/// computed during the write).
async fn hash_source(source: SharedSource, size: u64) -> Result<ContentHashes> {
    tokio::task::spawn_blocking(move || {
        let mut h = ContentHasher::new();
        let step = source.chunk_len() as u64;
        let mut off = 0u64;
        while off < size {
            let n = step.min(size - off);
            h.update(&source.read_chunk(off, n as usize)?);
            off += n;
        }
        Ok(h.finish())
    })
    .await
    .map_err(|e| SmhError::Upload(format!("hash task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_keep_parts_within_limit() {
        assert_eq!(part_size_for(0, 8 * MIB), 8 * MIB);
        assert_eq!(part_size_for(100 * MIB, 8 * MIB), 8 * MIB);
        assert_eq!(part_size_for(10 * MIB, 100), MIB);
        let huge = 200 * 1024 * MIB; // 200 GiB
        let ps = part_size_for(huge, 8 * MIB);
        assert!(huge.div_ceil(ps) <= MAX_PARTS);
        assert_eq!(ps % MIB, 0);
    }

    #[test]
    fn ranges_cover_file() {
        let size = 5 * MIB + 3;
        let ps = MIB;
        let n = part_count(size, ps);
        assert_eq!(n, 6);
        let total: u64 = (1..=n).map(|i| part_range(i, ps, size).1).sum();
        assert_eq!(total, size);
        assert_eq!(part_range(6, ps, size), (5 * MIB, 3));
    }
}
