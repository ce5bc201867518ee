//! How an entry's kind becomes a FUSE file type, device number and default
//! permissions (for `fuse.rs`; the kinds are `cache::Kind`).

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

/// Permissions and link count: directories 0755, links 0777 (as on
/// Linux, where they are never checked), files 0644, `umask` applied to
/// all but links; a special file has the permissions it was made with.
pub(super) fn default_perm(meta: &Meta, umask: u32) -> (u32, u32) {
    match meta.kind {
        Kind::Dir => (0o755 & !umask, 2),
        Kind::Symlink => (0o777, 1),
        Kind::Special => (meta.posix.mode.unwrap_or(0o644) & 0o7777, 1),
        Kind::File => (0o644 & !umask, 1),
    }
}
