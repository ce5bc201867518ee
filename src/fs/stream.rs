//! Files larger than the cache (issue 15): a file written front to back
//! that outgrows half the cache bound is uploaded while it is written.
//!
//! Once the bytes it holds in the cache (holes not counted) pass
//! [`threshold`], a multipart task is begun
//! (no instant upload: its hashes are not known yet); every complete part
//! is then sent as soon as it is written, hashed into the staged file's
//! prefix hashes, and punched out of the staged file, so the cache holds a
//! window of about one part plus half the bound. The close sends the tail
//! and confirms (`upload.rs` → [`SmhFs::finish_stream`]).
//!
//! The journal entry carries the task (`StreamRecord`): after a crash a
//! file never closed is not stored (its task is aborted), a closed one is
//! completed from its tail; it is never uploaded from the holed staged file.

use super::core::SmhFs;
use super::error::{FsError, FsResult};
use super::journal::JournalEntry;
use super::lostupdate::{strategy_for, Target};
use super::memstage::Staged;
use super::openfile::{Content, JournalState, OpenFile};
use super::staging::StagedFile;
use super::uploader::{Body, Outgoing};
use crate::dio::DirectReader;
use crate::smh::{ConflictStrategy, ContentHashes, SmhError, SmhPath, UploadPlan};

const MIB: u64 = 1 << 20;

/// Staged size at which a front-to-back file starts streaming.
pub(crate) fn threshold(limit: u64) -> u64 {
    limit / 2
}

/// Part size of a streamed upload under a cache bound of `limit`: the
/// mount's part size, grown with the bound (so a large cache allows large
/// files: 10 000 parts) up to a quarter of it, whole MiB. `None` when the
/// configured part alone is over a quarter of the bound: no window of a
/// part fits beside the threshold, so such a mount does not stream (a file
/// over the bound gets ENOSPC as before).
pub(crate) fn part_size(limit: u64, configured: u64) -> Option<u64> {
    let configured = configured.max(MIB);
    let cap = limit / 4 / MIB * MIB;
    if configured > cap {
        return None;
    }
    Some(configured.max(limit / 64).min(cap) / MIB * MIB)
}

impl SmhFs {
    /// (threshold, part size) when the cache is bounded.
    fn stream_params(&self) -> Option<(u64, u64)> {
        let limit = self.dur.budget.limit();
        if limit == u64::MAX {
            return None;
        }
        part_size(limit, self.cfg.part_size).map(|p| (threshold(limit), p))
    }

    /// Whether a write of `len` more bytes to `st` must take the async path
    /// (where parts are sent): the FUSE-thread fast path never waits on
    /// the network.
    pub(crate) fn stream_due(&self, st: &StagedFile, len: u64) -> bool {
        self.stream_params()
            .is_some_and(|(t, _)| !st.stream_refused() && st.held() + len >= t)
    }

    /// After a write: begins the streamed upload of a large front-to-back
    /// file, and sends every complete part not sent yet.
    pub(crate) async fn stream_parts(&self, ino: u64, of: &mut OpenFile) -> FsResult<()> {
        let Some((threshold, part)) = self.stream_params() else {
            return Ok(());
        };
        if of.content() == Content::Unlinked {
            return Ok(());
        }
        let strategy = of.strategy(self.cfg.conflict);
        let Some(Staged::Disk(st)) = of.staged.as_mut() else {
            return Ok(());
        };
        if st.stream().is_none() {
            // What the cache holds decides: a sparse file's holes cost nothing.
            if st.held() < threshold || !tokio::task::block_in_place(|| st.streamable())? {
                return Ok(());
            }
            let path = self.path_of(ino)?;
            let opts = self.uploader().options(strategy, st.mtime, st.posix);
            let task = self.client.begin_streamed(&path, part, &opts).await?;
            tracing::info!(%path, part_size = part, "large file: uploading it while it is written");
            st.start_stream(task)?;
        }
        let opts = {
            let s = st.stream().expect("streaming");
            self.uploader().options(s.task.strategy, st.mtime, st.posix)
        };
        let mut sent_any = false;
        while let Some((n, _)) = st.next_part() {
            let src = DirectReader::shared(st.path())?;
            let task = &mut st.stream_mut().expect("streaming").task;
            self.client.put_streamed_part(task, n, src, &opts).await?;
            tokio::task::block_in_place(|| st.part_sent())?;
            sent_any = true;
        }
        if sent_any || of.journal.as_ref().is_some_and(|j| !j.plan) {
            // The entry names the task and the parts sent.
            self.journal_stream(ino, of)?;
        }
        Ok(())
    }

    /// Rewrites the open file's (incomplete) journal entry with its stream.
    fn journal_stream(&self, ino: u64, of: &mut OpenFile) -> FsResult<()> {
        let strategy = of.strategy(self.cfg.conflict);
        let Some(Staged::Disk(st)) = of.staged.as_ref() else {
            return Ok(());
        };
        let path = self.path_of(ino)?;
        let e = self.journal_entry(&path, st, None, strategy);
        self.dur.journal.write(&e)?;
        of.journal = Some(JournalState {
            id: e.id,
            plan: false,
            complete: false,
        });
        Ok(())
    }

    /// The close of a streamed file (from `upload_locked`, the version
    /// check done): the tail parts and the confirm, then the caches.
    pub(crate) async fn finish_stream(
        &self,
        path: &SmhPath,
        of: &mut OpenFile,
        target: &Target,
        strategy: ConflictStrategy,
        hashes: ContentHashes,
    ) -> FsResult<()> {
        let to = match target {
            Target::Same => path.clone(),
            Target::Copy(c) => c.clone(),
        };
        let Some(Staged::Disk(st)) = of.staged.as_ref() else {
            return Ok(());
        };
        let Some(s) = st.stream() else {
            return Ok(());
        };
        let mut plan = s.task.plan(hashes.clone());
        // Begun at the old name (renamed since) or to go to a conflict
        // copy: confirmed next to the begun name, then moved.
        plan.strategy = if plan.path == to {
            strategy_for(target, strategy)
        } else {
            ConflictStrategy::Rename
        };
        let id = st.id();
        let mut entry = self.journal_entry(path, st, Some(plan.clone()), strategy);
        entry.complete = true;
        if let Err(e) = self.dur.journal.write(&entry) {
            of.upload_failed(false);
            return Err(FsError::Io(e));
        }
        of.journal = Some(JournalState {
            id: id.clone(),
            plan: true,
            complete: true,
        });
        let sent = self.dur.tracker.start(&id, path, hashes.size, st.path());
        let res = self
            .send_streamed(&to, st.path(), &plan, (st.mtime, st.posix), sent)
            .await;
        let meta = match res {
            Ok(m) => m,
            Err(e) => {
                let (e, permanent) = self.dur.upload_failed(&id, e);
                of.upload_failed(!permanent);
                tracing::error!(%path, "streamed upload failed: {e}");
                if permanent {
                    entry.failed = Some(e.to_string());
                    let _ = self.dur.journal.write(&entry);
                }
                return Err(e);
            }
        };
        let (mtime, posix) = (st.mtime, st.posix);
        self.known.remember(&meta, &hashes);
        self.upload_done(path, of, &id, &meta, (mtime, posix));
        Ok(())
    }

    /// Sends what is left of a streamed file (its tail) and confirms it,
    /// then moves it to `to` if it was renamed while streaming.
    async fn send_streamed(
        &self,
        to: &SmhPath,
        staged: &std::path::Path,
        plan: &UploadPlan,
        (mtime, posix): (Option<std::time::SystemTime>, super::posix::PosixMeta),
        sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<crate::smh::types::FileMeta, SmhError> {
        let meta = self
            .uploader()
            .send(Outgoing {
                to,
                body: Body::Streamed { path: staged, plan },
                strategy: plan.strategy,
                mtime,
                posix,
                journal: None,
                sent,
                before_confirm: None,
            })
            .await
            .result?;
        self.move_streamed(meta, &plan.path, to).await
    }

    /// A streamed upload confirmed at `begun` that belongs at `to`.
    async fn move_streamed(
        &self,
        mut meta: crate::smh::types::FileMeta,
        begun: &SmhPath,
        to: &SmhPath,
    ) -> Result<crate::smh::types::FileMeta, SmhError> {
        if begun == to {
            return Ok(meta);
        }
        let stored = meta
            .path
            .clone()
            .and_then(|s| SmhPath::from_segments(s).ok())
            .unwrap_or_else(|| begun.clone());
        let moved = self
            .client
            .move_file(&stored, to, ConflictStrategy::Rename)
            .await?;
        if let Some(n) = moved.name() {
            meta.name = n.to_string();
        }
        meta.path = Some(moved.segments().to_vec());
        Ok(meta)
    }

    /// Content that will never be uploaded (a failed write, an unlink):
    /// its streamed task, if any, is aborted on the server.
    pub(crate) async fn abort_stream(&self, of: &OpenFile) {
        let Some(Staged::Disk(st)) = of.staged.as_ref() else {
            return;
        };
        if let Some(s) = st.stream() {
            if let Err(e) = self.client.abort_upload(&s.task.confirm_key).await {
                tracing::warn!("cannot abort a streamed upload task: {e}");
            }
        }
    }

    /// A journaled streamed upload not in the open-file table. Never
    /// closed: the task is aborted and the holed staged file dropped (the
    /// file is not stored). Closed: its tail is sent and it is confirmed.
    pub(crate) async fn upload_streamed_entry(&self, e: &JournalEntry) -> FsResult<()> {
        let Some(rec) = &e.stream else {
            return Ok(());
        };
        let plan = e.plan.as_ref().filter(|_| e.complete);
        let Some(plan) = plan else {
            tracing::warn!(path = %e.path, "a large file was still being written when smhfs stopped: it is not stored (its streamed upload is aborted)");
            match self.client.abort_upload(&rec.confirm_key).await {
                Ok(()) => {}
                Err(err) if err.status() == Some(404) => {}
                Err(err) => return Err(FsError::Smh(err)),
            }
            self.dur.journal.remove(&e.id)?;
            self.dur.tracker.done(&e.id);
            let _ = std::fs::remove_file(&e.staged);
            return Ok(());
        };
        let sent = self.dur.tracker.start(&e.id, &e.path, plan.size, &e.staged);
        let posix = super::posix::PosixMeta::from_meta_data(Some(&e.meta));
        let res = self
            .send_streamed(&e.path, &e.staged, plan, (e.mtime, posix), sent)
            .await;
        match res {
            Ok(_) => {
                tracing::info!(path = %e.path, size = plan.size, "journaled streamed upload completed");
                self.dur.journal.remove(&e.id)?;
                self.dur.tracker.done(&e.id);
                let _ = std::fs::remove_file(&e.staged);
                Ok(())
            }
            Err(err) => {
                let (err, permanent) = self.dur.upload_failed(&e.id, err);
                if permanent {
                    let mut ent = e.clone();
                    ent.failed = Some(err.to_string());
                    let _ = self.dur.journal.write(&ent);
                }
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_fits_the_bound() {
        assert_eq!(part_size(8 * MIB, 2 * MIB), Some(2 * MIB));
        assert_eq!(part_size(8 * MIB, 8 * MIB), None);
        assert_eq!(part_size(1 << 30, 8 * MIB), Some(16 * MIB));
        assert_eq!(part_size(10 << 30, 8 * MIB), Some(160 * MIB));
        assert_eq!(part_size(64 * MIB, 8 * MIB), Some(8 * MIB));
        assert_eq!(part_size(40 * MIB, 16 * MIB), None);
    }
}
