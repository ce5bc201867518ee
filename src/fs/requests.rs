//! Accounting of FUSE requests, for the adapter ([`super::fuse`]): each
//! request is a [`Served`] from arrival to reply, counted and timed per
//! operation (`smhfs_fuse_requests_total{op}`,
//! `smhfs_fuse_request_duration_seconds{op}`), its failures counted by
//! errno (`smhfs_fuse_errors_total{op,errno}`), and, when debug logging
//! is on, its work run in a `fuse` span with the request id, operation,
//! inode and pid.
//!
//! The per-operation counter and histogram handles are registered once
//! (when the adapter is built, after the recorder is installed), so the
//! hot path does an atomic add and a histogram push, no lookup.

use std::sync::Arc;
use std::time::Instant;

use metrics::{Counter, Histogram};

/// The FUSE operations the adapter answers (the `op` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lookup,
    Getattr,
    Setattr,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Symlink,
    Readlink,
    Rename,
    Link,
    Open,
    Read,
    Write,
    Flush,
    Release,
    Fsync,
    Opendir,
    Readdir,
    Readdirplus,
    Releasedir,
    Fsyncdir,
    Statfs,
    Ioctl,
    Getxattr,
    Listxattr,
    Create,
    CopyFileRange,
    Lseek,
}

impl Op {
    const ALL: [Op; 29] = [
        Op::Lookup,
        Op::Getattr,
        Op::Setattr,
        Op::Mknod,
        Op::Mkdir,
        Op::Unlink,
        Op::Rmdir,
        Op::Symlink,
        Op::Readlink,
        Op::Rename,
        Op::Link,
        Op::Open,
        Op::Read,
        Op::Write,
        Op::Flush,
        Op::Release,
        Op::Fsync,
        Op::Opendir,
        Op::Readdir,
        Op::Readdirplus,
        Op::Releasedir,
        Op::Fsyncdir,
        Op::Statfs,
        Op::Ioctl,
        Op::Getxattr,
        Op::Listxattr,
        Op::Create,
        Op::CopyFileRange,
        Op::Lseek,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Op::Lookup => "lookup",
            Op::Getattr => "getattr",
            Op::Setattr => "setattr",
            Op::Mknod => "mknod",
            Op::Mkdir => "mkdir",
            Op::Unlink => "unlink",
            Op::Rmdir => "rmdir",
            Op::Symlink => "symlink",
            Op::Readlink => "readlink",
            Op::Rename => "rename",
            Op::Link => "link",
            Op::Open => "open",
            Op::Read => "read",
            Op::Write => "write",
            Op::Flush => "flush",
            Op::Release => "release",
            Op::Fsync => "fsync",
            Op::Opendir => "opendir",
            Op::Readdir => "readdir",
            Op::Readdirplus => "readdirplus",
            Op::Releasedir => "releasedir",
            Op::Fsyncdir => "fsyncdir",
            Op::Statfs => "statfs",
            Op::Ioctl => "ioctl",
            Op::Getxattr => "getxattr",
            Op::Listxattr => "listxattr",
            Op::Create => "create",
            Op::CopyFileRange => "copy_file_range",
            Op::Lseek => "lseek",
        }
    }
}

/// Registered handles, one pair per operation (indexed by `Op as usize`).
pub struct OpTable {
    requests: Vec<Counter>,
    latency: Vec<Histogram>,
}

impl OpTable {
    /// Registers every operation's series with the installed recorder
    /// (no-op handles when none is).
    pub fn register() -> Arc<Self> {
        Arc::new(Self {
            requests: Op::ALL
                .iter()
                .map(|op| metrics::counter!("smhfs_fuse_requests_total", "op" => op.as_str()))
                .collect(),
            latency: Op::ALL
                .iter()
                .map(|op| {
                    metrics::histogram!("smhfs_fuse_request_duration_seconds", "op" => op.as_str())
                })
                .collect(),
        })
    }

    /// A request arriving.
    pub fn begin(self: &Arc<Self>, op: Op, unique: u64, ino: u64, pid: u32) -> Served {
        self.requests[op as usize].increment(1);
        Served {
            op,
            started: Instant::now(),
            // Debug level: an enabled span costs the log layer a formatted
            // field set per request (about 5 % of the mount's instructions
            // in `cp -r` of small files); warnings name their path instead.
            span: tracing::debug_span!("fuse", req = unique, op = op.as_str(), ino, pid),
            table: self.clone(),
        }
    }
}

/// One FUSE request being served; its latency is recorded when it is
/// dropped, which the adapter does after replying.
pub struct Served {
    op: Op,
    started: Instant,
    span: tracing::Span,
    table: Arc<OpTable>,
}

impl Served {
    pub fn op(&self) -> &'static str {
        self.op.as_str()
    }

    pub fn span(&self) -> &tracing::Span {
        &self.span
    }
}

/// Counts a failure of `op` answered with `errno` (rare: no cached handle).
pub fn failed(op: &'static str, errno: i32) {
    metrics::counter!("smhfs_fuse_errors_total", "op" => op, "errno" => errno_name(errno))
        .increment(1);
}

impl Drop for Served {
    fn drop(&mut self) {
        self.table.latency[self.op as usize].record(self.started.elapsed().as_secs_f64());
    }
}

/// The `errno` label: the symbolic name of the values the mount answers.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOTTY => "ENOTTY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ENODATA => "ENODATA",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EDQUOT => "EDQUOT",
        libc::EINTR => "EINTR",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_has_its_slot() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{}", op.as_str());
        }
        assert_eq!(errno_name(libc::ENOENT), "ENOENT");
        assert_eq!(errno_name(12345), "other");
    }
}
