//! How an entry's kind becomes a FUSE file type and device number, and a
//! handle's open flags (for `fuse.rs`; the kinds are `cache::Kind`;
//! permissions: `metastate.rs`).

use std::time::SystemTime;

use fuser::{FileType, FopenFlags, TimeOrNow};

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

/// Which handles bypass the kernel page cache (`FOPEN_DIRECT_IO`).
///
/// * Write-only: the bytes are staged by us anyway, and filling new cache
///   pages with them cost more than the whole rest of a large copy. The
///   kernel keeps `i_size` and other handles' cached pages right after
///   direct writes, appends and truncates (`tests/mount_rw.rs`).
/// * Read-only, when the kernel allows mmap of such handles
///   (`FUSE_DIRECT_IO_ALLOW_MMAP`, 6.6+; `direct_reads`): the read-ahead
///   queue already holds what a sequential reader needs (as in
///   mountpoint-s3), and the kernel dropped a file's cached pages at the
///   next open anyway (no `FOPEN_KEEP_CACHE`).
/// * Read-write handles stay cached.
pub(super) fn open_flags(flags: i32, direct_reads: bool) -> FopenFlags {
    match flags & libc::O_ACCMODE {
        libc::O_WRONLY => FopenFlags::FOPEN_DIRECT_IO,
        libc::O_RDONLY if direct_reads => FopenFlags::FOPEN_DIRECT_IO,
        _ => FopenFlags::empty(),
    }
}

/// A setattr time as a `SystemTime`.
pub(super) fn time_of(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}
