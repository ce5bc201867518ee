//! The open-file side of unlink and rename: a file that leaves the
//! namespace while open stays readable through its handles (content only
//! the server had is staged first) and is never uploaded; a file not on
//! the server yet is renamed locally, and the server file it replaces goes
//! at once. The files' open states are held locked across the change, so
//! no background upload meanwhile goes to the old name.

use super::core::{OpenFileRef, SmhFs};
use super::error::FsResult;
use super::openfile::OpenFile;
use crate::smh::{ConflictStrategy, SmhPath};

/// A file's open state, locked across a namespace change.
pub(super) struct HeldFile {
    pub(super) ino: u64,
    of: OpenFileRef,
    pub(super) guard: tokio::sync::OwnedMutexGuard<OpenFile>,
}

impl SmhFs {
    /// The open state of `ino`, locked, if it has one.
    pub(super) async fn lock_if_open(&self, ino: Option<u64>) -> Option<HeldFile> {
        let ino = ino?;
        let of = self.open_file(ino)?;
        let guard = of.clone().lock_owned().await;
        Some(HeldFile { ino, of, guard })
    }

    /// The open states of two files, locked in inode order (so two
    /// renames of the same pair cannot deadlock).
    pub(super) async fn lock_pair(
        &self,
        a: Option<u64>,
        b: Option<u64>,
    ) -> (Option<HeldFile>, Option<HeldFile>) {
        if a > b {
            let hb = self.lock_if_open(b).await;
            (self.lock_if_open(a).await, hb)
        } else {
            let ha = self.lock_if_open(a).await;
            (ha, self.lock_if_open(b).await)
        }
    }

    /// The held file at `path` is about to leave the namespace (unlink,
    /// or replaced by a rename): content only the server holds is staged
    /// first, so open handles keep reading it (POSIX). Returns whether
    /// the server may hold a version to remove.
    pub(super) async fn before_unlink(&self, h: &mut HeldFile, path: &SmhPath) -> bool {
        let g = &mut h.guard;
        if g.needs_staging_to_unlink() {
            match self.ensure_staged(path, g).await {
                Ok(()) => {
                    if let Some(st) = &g.staged {
                        self.note_local(h.ino, st);
                    }
                }
                Err(e) => {
                    tracing::warn!(%path, "unlinked while open; its content could not be kept for the open handles: {e}");
                }
            }
        }
        g.remote()
    }

    /// The held file left the namespace: its open state is unlinked, never
    /// uploaded or journaled, and goes with the last handle.
    pub(super) fn unlinked(&self, h: HeldFile) {
        let HeldFile { ino, of, mut guard } = h;
        guard.unlinked();
        self.journal_forget(&mut guard);
        if guard.handles() == 0 {
            // A pending (write-back) file nobody has open.
            if let Some(st) = guard.staged.take() {
                st.remove();
            }
            self.forget_open_file(ino, &of);
        }
    }

    /// Moves the file `from` (open state `of`, if any) to `to` on the
    /// server; returns where it went. `target_remote`: the server may hold
    /// a file at `to` that the rename replaces.
    pub(super) async fn rename_file(
        &self,
        from: &SmhPath,
        to: &SmhPath,
        of: Option<&OpenFile>,
        strategy: ConflictStrategy,
        target_remote: bool,
    ) -> FsResult<SmhPath> {
        let remote = of.is_none_or(OpenFile::remote);
        let pending = of.is_some_and(OpenFile::is_dirty);
        if remote {
            match self.client.move_file(from, to, strategy).await {
                // Content still to upload and no older version on the
                // server (adopted from the journal, or removed there).
                Err(e) if e.is_not_found() && pending => {}
                r => return Ok(r?),
            }
        }
        // Not on the server (yet): the upload at close goes to the new
        // name. The file it replaces must go now, or renaming away again
        // would leave it on the server.
        if target_remote && strategy == ConflictStrategy::Overwrite {
            match self.client.delete_file(to, self.cfg.permanent_delete).await {
                Err(e) if e.is_not_found() => {}
                r => r?,
            }
        }
        Ok(to.clone())
    }
}
