//! `SmhFs` symlinks and special files: symlink(2), readlink(2) and
//! mknod(2) of FIFOs, sockets and devices. How they are stored is in
//! [`super::linkstr`]; here they are made and read.
//!
//! Both are written at once (one small upload, conflict `ask`: never
//! replacing a name), not staged: nothing opens them through FUSE (the
//! kernel follows links itself and serves FIFO and device I/O itself).

use std::ffi::OsStr;

use bytes::Bytes;

use super::cache::{Kind, Meta};
use super::core::{Attr, InodeNo, SmhFs};
use super::error::{FsError, FsResult};
use super::linkstr::{self, BadLink, LINK_MODE, MAX_LINK_BYTES};
use super::posix::PosixMeta;
use super::read::{Source, Version};
use crate::smh::{ConflictStrategy, ContentHashes, SmhPath, UploadOptions};

/// Who creates an entry (the caller's uid and gid, from FUSE).
pub type Owner = Option<(u32, u32)>;

impl SmhFs {
    /// symlink(2): `name` in `parent` holding the string `target`.
    pub async fn symlink(
        &self,
        parent: InodeNo,
        name: &OsStr,
        target: &[u8],
        owner: Owner,
    ) -> FsResult<Attr> {
        self.writable()?;
        let path = self.child(parent.0, name)?;
        linkstr::check_link(target).map_err(|e| match e {
            BadLink::Empty => FsError::NotFound,
            BadLink::TooLong => FsError::NameTooLong,
        })?;
        if self.resolve(&path).await?.is_some() {
            return Err(FsError::Exists);
        }
        if let Some(to) = self.native_target(&path, target).await? {
            if let Some(meta) = self.make_native(&path, &to, target.len()).await? {
                let ttl = self.cfg.attr_timeout;
                self.links.put_native(path.clone(), target.to_vec(), ttl);
                return Ok(self.entered(&path, meta));
            }
        }
        let posix = PosixMeta {
            mode: Some(LINK_MODE),
            uid: owner.map(|o| o.0),
            gid: owner.map(|o| o.1),
            rdev: None,
        };
        let meta = self.put_marked(&path, target, posix).await?;
        if let Some(e) = &meta.etag {
            self.links
                .put_encoded(path.clone(), e.clone(), target.to_vec());
        }
        Ok(self.entered(&path, meta))
    }

    /// readlink(2): the string of the link at `ino`.
    pub async fn readlink(&self, ino: InodeNo) -> FsResult<Vec<u8>> {
        let path = self.path_of(ino.0)?;
        let meta = self
            .resolve_ino(ino.0, &path)
            .await?
            .ok_or(FsError::NotFound)?;
        if meta.kind != Kind::Symlink {
            return Err(FsError::Invalid);
        }
        if meta.link_to.is_some() {
            return self.read_native(&path, &meta).await;
        }
        if let Some(s) = meta
            .etag
            .as_ref()
            .and_then(|e| self.links.encoded(&path, e))
        {
            return Ok(s);
        }
        let src = Source::new(self.client.clone(), self.urls.clone());
        let v = src.pin(&path, Version::of_meta(&meta).as_ref()).await?;
        if v.size == 0 || v.size > MAX_LINK_BYTES as u64 {
            // Replaced meanwhile by content that cannot be a link.
            return Err(FsError::Io(std::io::Error::from_raw_os_error(libc::EIO)));
        }
        let s = super::read::fetch(&src, &path, 0, v.size).await?.to_vec();
        if let Some(e) = v.etag {
            self.links.put_encoded(path, e, s.clone());
        }
        Ok(s)
    }

    /// The file a native link made at `link` with this string would point
    /// at: the string is canonical ([`linkstr::canonical_target`]) and names
    /// a regular file the server has (not one open here, whose content may
    /// not be uploaded yet). `None`: encode the link.
    async fn native_target(&self, link: &SmhPath, target: &[u8]) -> FsResult<Option<SmhPath>> {
        let (Ok(s), Some(dir)) = (std::str::from_utf8(target), link.parent()) else {
            return Ok(None);
        };
        let Some(to) = linkstr::canonical_target(&dir, s, &self.cfg.root) else {
            return Ok(None);
        };
        let open_here = self
            .inodes
            .lock()
            .ino_of(&to)
            .is_some_and(|i| self.files.lock().contains_key(&i));
        if open_here {
            return Ok(None);
        }
        Ok(match self.resolve_remote(&to).await? {
            Some(m) if m.kind == Kind::File && m.etag.is_some() => Some(to),
            _ => None,
        })
    }

    /// Creates the SMH symlink `link` → `to`; `None` when the server will
    /// not link them (the target went or changed kind meanwhile): then the
    /// link is encoded instead.
    async fn make_native(
        &self,
        link: &SmhPath,
        to: &SmhPath,
        len: usize,
    ) -> FsResult<Option<Meta>> {
        use crate::smh::codes;
        match self
            .client
            .create_symlink(link, to, ConflictStrategy::Ask)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e)
                if matches!(
                    e.code(),
                    Some(
                        codes::SYMLINK_TO_DIRECTORY_NOT_ALLOWED
                            | codes::CIRCLE_SYMLINK
                            | codes::SYMLINK_DEPTH_LIMIT_EXCEEDED
                    )
                ) =>
            {
                tracing::debug!(%link, %to, "native symlink refused ({e}); encoding it");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
        // Its attributes, with the target's inode (readlink needs it).
        let info = self.client.stat(link).await?.ok_or(FsError::NotFound)?;
        let mut meta = Meta::from_info(&info);
        meta.size = len as u64;
        Ok(Some(meta))
    }

    /// The string of a native SMH link: the relative path from its
    /// directory to where its target is now. A target deleted, or moved
    /// out of the mounted directory, has no such string: the last one this
    /// mount knew stands (following it finds nothing: ENOENT), else EIO.
    async fn read_native(&self, path: &SmhPath, meta: &Meta) -> FsResult<Vec<u8>> {
        if let Some(s) = self.links.native(path) {
            return Ok(s);
        }
        let eio = || FsError::Io(std::io::Error::from_raw_os_error(libc::EIO));
        let inode = meta.link_to.as_deref().ok_or_else(eio)?;
        let info = self.client.info_by_inode(inode).await?;
        let to = info
            .and_then(|i| SmhPath::from_segments(i.path).ok())
            .filter(|t| t.starts_with(&self.cfg.root) && *t != self.cfg.root);
        let s = to
            .as_ref()
            .and_then(|t| linkstr::relative(&path.parent()?, t))
            .map(String::into_bytes);
        let Some(s) = s else {
            tracing::debug!(%path, inode, "symlink target gone or outside the mount");
            return self.links.last_native(path).ok_or_else(eio);
        };
        if let Some(to) = to {
            self.remote_inodes
                .lock()
                .insert(inode.to_string(), to, false);
        }
        self.links
            .put_native(path.clone(), s.clone(), self.cfg.attr_timeout);
        if let Some(Some(mut m)) = self.attrs.get(path) {
            m.size = s.len() as u64;
            self.attrs.put(path.clone(), m);
        }
        Ok(s)
    }

    /// Before a rename of a native link to another directory: its string,
    /// which the moved link must keep (POSIX), while the SMH link keeps
    /// its target instead. `None`: nothing to keep.
    pub(crate) async fn link_string_to_keep(
        &self,
        from: &SmhPath,
        to: &SmhPath,
        meta: &Meta,
    ) -> Option<Vec<u8>> {
        if meta.link_to.is_none() || from.parent() == to.parent() {
            return None;
        }
        self.read_native(from, meta).await.ok()
    }

    /// After that rename: if the link at `path` now reads differently, it
    /// becomes an encoded link holding the kept string.
    pub(crate) async fn keep_link_string(
        &self,
        path: &SmhPath,
        keep: Option<Vec<u8>>,
    ) -> FsResult<()> {
        let Some(s) = keep else {
            return Ok(());
        };
        let meta = self.resolve_remote(path).await?.ok_or(FsError::NotFound)?;
        if self.read_native(path, &meta).await.ok().as_ref() == Some(&s) {
            return Ok(());
        }
        self.links.gone(path);
        self.client.delete_file(path, true).await?;
        let posix = PosixMeta {
            mode: Some(LINK_MODE),
            ..meta.posix
        };
        let meta = self.put_marked(path, &s, posix).await?;
        if let Some(e) = &meta.etag {
            self.links.put_encoded(path.clone(), e.clone(), s);
        }
        self.note_entry(path, meta);
        Ok(())
    }

    /// A native link's `st_size` is its string's length: known if this
    /// mount read or made it, or if its target's path was listed here;
    /// else 0 until the first readlink (the server lists the target's size).
    pub(crate) fn link_size(&self, path: &SmhPath, meta: &mut Meta) {
        let Some(inode) = meta.link_to.as_deref() else {
            return;
        };
        let known = self.links.native(path).map(|s| s.len()).or_else(|| {
            let to = self.remote_inodes.lock().get(inode)?;
            linkstr::relative(&path.parent()?, &to).map(|s| s.len())
        });
        meta.size = known.unwrap_or(0) as u64;
    }

    /// mknod(2) of a FIFO, socket or device (`mode` with its type, already
    /// masked by the kernel; `umask` applied again for callers that did
    /// not): an empty file carrying the type and `rdev`.
    pub async fn mknod_special(
        &self,
        parent: InodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        owner: Owner,
    ) -> FsResult<Attr> {
        self.writable()?;
        let path = self.child(parent.0, name)?;
        let kind = mode & libc::S_IFMT;
        if !linkstr::is_special_type(kind) {
            return Err(FsError::Invalid);
        }
        if self.resolve(&path).await?.is_some() {
            return Err(FsError::Exists);
        }
        let device = matches!(kind, libc::S_IFCHR | libc::S_IFBLK);
        let posix = PosixMeta {
            mode: Some(kind | (mode & 0o7777 & !umask)),
            uid: owner.map(|o| o.0),
            gid: owner.map(|o| o.1),
            rdev: device.then_some(rdev),
        };
        let meta = self.put_marked(&path, &[], posix).await?;
        Ok(self.entered(&path, meta))
    }

    /// Uploads a small marked file (`content` with `posix` as metadata),
    /// refusing to replace anything; its attributes as the mount shows them.
    async fn put_marked(&self, path: &SmhPath, content: &[u8], posix: PosixMeta) -> FsResult<Meta> {
        let opts = UploadOptions {
            strategy: ConflictStrategy::Ask,
            part_size: self.cfg.part_size,
            concurrency: 1,
            meta: posix.to_meta_data(),
            ..Default::default()
        };
        let data = Bytes::copy_from_slice(content);
        let fm = self
            .client
            .upload_bytes(path, data, ContentHashes::of(content), &opts)
            .await?;
        let mut meta = Meta::from_file_meta(&fm, None);
        meta.size = content.len() as u64;
        meta.posix = posix;
        meta.classify();
        Ok(meta)
    }

    /// Records a new entry at `path` in the caches and hands out its inode.
    fn entered(&self, path: &SmhPath, meta: Meta) -> Attr {
        self.note_entry(path, meta.clone());
        self.parent_changed(path);
        let ino = self.inodes.lock().lookup(path, true);
        Attr {
            ino: InodeNo(ino),
            meta,
        }
    }
}
