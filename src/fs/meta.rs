//! What the mount knows about one entry ([`Meta`]) and what it presents
//! it as ([`Kind`]), from the server's listings, `?info` and upload
//! answers. The caches keep it packed (`packmeta.rs`).

use std::time::SystemTime;

use crate::smh::types::{DirEntry, EntryInfo, FileMeta};

use super::linkstr;
use super::posix::PosixMeta;
use crate::smh::time::parse_time;

/// What the mount presents an entry as. Everything but `Dir` is an SMH
/// file or symlink to the namespace operations (unlink, rename).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    /// A native SMH symlink (`link_to` is the target's inode), or a file
    /// encoding one (its content is the link string, see `links.rs`).
    Symlink,
    /// A FIFO, socket or device: an empty file whose stored mode says so
    /// (`posix.mode` has the type, `posix.rdev` the device number).
    Special,
}

impl Kind {
    pub fn is_dir(self) -> bool {
        self == Kind::Dir
    }
}

/// What we know about one entry; mode/uid/gid are synthesized later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    /// The server's eTag: of the content for a file (which version a read
    /// gets, see `read.rs`), of the listing for a directory. `None` for
    /// what we made locally and have not heard back about.
    pub etag: Option<String>,
    /// Mode, owner and device number kept as custom metadata, if any.
    pub posix: PosixMeta,
    /// A native SMH symlink's target (the target's inode, as listed).
    pub link_to: Option<String>,
}

/// What an SMH file of `size` bytes with stored attributes `posix` is
/// presented as. A mode that cannot describe the content (a "link" that
/// is empty or longer than a path, a "FIFO" with data, a directory or an
/// unknown type) is ignored: the data stays readable as a regular file.
fn kind_of_file(posix: &PosixMeta, size: u64) -> Kind {
    match posix.file_type() {
        Some(libc::S_IFLNK) if size > 0 && size <= linkstr::MAX_LINK_BYTES as u64 => Kind::Symlink,
        Some(t) if linkstr::is_special_type(t) && size == 0 => Kind::Special,
        _ => Kind::File,
    }
}

fn kind_of(t: &crate::smh::types::EntryType) -> Kind {
    match t {
        t if t.is_dir() => Kind::Dir,
        crate::smh::types::EntryType::Symlink => Kind::Symlink,
        _ => Kind::File,
    }
}

fn size_of(s: Option<&String>) -> u64 {
    s.and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Meta {
    fn build(
        kind: Kind,
        size: Option<&String>,
        local_mtime: Option<&str>,
        mtime: Option<&str>,
        ctime: Option<&str>,
        etag: Option<&String>,
        meta_data: Option<&crate::smh::types::MetaData>,
    ) -> Self {
        let m = parse_time(local_mtime)
            .or_else(|| parse_time(mtime))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let m = super::mtimens::precise_mtime(meta_data, m);
        Meta {
            kind,
            size: if kind == Kind::Dir { 0 } else { size_of(size) },
            mtime: m,
            ctime: parse_time(mtime).or_else(|| parse_time(ctime)).unwrap_or(m),
            etag: etag.cloned(),
            posix: PosixMeta::from_meta_data(meta_data),
            link_to: None,
        }
    }

    /// A native link's target (listed items of `type: symlink`), then the
    /// kind the stored mode gives.
    fn with_link(mut self, link_to: Option<&String>) -> Self {
        self.link_to = link_to.filter(|_| self.kind == Kind::Symlink).cloned();
        self.classify();
        self
    }

    /// A file's presented kind from its stored mode (`links.rs` says which
    /// files can be links or special files); other kinds keep theirs.
    pub fn classify(&mut self) {
        if matches!(self.kind, Kind::File | Kind::Special)
            || (self.kind == Kind::Symlink && self.link_to.is_none())
        {
            self.kind = kind_of_file(&self.posix, self.size);
        }
    }

    pub fn from_entry(e: &DirEntry) -> Self {
        Self::build(
            kind_of(&e.kind),
            e.size.as_ref(),
            e.local_modification_time.as_deref(),
            e.modification_time.as_deref(),
            e.creation_time.as_deref(),
            e.e_tag.as_ref(),
            e.meta_data.as_ref(),
        )
        .with_link(e.link_to.as_ref())
    }

    pub fn from_info(e: &EntryInfo) -> Self {
        Self::build(
            kind_of(&e.kind),
            e.size.as_ref(),
            e.local_modification_time.as_deref(),
            e.modification_time.as_deref(),
            e.creation_time.as_deref(),
            e.e_tag.as_ref(),
            e.meta_data.as_ref(),
        )
        .with_link(e.link_to.as_ref())
    }

    pub fn from_file_meta(e: &FileMeta, local_mtime: Option<SystemTime>) -> Self {
        let mut m = Self::build(
            Kind::File,
            Some(&e.size),
            None,
            e.modification_time.as_deref(),
            e.creation_time.as_deref(),
            e.e_tag.as_ref(),
            e.meta_data.as_ref(),
        )
        .with_link(None);
        if let Some(t) = local_mtime {
            m.mtime = t;
        }
        if m.mtime == SystemTime::UNIX_EPOCH {
            m.mtime = SystemTime::now();
            m.ctime = m.mtime;
        }
        m
    }

    pub fn new_dir() -> Self {
        let now = SystemTime::now();
        Meta {
            kind: Kind::Dir,
            size: 0,
            mtime: now,
            ctime: now,
            etag: None,
            posix: PosixMeta::default(),
            link_to: None,
        }
    }

    pub fn new_file(size: u64) -> Self {
        let now = SystemTime::now();
        Meta {
            kind: Kind::File,
            size,
            mtime: now,
            ctime: now,
            etag: None,
            posix: PosixMeta::default(),
            link_to: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smh::time::format_time;

    #[test]
    fn kinds_from_modes() {
        let with = |mode: u32, rdev| PosixMeta {
            mode: Some(mode),
            rdev,
            ..Default::default()
        };
        assert_eq!(
            kind_of_file(&with(linkstr::LINK_MODE, None), 5),
            Kind::Symlink
        );
        assert_eq!(kind_of_file(&with(linkstr::LINK_MODE, None), 0), Kind::File);
        assert_eq!(
            kind_of_file(&with(linkstr::LINK_MODE, None), 4096),
            Kind::File
        );
        let fifo = with(libc::S_IFIFO | 0o644, None);
        assert_eq!(kind_of_file(&fifo, 0), Kind::Special);
        assert_eq!(kind_of_file(&fifo, 1), Kind::File);
        let chr = with(libc::S_IFCHR | 0o600, Some(0x102));
        assert_eq!(kind_of_file(&chr, 0), Kind::Special);
        assert_eq!(
            kind_of_file(&with(libc::S_IFDIR | 0o755, None), 0),
            Kind::File
        );
        assert_eq!(kind_of_file(&with(0o030644, None), 0), Kind::File);
        assert_eq!(kind_of_file(&with(0o644, None), 0), Kind::File);
        assert_eq!(kind_of_file(&PosixMeta::default(), 0), Kind::File);
    }

    #[test]
    fn times_round_trip() {
        let t = parse_time(Some("2021-07-24T10:34:32.250Z")).unwrap();
        assert_eq!(format_time(t), "2021-07-24T10:34:32.250Z");
        assert!(parse_time(Some("yesterday")).is_none());
    }
}
