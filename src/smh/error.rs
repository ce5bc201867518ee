//! `SmhError`: everything the client can fail with, and its one errno mapping.

use super::codes;
use super::types::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum SmhError {
    /// The server answered with an SMH error (JSON `code`/`message`/`requestId`),
    /// or an object-store XML error, or a bare status.
    #[error("SMH error {status} {code}: {message}{}", request_id.as_deref().map(|r| format!(" (request id {r})")).unwrap_or_default())]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
    },
    /// Could not reach the server or the connection broke (URL redacted).
    #[error("network error on {url}: {message}")]
    Network { url: String, message: String },
    /// The server's reply could not be understood (URL redacted).
    #[error("malformed reply from {url}: {message}")]
    Malformed { url: String, message: String },
    #[error("invalid path: {0}")]
    InvalidPath(String),
    #[error("name too long: {0} bytes (at most 255)")]
    NameTooLong(usize),
    #[error("configuration error: {0}")]
    Config(String),
    /// Local I/O (reading a staged file, for instance).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A server-side task (a large batch) did not finish in time.
    #[error("task {0} is still running on the server")]
    TaskPending(u64),
    /// The upload cannot continue (plan and server state disagree, etc.).
    #[error("upload failed: {0}")]
    Upload(String),
    /// The caller refused to confirm an upload: what it would replace is no
    /// longer the version it started from (ESTALE).
    #[error("not stored: {0}")]
    Superseded(String),
}

pub type Result<T, E = SmhError> = std::result::Result<T, E>;

impl SmhError {
    pub fn api(status: u16, body: ErrorBody) -> Self {
        SmhError::Api {
            status,
            code: body.code,
            message: body.message,
            request_id: body.request_id,
        }
    }

    /// The SMH error code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            SmhError::Api { code, .. } if !code.is_empty() => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            SmhError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Worth another try after a pause: throttling, server errors, broken
    /// connections. Never 4xx logic errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            SmhError::Api { status, .. } => *status == 429 || *status >= 500,
            SmhError::Network { .. } => true,
            _ => false,
        }
    }

    /// The one place SMH errors become errno values (smh-api.md §8.3).
    pub fn errno(&self) -> i32 {
        match self {
            SmhError::Api { status, code, .. } => match code.as_str() {
                codes::FILE_NOT_FOUND
                | codes::DIRECTORY_NOT_FOUND
                | codes::PATH_NOT_FOUND
                | codes::SOURCE_FILE_NOT_FOUND
                | codes::SOURCE_DIRECTORY_NOT_FOUND
                | codes::SPACE_NOT_FOUND
                | codes::LIBRARY_NOT_FOUND
                | codes::FILE_REMOVED_BY_QUOTA => libc::ENOENT,
                codes::SAME_NAME_DIRECTORY_OR_FILE_EXISTS
                | codes::PATH_CONFLICT
                | codes::RENAME_TOO_MANY_TIMES => libc::EEXIST,
                codes::SPACE_NOT_EMPTY => libc::ENOTEMPTY,
                codes::QUOTA_LIMIT_REACHED
                | codes::LIBRARY_QUOTA_LIMIT_REACHED
                | codes::NO_ENOUGH_REMAINING_QUOTA => libc::ENOSPC,
                codes::FILE_NAME_LENGTH_EXCEED | codes::DIRECTORY_NAME_LENGTH_EXCEED => {
                    libc::ENAMETOOLONG
                }
                codes::ILLEGAL_FILE_NAME
                | codes::EMPTY_FILE_NAME
                | codes::EMPTY_PATH
                | codes::INVALID_FILE_PATH
                | codes::SOURCE_DIRECTORY_IS_PARENT_OF_DESTINATION
                | codes::INVALID_DESTINATION_PATH
                | codes::INVALID_SOURCE_DIRECTORY
                | codes::INVALID_SOURCE_FILE
                | codes::FILE_TYPE_NOT_MATCHED => libc::EINVAL,
                codes::NO_PERMISSION
                | codes::WRITE_FORBIDDEN
                | codes::READ_FORBIDDEN
                | codes::INVALID_ACCESS_TOKEN
                | codes::ACCESS_TOKEN_NOT_MATCH_SPACE
                | codes::ACCESS_TOKEN_NOT_MATCH_LIBRARY
                | codes::SENSITIVE_CONTENT_RECOGNIZED
                | codes::UPLOAD_NOT_BELONG_YOU => libc::EACCES,
                _ => match *status {
                    404 => libc::ENOENT,
                    409 => libc::EEXIST,
                    403 => libc::EACCES,
                    413 => libc::EFBIG,
                    414 => libc::ENAMETOOLONG,
                    _ => libc::EIO,
                },
            },
            SmhError::Network { .. }
            | SmhError::Malformed { .. }
            | SmhError::Upload(_)
            | SmhError::TaskPending(_) => libc::EIO,
            SmhError::InvalidPath(_) | SmhError::Config(_) => libc::EINVAL,
            SmhError::NameTooLong(_) => libc::ENAMETOOLONG,
            SmhError::Superseded(_) => libc::ESTALE,
            SmhError::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> SmhError {
        SmhError::Api {
            status,
            code: code.into(),
            message: String::new(),
            request_id: None,
        }
    }

    #[test]
    fn errno_table() {
        assert_eq!(api(404, codes::FILE_NOT_FOUND).errno(), libc::ENOENT);
        assert_eq!(
            api(409, codes::SAME_NAME_DIRECTORY_OR_FILE_EXISTS).errno(),
            libc::EEXIST
        );
        assert_eq!(api(400, codes::QUOTA_LIMIT_REACHED).errno(), libc::ENOSPC);
        assert_eq!(
            api(400, codes::FILE_NAME_LENGTH_EXCEED).errno(),
            libc::ENAMETOOLONG
        );
        assert_eq!(api(409, codes::SPACE_NOT_EMPTY).errno(), libc::ENOTEMPTY);
        assert_eq!(api(503, codes::SERVER_OVERLOADED).errno(), libc::EIO);
        assert_eq!(api(404, "").errno(), libc::ENOENT);
    }

    #[test]
    fn retryable() {
        assert!(api(429, codes::RATE_LIMIT_EXCEEDED).is_retryable());
        assert!(api(503, "").is_retryable());
        assert!(!api(409, codes::SAME_NAME_DIRECTORY_OR_FILE_EXISTS).is_retryable());
        assert!(!api(400, codes::BAD_CRC64).is_retryable());
    }
}
