//! Downloads: the download endpoint's redirect to a pre-signed object URL,
//! and ranged GETs of that URL (retried, measured, cut to the window asked).

use std::time::Instant;

use bytes::Bytes;
use reqwest::{Method, StatusCode};

use super::client::{error_chain, error_from_response, ApiCall, SmhClient};
use super::error::{Result, SmhError};
use super::path::SmhPath;
use super::redact::redact_url;
use super::telemetry::{self, RequestKind};

impl SmhClient {
    /// The download endpoint's 302 `Location` (a pre-signed object URL).
    pub async fn download_url(&self, path: &SmhPath) -> Result<String> {
        let call = ApiCall::new(
            RequestKind::Download,
            Method::GET,
            self.space_path("file", path),
        );
        let resp = self.call(call).await?;
        let url = self.space_path("file", path);
        if !resp.status().is_redirection() {
            return Err(SmhError::Malformed {
                url,
                message: format!("download answered {} instead of a redirect", resp.status()),
            });
        }
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| SmhError::Malformed {
                url: url.clone(),
                message: "redirect without Location".into(),
            })?;
        let resolved = self
            .inner
            .config
            .endpoint
            .join(loc)
            .map_err(|e| SmhError::Malformed {
                url,
                message: format!("bad Location: {e}"),
            })?;
        Ok(resolved.to_string())
    }

    /// Ranged GET on an object URL. A 403 (expired URL) comes back as
    /// `SmhError::Api { status: 403, .. }` so the caller can fetch a new URL.
    pub async fn read_range(&self, url: &str, offset: u64, len: u64) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let max = self.inner.config.retry.max_retries;
        let shown = redact_url(url);
        let mut attempt = 0;
        loop {
            let started = Instant::now();
            let resp = self
                .inner
                .http
                .get(url)
                .header(
                    reqwest::header::RANGE,
                    format!("bytes={}-{}", offset, offset + len - 1),
                )
                .send()
                .await;
            let status = resp.as_ref().ok().map(|r| r.status().as_u16());
            let id = resp
                .as_ref()
                .ok()
                .and_then(|r| telemetry::request_id(r.headers()));
            telemetry::exchange(RequestKind::Read, status, started.elapsed(), id, || {
                shown.clone()
            });
            let err = match resp {
                Ok(resp) if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE => {
                    return Ok(Bytes::new())
                }
                Ok(resp) if resp.status().is_success() => {
                    // 200: the server ignored Range; our window is cut out
                    // of the whole body as it streams past.
                    let skip = if resp.status() == StatusCode::OK {
                        offset
                    } else {
                        0
                    };
                    match body_window(resp, skip, len).await {
                        Ok(b) => {
                            telemetry::downloaded(b.len() as u64);
                            return Ok(b);
                        }
                        Err(e) => SmhError::Network {
                            url: shown.clone(),
                            message: error_chain(&e),
                        },
                    }
                }
                Ok(resp) => error_from_response(resp).await,
                Err(e) => SmhError::Network {
                    url: shown.clone(),
                    message: error_chain(&e),
                },
            };
            if err.is_retryable() && attempt < max {
                let d = self.backoff(attempt);
                telemetry::retry(RequestKind::Read, d);
                tokio::time::sleep(d).await;
                attempt += 1;
                continue;
            }
            return Err(err);
        }
    }
}

/// Reads the window `[skip, skip + len)` of a response body into one
/// buffer: one copy from the socket's frames, no whole-body buffer, and
/// never more than `len` bytes kept whatever the server sends (a server
/// that ignores Range sends the whole object: the rest is not read).
async fn body_window(mut resp: reqwest::Response, skip: u64, len: u64) -> reqwest::Result<Bytes> {
    let mut out = bytes::BytesMut::with_capacity(len.min(64 << 20) as usize);
    let mut skip = skip;
    while (out.len() as u64) < len {
        let Some(chunk) = resp.chunk().await? else {
            break;
        };
        let from = skip.min(chunk.len() as u64) as usize;
        skip -= from as u64;
        let want = (len - out.len() as u64).min((chunk.len() - from) as u64) as usize;
        out.extend_from_slice(&chunk[from..from + want]);
    }
    // See the end of a well-sized body, so the connection is reused; a body
    // that goes on is not read further.
    if out.len() as u64 == len {
        let _ = resp.chunk().await?;
    }
    Ok(out.freeze())
}
