//! Modes, owners and times that outlive the mount (issue 14).
//!
//! * A file's mode/uid/gid travel with its content as custom metadata
//!   (`fs::posix`), its mtime as `localModificationTime` plus `mtime`
//!   (nanoseconds, see [`precise_mtime`]). An open file with staged content
//!   carries a chmod/chown/utimens into its upload.
//! * SMH has no metadata-only update: on a closed file the change is a
//!   begin of the same content with the new metadata, answered by instant
//!   upload (§4.12) when the mount knows the content's hashes (of what it
//!   uploaded itself, [`KnownHashes`]). Otherwise the content is read once:
//!   hashed for instant upload, or (< 1 MiB, no instant upload there) sent
//!   again. A change that shows nothing new costs nothing (rsync's chmod to
//!   the mode a file already has).
//! * Directories: SMH cannot update an existing directory's metadata, so a
//!   chmod/chown/utimens of one is kept in this mount's memory for the
//!   session; `mkdir` stores the requested mode with the directory.

use std::sync::Arc;
use std::time::SystemTime;

use super::cache::{Kind, Meta};
use super::core::{Attr, InodeNo, SmhFs};
use super::error::{FsError, FsResult};
use super::metastate::{AttrChange, SETTLE};
use super::posix::PosixMeta;
use super::read::{Source, Version};
use super::uploader::{Body, Outgoing};
use crate::smh::hash::INSTANT_UPLOAD_MIN_SIZE;
use crate::smh::{ConflictStrategy, ContentHasher, ContentHashes, SmhPath};

impl SmhFs {
    /// `posix`: the requested mode (and owner), stored with the directory.
    pub async fn mkdir(
        &self,
        parent: InodeNo,
        name: &std::ffi::OsStr,
        posix: PosixMeta,
    ) -> FsResult<Attr> {
        let parent = parent.0;
        self.writable()?;
        let path = self.child(parent, name)?;
        // Its echo in the feed waits for the reply (`own.rs`).
        let _own = self.own_change(&path);
        let made = if posix.is_empty() {
            self.client.create_dir(&path, ConflictStrategy::Ask).await?
        } else {
            let body = crate::smh::meta::DirCreateBody {
                meta_data: Some(posix.to_meta_data()),
                ..Default::default()
            };
            let made = self
                .client
                .create_dir_with(&path, ConflictStrategy::Ask, &body);
            made.await?
        };
        let made = if made.is_root() { path } else { made };
        let mut meta = Meta::new_dir();
        meta.posix = posix;
        self.note_entry(&made, meta.clone());
        self.parent_changed(&made);
        self.dirs.put(made.clone(), Default::default(), None);
        let ino = self.inodes.lock().lookup(&made, true);
        Ok(Attr {
            ino: InodeNo(ino),
            meta,
        })
    }

    /// chmod / chown / utimens of `ino` (at `path`), after any truncate.
    pub(super) async fn set_attrs(&self, ino: u64, path: &SmhPath, ch: AttrChange) -> FsResult<()> {
        self.apply_attrs(ino, path, ch, None).await
    }

    /// Starts the task that sends settled changes of closed files.
    pub(crate) fn start_settling(self: &Arc<Self>, rt: &tokio::runtime::Handle) {
        let Some(mut rx) = self.known.start() else {
            return;
        };
        let fs = self.clone();
        rt.spawn(async move {
            while let Some(ino) = rx.recv().await {
                // Unmount waits for it (`wait_idle`).
                let (fs, op) = (fs.clone(), fs.op_guard());
                tokio::spawn(async move {
                    tokio::time::sleep(SETTLE).await;
                    fs.send_pending_attrs(ino).await;
                    drop(op);
                });
            }
        });
    }

    /// A closed file's change may wait [`SETTLE`] for more, unless it is
    /// that settled change, sent with `before` (the server's attributes
    /// before it).
    async fn apply_attrs(
        &self,
        ino: u64,
        path: &SmhPath,
        ch: AttrChange,
        before: Option<Meta>,
    ) -> FsResult<()> {
        if ch.is_empty() {
            return Ok(());
        }
        if let Some(of) = self.open_file(ino) {
            let mut of = of.lock().await;
            if let Some(st) = of.staged.as_mut() {
                // Staged content: its upload carries the change.
                if ch.mtime.is_some() {
                    st.set_mtime(ch.mtime);
                }
                st.set_posix(ch.apply(Kind::File, st.posix()));
                self.note_local(ino, st);
                if of.meta_changed() && of.handles() == 0 {
                    // Nothing will close it: send now (or queue it).
                    if self.write_back() {
                        self.enqueue_upload(ino, &of);
                    } else {
                        self.upload_locked(ino, &mut of).await?;
                    }
                }
                return Ok(());
            }
        }
        self.closed_attrs(ino, path, ch, before).await
    }

    /// [`apply_attrs`](Self::apply_attrs) of a file with nothing staged.
    async fn closed_attrs(
        &self,
        ino: u64,
        path: &SmhPath,
        ch: AttrChange,
        before: Option<Meta>,
    ) -> FsResult<()> {
        let mut meta = self.resolve_remote(path).await?.ok_or(FsError::NotFound)?;
        let settle = before.is_none();
        if let Some(b) = before.filter(|b| b.etag.is_some() && b.etag == meta.etag) {
            // Same content: the caches show the change already.
            meta = b;
        }
        if meta.kind == Kind::Dir {
            self.set_dir_attrs(ino, meta, ch);
            return Ok(());
        }
        let posix = ch.apply(meta.kind, meta.posix);
        let mtime = ch.mtime.unwrap_or(meta.mtime);
        if self.cfg.look.same(meta.kind, &posix, &meta.posix) && mtime == meta.mtime {
            return Ok(());
        }
        self.writable()?;
        let mut shown = meta.clone();
        (shown.posix, shown.mtime) = (posix, mtime);
        shown.ctime = SystemTime::now();
        if settle && self.known.defer(ino, meta.clone(), ch) {
            // Shown at once, sent once the burst is over. A crash in
            // between loses only the change (the content is stored).
            self.note_entry(path, shown);
            return Ok(());
        }
        self.store_meta(path, &meta, posix, mtime).await
    }

    /// Sends a waiting change of `ino` now (before a rename or unlink of
    /// it), or of every file (`None`: before a directory moves).
    pub(crate) async fn settle_now(&self, ino: Option<u64>) {
        let inos = match ino {
            Some(i) if self.known.is_pending(i) => vec![i],
            Some(_) => return,
            None => self.known.pending(),
        };
        for i in inos {
            self.send_pending_attrs(i).await;
        }
    }

    /// Sends the settled change of `ino` (to wherever it is now).
    async fn send_pending_attrs(&self, ino: u64) {
        // Held while it is sent, as by an upload: a rename or unlink
        // meanwhile waits, so the update never lands on the old name.
        let g = self.lock_open_file(ino, true).await;
        let path = self.path_of(ino);
        let pending = self.known.take(ino);
        let res = match (&path, pending) {
            (Err(_), _) | (_, None) => {
                if g.handles() == 0 && g.staged.is_none() {
                    if let Some(of) = self.open_file(ino) {
                        self.forget_open_file(ino, &of);
                    }
                }
                return;
            }
            (Ok(path), Some((before, ch))) => (path, before, ch),
        };
        let (path, before, ch) = res;
        let res = match path {
            path if g.staged.is_some() => {
                drop(g);
                self.apply_attrs(ino, path, ch, Some(before)).await
            }
            path => {
                let res = self.closed_attrs(ino, path, ch, Some(before)).await;
                if g.handles() == 0 && g.staged.is_none() {
                    if let Some(of) = self.open_file(ino) {
                        self.forget_open_file(ino, &of);
                    }
                }
                drop(g);
                res
            }
        };
        match res {
            Ok(()) | Err(FsError::NotFound) => {}
            Err(e) => {
                tracing::error!(%path, "chmod/chown/utimens not stored on the server: {e}")
            }
        }
    }

    /// A directory's change, kept for the session (see the module doc).
    fn set_dir_attrs(&self, ino: u64, mut meta: Meta, ch: AttrChange) {
        let mut local = self.local.lock();
        if let Some(kept) = local.get(&ino) {
            // An earlier change of this session: the server never saw it,
            // so a chown after a chmod must not bring the old mode back.
            (meta.posix, meta.mtime) = (kept.posix, kept.mtime);
        }
        meta.posix = ch.apply(Kind::Dir, meta.posix);
        if let Some(t) = ch.mtime {
            meta.mtime = t;
        }
        meta.ctime = SystemTime::now();
        local.insert(ino, meta);
    }

    /// Stores new metadata for the unchanged content of the closed file
    /// `path` (the server's version `meta`).
    async fn store_meta(
        &self,
        path: &SmhPath,
        meta: &Meta,
        posix: PosixMeta,
        mtime: SystemTime,
    ) -> FsResult<()> {
        let _in_flight = self.in_flight.begin();
        let _own = self.own_change(path);
        let started = std::time::Instant::now();
        let known = meta.etag.as_deref().and_then(|e| self.known.hashes(e));
        let known = known.filter(|h| h.size == meta.size);
        let small = meta.etag.as_deref().and_then(|e| self.known.small(e));
        let body = match (known, small) {
            (Some(hashes), _) if hashes.size >= INSTANT_UPLOAD_MIN_SIZE => Body::Known { hashes },
            (Some(hashes), Some(data)) if data.len() as u64 == hashes.size => {
                Body::Bytes { data, hashes }
            }
            _ => self.read_for_meta(path, meta).await?,
        };
        let (how, hashes, data) = match &body {
            Body::Known { hashes } => ("instant upload", hashes.clone(), None),
            Body::Bytes { hashes, data } => ("sent again", hashes.clone(), Some(data.clone())),
            Body::File { .. } | Body::Streamed { .. } => ("staged", ContentHashes::of(&[]), None),
        };
        let fm = self
            .uploader()
            .send(Outgoing {
                to: path,
                body,
                strategy: ConflictStrategy::Overwrite,
                mtime: Some(mtime),
                posix,
                journal: None,
                sent: Default::default(),
                // An instant upload has no confirm to check before; the
                // race with another client's change is in the README.
                before_confirm: None,
            })
            .await
            .result?;
        tracing::debug!(%path, how, elapsed = ?started.elapsed(), "metadata stored");
        self.known.remember(&fm, &hashes);
        if let Some(d) = &data {
            self.known.remember_small(&fm, d);
        }
        let mut m = Meta::from_file_meta(&fm, Some(mtime));
        m.posix = posix;
        self.note_entry(path, m);
        Ok(())
    }

    /// The content of `path` read once (one version): its bytes if small,
    /// else only its hashes (the server has it: instant upload).
    async fn read_for_meta(&self, path: &SmhPath, meta: &Meta) -> FsResult<Body<'static>> {
        let src = Source::new(self.client.clone(), self.urls.clone());
        let size = src.pin(path, Version::of_meta(meta).as_ref()).await?.size;
        if size < INSTANT_UPLOAD_MIN_SIZE {
            let data = super::read::fetch(&src, path, 0, size).await?;
            let hashes = ContentHashes::of(&data);
            return Ok(Body::Bytes { data, hashes });
        }
        let mut h = ContentHasher::new();
        let mut at = 0;
        while at < size {
            let n = super::core::FILL_CHUNK.min(size - at);
            let data = super::read::fetch(&src, path, at, n).await?;
            if data.is_empty() {
                return Err(FsError::Stale);
            }
            h.update(&data);
            at += data.len() as u64;
        }
        Ok(Body::Known { hashes: h.finish() })
    }
}
