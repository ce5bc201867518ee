//! How an entry's kind becomes a FUSE file type and device number (for
//! `fuse.rs`; the kinds are `cache::Kind`; permissions: `metastate.rs`).

use fuser::FileType;

use super::cache::{Kind, Meta};

/// The type the kernel sees (also a readdir entry's `d_type`).
pub(super) fn file_type(meta: &Meta) -> FileType {
    match meta.kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
        Kind::Special => match meta.posix.file_type() {
            Some(libc::S_IFIFO) => FileType::NamedPipe,
            Some(libc::S_IFSOCK) => FileType::Socket,
            Some(libc::S_IFCHR) => FileType::CharDevice,
            Some(libc::S_IFBLK) => FileType::BlockDevice,
            _ => FileType::RegularFile,
        },
    }
}

/// `st_rdev` of a device (as FUSE carries it: Linux `new_encode_dev`).
pub(super) fn rdev(meta: &Meta) -> u32 {
    match meta.kind {
        Kind::Special => meta.posix.rdev.unwrap_or(0),
        _ => 0,
    }
}
