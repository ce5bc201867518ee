//! What the client tells about each HTTP exchange: Prometheus metrics
//! (through the `metrics` facade, a no-op until a recorder is installed)
//! and one debug line with kind, status, duration and request id. Labels
//! are static strings, so recording allocates no label text.

use std::time::Duration;

/// What an HTTP exchange with SMH (or its object store) is for; the `kind`
/// label of `smhfs_smh_*` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Minting or renewing an access token.
    Token,
    /// A directory listing page.
    List,
    /// `?info` of a directory or file.
    Info,
    /// `HEAD` of a directory or file.
    Head,
    Mkdir,
    Delete,
    Move,
    Copy,
    /// The download endpoint (its 302 gives the object URL).
    Download,
    /// Ranged GET of an object (file data).
    Read,
    /// Upload begin (also the instant-upload probe).
    Begin,
    /// PUT of one part of a multipart upload.
    Part,
    /// PUT of the whole body of a simple upload.
    Object,
    Confirm,
    /// `?upload` status of an upload task (resume).
    Status,
    Renew,
    Abort,
    Batch,
    Task,
    Usage,
    /// The change feed (`fs-delta` cursor and delta).
    Delta,
    /// Creating a symlink (`PUT .../file/...` with `linkTo`).
    Symlink,
}

impl RequestKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestKind::Token => "token",
            RequestKind::List => "list",
            RequestKind::Info => "info",
            RequestKind::Head => "head",
            RequestKind::Mkdir => "mkdir",
            RequestKind::Delete => "delete",
            RequestKind::Move => "move",
            RequestKind::Copy => "copy",
            RequestKind::Download => "download",
            RequestKind::Read => "read",
            RequestKind::Begin => "begin",
            RequestKind::Part => "part",
            RequestKind::Object => "object",
            RequestKind::Confirm => "confirm",
            RequestKind::Status => "status",
            RequestKind::Renew => "renew",
            RequestKind::Abort => "abort",
            RequestKind::Batch => "batch",
            RequestKind::Task => "task",
            RequestKind::Usage => "usage",
            RequestKind::Delta => "delta",
            RequestKind::Symlink => "symlink",
        }
    }
}

/// The `status` label: the code for the ones SMH uses, else its class;
/// `error` when no response came (network failure, timeout).
pub fn status_label(status: Option<u16>) -> &'static str {
    let Some(s) = status else {
        return "error";
    };
    match s {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        206 => "206",
        302 => "302",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        409 => "409",
        412 => "412",
        416 => "416",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => match s / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

/// One finished HTTP exchange (an attempt: a retried call counts once per
/// attempt). `shown_url` is only worked out when the debug line is on.
pub(crate) fn exchange(
    kind: RequestKind,
    status: Option<u16>,
    elapsed: Duration,
    request_id: Option<&str>,
    shown_url: impl FnOnce() -> String,
) {
    let status = status_label(status);
    metrics::counter!("smhfs_smh_requests_total", "kind" => kind.as_str(), "status" => status)
        .increment(1);
    metrics::histogram!("smhfs_smh_request_duration_seconds", "kind" => kind.as_str())
        .record(elapsed.as_secs_f64());
    tracing::debug!(
        kind = kind.as_str(),
        status,
        ms = elapsed.as_millis() as u64,
        request_id = request_id.unwrap_or("-"),
        url = %shown_url(),
        "smh request"
    );
}

/// The request id SMH (or its object store) gave a response.
pub(crate) fn request_id(headers: &reqwest::header::HeaderMap) -> Option<&str> {
    headers
        .get("x-smh-request-id")
        .or_else(|| headers.get("x-cos-request-id"))
        .and_then(|v| v.to_str().ok())
}

/// A retry after `delay` of backoff.
pub(crate) fn retry(kind: RequestKind, delay: Duration) {
    metrics::counter!("smhfs_smh_retries_total", "kind" => kind.as_str()).increment(1);
    metrics::histogram!("smhfs_smh_backoff_seconds", "kind" => kind.as_str())
        .record(delay.as_secs_f64());
}

/// Body bytes the object store accepted (parts and simple uploads).
pub(crate) fn uploaded(bytes: u64) {
    metrics::counter!("smhfs_smh_upload_bytes_total").increment(bytes);
}

/// File bytes received by ranged reads.
pub(crate) fn downloaded(bytes: u64) {
    metrics::counter!("smhfs_smh_download_bytes_total").increment(bytes);
}

/// An upload the server completed from the content hash alone.
pub(crate) fn instant_upload(bytes_saved: u64) {
    metrics::counter!("smhfs_smh_instant_uploads_total").increment(1);
    metrics::counter!("smhfs_smh_instant_upload_bytes_saved_total").increment(bytes_saved);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_codes_or_classes() {
        assert_eq!(status_label(Some(503)), "503");
        assert_eq!(status_label(Some(418)), "4xx");
        assert_eq!(status_label(Some(207)), "2xx");
        assert_eq!(status_label(Some(599)), "5xx");
        assert_eq!(status_label(None), "error");
    }
}
