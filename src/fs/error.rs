//! `FsError`: what a filesystem operation fails with, and its errno.

use crate::smh::SmhError;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// An API call failed; [`SmhError::errno`] is the one mapping.
    #[error(transparent)]
    Smh(#[from] SmhError),
    #[error("local I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("name too long")]
    NameTooLong,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("read-only file system")]
    ReadOnly,
    #[error("bad file handle")]
    BadHandle,
    #[error("invalid argument")]
    Invalid,
    #[error("operation not supported")]
    NotSupported,
    /// `copy_file_range` the server cannot do: EOPNOTSUPP makes the
    /// kernel (or `cp`) copy with read/write; ENOSYS would stop it asking.
    #[error("not copied on the server")]
    NotCopied,
    /// The version an open handle reads is gone (the file was replaced or
    /// deleted meanwhile); reopen to read the current one.
    #[error("the file changed on the server while it was open")]
    Stale,
}

impl FsError {
    pub fn errno(&self) -> i32 {
        match self {
            FsError::Smh(e) => e.errno(),
            FsError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::NotPermitted => libc::EPERM,
            FsError::ReadOnly => libc::EROFS,
            FsError::BadHandle => libc::EBADF,
            FsError::Invalid => libc::EINVAL,
            FsError::NotSupported => libc::ENOSYS,
            FsError::Stale => libc::ESTALE,
            FsError::NotCopied => libc::EOPNOTSUPP,
        }
    }

    /// Expected outcomes (a missing name, an existing target) are not worth
    /// more than a debug line; everything else is logged as a warning.
    pub fn is_routine(&self) -> bool {
        matches!(
            self.errno(),
            libc::ENOENT
                | libc::EEXIST
                | libc::ENOTEMPTY
                | libc::ENAMETOOLONG
                | libc::EPERM
                | libc::EOPNOTSUPP
        )
    }
}

pub type FsResult<T> = Result<T, FsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smh_errors_use_the_client_mapping() {
        let e = FsError::from(SmhError::Api {
            status: 409,
            code: "SameNameDirectoryOrFileExists".into(),
            message: String::new(),
            request_id: None,
        });
        assert_eq!(e.errno(), libc::EEXIST);
        assert_eq!(FsError::NotEmpty.errno(), libc::ENOTEMPTY);
        assert_eq!(
            FsError::from(std::io::Error::from_raw_os_error(libc::ENOSPC)).errno(),
            libc::ENOSPC
        );
    }
}
