//! The state of one open (or pending) file, shared by all its handles, and
//! the rules for when a close uploads (README "What to expect").
//!
//! A leaf: it knows nothing of `SmhFs`. The core locks an [`OpenFile`],
//! asks it what a flush or release must do ([`OpenFile::on_flush`],
//! [`OpenFile::release_handle`]) and applies the answer; the fast paths on
//! the FUSE thread ask the same methods as their async twins.
//!
//! Close rules (issue 11), enforced here and in `SmhFs::flush_from`:
//! * a read-only handle's flush never uploads and reports nothing;
//! * a write error on the content (ENOSPC, EIO, cache bound) means it is
//!   never uploaded: every writer's close reports that errno, the last
//!   writer's release drops the content, the server keeps its version;
//! * a flush uploads dirty content only when it is the opener's last
//!   descriptor of the file (same process, no other descriptor of the file
//!   left in it): the `dup2`-then-close of `cmd > f` and a forked child's
//!   close do not upload; the upload happens at the last flush that carries
//!   data, or at the release of the last writer handle;
//! * a flush with nothing changed since the last upload is a no-op, so a
//!   logical write is uploaded once and never as an intermediate empty file;
//! * `fsync` always uploads;
//! * once this mount uploaded the file, later uploads of the same open file
//!   replace that version (never a conflict with itself).

use super::memstage::Staged;
use crate::smh::{ConflictStrategy, UploadPlan};

/// The local content relative to the server's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// Nothing to send: unchanged, or confirmed by the server.
    Clean,
    /// Changed and not confirmed. `fresh`: written since the last upload
    /// began (write-back waits its delay for such content).
    Dirty { fresh: bool },
    /// A write failed: the content is incomplete and never uploaded.
    WriteFailed { errno: i32 },
    /// Unlinked while open: readable through open handles, never uploaded
    /// or journaled.
    Unlinked,
}

/// Where the server's version of the file (if any) came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Created here, not on the server yet.
    Local,
    /// The server had it when it was opened (or created over).
    Server,
    /// Adopted from the upload journal at mount: the server may hold an
    /// older version, or none.
    Journal,
    /// This open file's own upload put it there.
    Ours,
}

/// The file's entry in the upload journal (`journal.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JournalState {
    pub(crate) id: String,
    /// The entry holds an upload plan (a begun upload).
    pub(crate) plan: bool,
    /// The entry says the content is complete (as of a close).
    pub(crate) complete: bool,
}

/// The last upload of the current content failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UploadFailure {
    /// Worth retrying in the background.
    pub(crate) transient: bool,
}

/// What a flush of one handle must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlushStep {
    /// Nothing to send (clean, unlinked, or a read-only handle).
    Nothing,
    /// Report the content's write error; never upload it.
    Report(i32),
    /// Dirty: upload if the caller is the opener's last descriptor.
    Upload,
}

/// What the release of one handle must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReleaseStep {
    Nothing,
    /// The last writer left incomplete content: dropped (errno for the log).
    Discard(i32),
    /// Dirty content nobody will close again: upload (or queue) it now.
    Upload,
}

/// Per-inode state while the file is open or its upload is pending.
#[derive(Debug)]
pub(crate) struct OpenFile {
    pub(crate) staged: Option<Staged>,
    content: Content,
    origin: Origin,
    handles: u32,
    writers: u32,
    pub(crate) journal: Option<JournalState>,
    /// A begun upload of the current content, to resume.
    pub(crate) plan: Option<UploadPlan>,
    failure: Option<UploadFailure>,
    /// The server version the content started from (filled from, or
    /// truncated over); an upload checks it is still the server's
    /// (`lostupdate.rs`). `None`: new here, or not known.
    pub(crate) base: Option<super::read::Version>,
}

impl OpenFile {
    pub(crate) fn new(origin: Origin) -> Self {
        Self {
            staged: None,
            content: Content::Clean,
            origin,
            handles: 0,
            writers: 0,
            journal: None,
            plan: None,
            failure: None,
            base: None,
        }
    }

    /// A journaled upload adopted at mount: complete content to send.
    pub(crate) fn resumed(staged: Staged, journal: JournalState, plan: Option<UploadPlan>) -> Self {
        Self {
            staged: Some(staged),
            content: Content::Dirty { fresh: false },
            journal: Some(journal),
            plan,
            ..Self::new(Origin::Journal)
        }
    }

    /// Made by `create` on the FUSE thread: new, empty, one writer handle.
    pub(crate) fn created(staged: Staged) -> Self {
        let mut of = Self::new(Origin::Local);
        of.recreated(staged);
        of.open_handle(true);
        of
    }

    /// `create` of the name: new, empty content (both create paths);
    /// returns the content it replaces.
    pub(crate) fn recreated(&mut self, staged: Staged) -> Option<Staged> {
        let old = self.staged.replace(staged);
        self.content = Content::Dirty { fresh: true };
        self.failure = None;
        self.plan = None;
        old
    }

    // ---- queries -------------------------------------------------------

    pub(crate) fn content(&self) -> Content {
        self.content
    }

    /// Changed and not confirmed (also after a failed upload).
    pub(crate) fn is_dirty(&self) -> bool {
        matches!(self.content, Content::Dirty { .. })
    }

    pub(crate) fn is_fresh(&self) -> bool {
        matches!(self.content, Content::Dirty { fresh: true })
    }

    pub(crate) fn write_error(&self) -> Option<i32> {
        match self.content {
            Content::WriteFailed { errno } => Some(errno),
            _ => None,
        }
    }

    /// The server may have a version of this file (so a rename or unlink
    /// must reach the server, not only the local state).
    pub(crate) fn remote(&self) -> bool {
        self.origin != Origin::Local
    }

    /// Open, with content only the server holds (nothing staged): to stay
    /// readable after an unlink it must be staged before the server's copy
    /// goes.
    pub(crate) fn needs_staging_to_unlink(&self) -> bool {
        self.handles > 0 && self.staged.is_none() && self.remote()
    }

    pub(crate) fn handles(&self) -> u32 {
        self.handles
    }

    /// Dirty and not given up on: a transient failure is retried.
    pub(crate) fn retry_pending(&self) -> bool {
        self.is_dirty() && self.failure.is_some_and(|f| f.transient)
    }

    /// Journaled for the current content with no plan and not complete:
    /// a write need not rewrite the entry (the FUSE-thread fast path).
    pub(crate) fn journal_is_open(&self) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|j| !j.plan && !j.complete)
    }

    /// The conflict strategy for uploading this file: the mount's, except
    /// over this open file's own earlier upload, which it simply replaces.
    pub(crate) fn strategy(&self, configured: ConflictStrategy) -> ConflictStrategy {
        match self.origin {
            Origin::Ours => ConflictStrategy::Overwrite,
            _ => configured,
        }
    }

    // ---- transitions ---------------------------------------------------

    pub(crate) fn open_handle(&mut self, writer: bool) {
        self.handles += 1;
        self.writers += u32::from(writer);
        if writer && self.origin == Origin::Ours {
            // A new writer writes over a version already on the server,
            // even one this open file uploaded (the kernel sends the last
            // handle's release after close() returned, so `echo b > f`
            // right after `echo a > f` can find this state): the mount's
            // strategy applies again (`rename` keeps both).
            self.origin = Origin::Server;
        }
    }

    /// The content was written or truncated (unlinked content stays so).
    pub(crate) fn written(&mut self) {
        if self.content != Content::Unlinked {
            self.content = Content::Dirty { fresh: true };
        }
        self.plan = None;
    }

    /// `create` or `O_TRUNC`: the content starts again (a write error of
    /// the old content no longer matters; unlinked content stays so).
    pub(crate) fn restarted(&mut self) {
        if self.content != Content::Unlinked {
            self.content = Content::Dirty { fresh: true };
        }
        self.failure = None;
        self.plan = None;
    }

    pub(crate) fn write_failed(&mut self, errno: i32) {
        if self.content != Content::Unlinked {
            self.content = Content::WriteFailed { errno };
        }
    }

    pub(crate) fn unlinked(&mut self) {
        self.content = Content::Unlinked;
        self.plan = None;
    }

    pub(crate) fn upload_started(&mut self) {
        if let Content::Dirty { .. } = self.content {
            self.content = Content::Dirty { fresh: false };
        }
        self.failure = None;
    }

    /// The server confirmed the content (the lock was held throughout).
    pub(crate) fn upload_confirmed(&mut self) {
        self.content = Content::Clean;
        self.origin = Origin::Ours;
        self.failure = None;
        self.plan = None;
    }

    pub(crate) fn upload_failed(&mut self, transient: bool) {
        self.failure = Some(UploadFailure { transient });
    }

    /// A chmod/chown/utimens of staged content: clean content must be
    /// sent again for it (true: it is to be sent; a write error or an
    /// unlink keeps the content from ever being sent).
    pub(crate) fn meta_changed(&mut self) -> bool {
        match self.content {
            Content::Clean => {
                self.content = Content::Dirty { fresh: true };
                true
            }
            Content::Dirty { .. } => true,
            Content::WriteFailed { .. } | Content::Unlinked => false,
        }
    }

    /// A new, empty file was filled by a copy on the server
    /// (`copy_file_range`): that copy is its content, nothing to upload.
    /// Returns the staged (empty) content it replaces.
    pub(crate) fn server_copied(&mut self) -> Option<Staged> {
        self.content = Content::Clean;
        self.origin = Origin::Ours;
        self.failure = None;
        self.plan = None;
        self.base = None;
        self.staged.take()
    }

    /// Empty staged content nothing was written to since it was created
    /// or truncated: a server copy may fill it.
    pub(crate) fn is_empty_new(&self) -> bool {
        matches!(self.content, Content::Dirty { .. })
            && self.failure.is_none()
            && self.staged.as_ref().is_some_and(|s| s.size() == 0)
    }

    /// Given up on (a permanent failure, kept on disk): no longer shown.
    pub(crate) fn abandoned(&mut self) {
        self.content = Content::Clean;
    }

    /// What a flush of a handle (`writer`: opened for writing) must do.
    pub(crate) fn on_flush(&self, writer: bool) -> FlushStep {
        if !writer {
            return FlushStep::Nothing;
        }
        match self.content {
            Content::WriteFailed { errno } => FlushStep::Report(errno),
            Content::Dirty { .. } => FlushStep::Upload,
            Content::Clean | Content::Unlinked => FlushStep::Nothing,
        }
    }

    /// One handle goes; says what must happen to the content.
    pub(crate) fn release_handle(&mut self, writer: bool) -> ReleaseStep {
        self.handles = self.handles.saturating_sub(1);
        if writer {
            self.writers = self.writers.saturating_sub(1);
        }
        let last_writer = writer && self.writers == 0;
        match self.content {
            Content::WriteFailed { errno } if last_writer || self.handles == 0 => {
                self.content = Content::Clean;
                ReleaseStep::Discard(errno)
            }
            Content::Dirty { .. }
                if self.failure.is_none() && (last_writer || self.handles == 0) =>
            {
                ReleaseStep::Upload
            }
            _ => ReleaseStep::Nothing,
        }
    }

    /// Whether a release on the FUSE thread can finish without the async
    /// path (no upload, no discard, no cleanup of a pending file).
    pub(crate) fn release_is_trivial(&self, writer: bool) -> bool {
        let last = self.handles <= 1;
        let last_writer = writer && self.writers <= 1;
        if !(last || last_writer) {
            return true;
        }
        match self.content {
            Content::WriteFailed { .. } | Content::Dirty { .. } => false,
            Content::Clean | Content::Unlinked => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_rules() {
        let mut of = OpenFile::new(Origin::Server);
        of.open_handle(true);
        assert_eq!(of.on_flush(true), FlushStep::Nothing);
        of.written();
        assert_eq!(
            of.on_flush(false),
            FlushStep::Nothing,
            "readers never upload"
        );
        assert_eq!(of.on_flush(true), FlushStep::Upload);
        of.upload_started();
        of.upload_confirmed();
        assert_eq!(
            of.on_flush(true),
            FlushStep::Nothing,
            "second flush is a no-op"
        );
        assert_eq!(
            of.strategy(ConflictStrategy::Rename),
            ConflictStrategy::Overwrite
        );
        of.write_failed(libc::ENOSPC);
        assert_eq!(of.on_flush(false), FlushStep::Nothing);
        assert_eq!(of.on_flush(true), FlushStep::Report(libc::ENOSPC));
        assert_eq!(of.release_handle(true), ReleaseStep::Discard(libc::ENOSPC));
    }

    #[test]
    fn a_new_writer_over_its_own_upload_gets_the_mounts_strategy() {
        let mut of = OpenFile::new(Origin::Local);
        of.open_handle(true);
        of.written();
        of.upload_started();
        of.upload_confirmed();
        of.open_handle(false);
        assert_eq!(
            of.strategy(ConflictStrategy::Rename),
            ConflictStrategy::Overwrite,
            "a reader changes nothing"
        );
        of.open_handle(true);
        assert_eq!(
            of.strategy(ConflictStrategy::Rename),
            ConflictStrategy::Rename,
            "a new writer's upload is a new write to an existing name"
        );
        assert!(of.remote());
    }

    #[test]
    fn release_uploads_at_the_last_writer() {
        let mut of = OpenFile::new(Origin::Local);
        of.open_handle(true);
        of.open_handle(false);
        of.written();
        assert!(!of.release_is_trivial(true));
        assert_eq!(of.release_handle(true), ReleaseStep::Upload);
        of.upload_failed(false);
        assert_eq!(of.release_handle(false), ReleaseStep::Nothing);
        assert_eq!(of.handles(), 0);
    }

    #[test]
    fn only_open_server_content_is_staged_before_unlink() {
        let mem = || {
            Staged::Mem(super::super::memstage::MemStaged::new(
                super::super::staging::CacheBudget::unlimited(),
                Default::default(),
            ))
        };
        let mut of = OpenFile::new(Origin::Server);
        assert!(!of.needs_staging_to_unlink(), "no handle: nothing to keep");
        of.open_handle(false);
        assert!(of.needs_staging_to_unlink());
        of.staged = Some(mem());
        assert!(!of.needs_staging_to_unlink(), "already local");
        let mut created = OpenFile::created(mem());
        created.staged = None;
        assert!(!created.needs_staging_to_unlink(), "never on the server");
        let adopted = OpenFile::resumed(
            mem(),
            JournalState {
                id: "x".into(),
                plan: false,
                complete: true,
            },
            None,
        );
        assert!(adopted.remote(), "may hold an older version");
    }

    #[test]
    fn server_copy_leaves_nothing_to_upload() {
        let mem = || {
            Staged::Mem(super::super::memstage::MemStaged::new(
                super::super::staging::CacheBudget::unlimited(),
                Default::default(),
            ))
        };
        let mut of = OpenFile::created(mem());
        assert!(of.is_empty_new());
        assert!(of.server_copied().is_some());
        assert_eq!(
            of.on_flush(true),
            FlushStep::Nothing,
            "no upload of the empty file"
        );
        assert!(of.remote());
        assert_eq!(of.release_handle(true), ReleaseStep::Nothing);
        let mut clean = OpenFile::new(Origin::Server);
        clean.staged = Some(mem());
        assert!(clean.meta_changed(), "clean content is sent again");
        assert_eq!(clean.on_flush(true), FlushStep::Upload);
        clean.unlinked();
        assert!(!clean.meta_changed());
    }

    #[test]
    fn unlinked_content_absorbs_writes() {
        let mut of = OpenFile::created(Staged::Mem(super::super::memstage::MemStaged::new(
            super::super::staging::CacheBudget::unlimited(),
            Default::default(),
        )));
        of.unlinked();
        of.written();
        of.write_failed(libc::EIO);
        assert_eq!(of.content(), Content::Unlinked);
        assert_eq!(of.on_flush(true), FlushStep::Nothing);
        assert_eq!(of.release_handle(true), ReleaseStep::Nothing);
    }
}
