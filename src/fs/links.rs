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

    /// The string of a native SMH link: the relative path from its
    /// directory to where its target is now.
    async fn read_native(&self, _path: &SmhPath, _meta: &Meta) -> FsResult<Vec<u8>> {
        Err(FsError::Io(std::io::Error::from_raw_os_error(libc::EIO)))
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
        let ino = self.inodes.lock().lookup(path, true);
        Attr {
            ino: InodeNo(ino),
            meta,
        }
    }
}
