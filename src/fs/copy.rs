//! Server-side copy: `copy_file_range(2)` (what coreutils `cp` asks for,
//! after FICLONE, which gets ENOTTY) of a whole file into a new or
//! truncated, empty file of this mount becomes one SMH copy request
//! (`PUT .../file/{dest}` with `{"copyFrom": src}`), so no byte passes
//! through the mount.
//!
//! Everything else (a range, a source with changes not yet uploaded, a
//! destination holding data, `conflict=` other than `overwrite`, more than
//! the kernel's 4 GiB per call) answers EOPNOTSUPP: the kernel (or `cp`)
//! then copies with read and write. Never ENOSYS, which would make the
//! kernel stop asking for good.
//!
//! The copy is SMH's: the destination gets the source's metadata too
//! (mode, owner, `localModificationTime`), as `cp -p` would give it.

use super::cache::Kind;
use super::core::{FileHandle, SmhFs};
use super::error::{FsError, FsResult};
use super::openfile::Content;
use crate::smh::ConflictStrategy;

impl SmhFs {
    /// `copy_file_range` of `len` bytes from `fh_in` at `off_in` to
    /// `fh_out` at `off_out`; the bytes copied.
    pub async fn copy_range(
        &self,
        fh_in: FileHandle,
        off_in: u64,
        fh_out: FileHandle,
        off_out: u64,
        len: u64,
    ) -> FsResult<u64> {
        let ((ino_in, _), (ino_out, writer)) = {
            let h = self.handles.lock();
            let of = |fh: FileHandle| h.get(&fh.0).map(|h| (h.ino, h.writer));
            (
                of(fh_in).ok_or(FsError::BadHandle)?,
                of(fh_out).ok_or(FsError::BadHandle)?,
            )
        };
        if !writer || ino_in == ino_out {
            return Err(FsError::NotCopied);
        }
        self.writable()?;
        if let Some(of) = self.open_file(ino_in) {
            // The server's content must be the source's content.
            if of.lock().await.content() != Content::Clean {
                return Err(FsError::NotCopied);
            }
        }
        let (src, dst) = (self.path_of(ino_in)?, self.path_of(ino_out)?);
        let meta = self.resolve_remote(&src).await?.ok_or(FsError::NotFound)?;
        if meta.kind != Kind::File {
            return Err(FsError::NotCopied);
        }
        if off_in >= meta.size {
            return Ok(0);
        }
        let whole = off_in == 0 && off_out == 0 && len >= meta.size;
        if !whole || self.cfg.conflict != ConflictStrategy::Overwrite {
            return Err(FsError::NotCopied);
        }
        let of = self.open_file(ino_out).ok_or(FsError::BadHandle)?;
        let mut of = of.lock().await;
        if !of.is_empty_new() {
            return Err(FsError::NotCopied);
        }
        let _in_flight = self.in_flight.begin();
        let copied = self
            .client
            .copy_file(&src, &dst, ConflictStrategy::Overwrite)
            .await;
        if let Err(e) = copied {
            // The read/write path tries again and reports what it finds.
            tracing::warn!(%src, %dst, "server-side copy failed: {e}; copying through the mount");
            return Err(FsError::NotCopied);
        }
        if let Some(old) = of.server_copied() {
            old.remove();
        }
        self.journal_forget(&mut of);
        self.local.lock().remove(&ino_out);
        self.attrs.remove(&dst);
        match self.client.stat(&dst).await {
            Ok(Some(info)) => self.note_entry(&dst, super::cache::Meta::from_info(&info)),
            _ => self.invalidate_entry(&dst),
        }
        tracing::debug!(%src, %dst, size = meta.size, "copied on the server");
        Ok(meta.size)
    }
}
