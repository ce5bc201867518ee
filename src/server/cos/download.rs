//! The object endpoint (`/cos/blob/...`): signed, expiring URLs with Range
//! support, like the COS pre-signed URLs SMH hands out.

use std::io::SeekFrom;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::server::error::{SResult, ServerError};
use crate::server::http::Ctx;
use crate::server::stats::Stats;
use crate::server::App;
use crate::smh::codes;

fn signature(key: &str, blob: &str, expires: i64, crc: &str, ctype: &str) -> String {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(b"\n");
    h.update(blob.as_bytes());
    h.update(b"\n");
    h.update(expires.to_string().as_bytes());
    h.update(b"\n");
    h.update(crc.as_bytes());
    h.update(b"\n");
    h.update(ctype.as_bytes());
    hex::encode(&h.finalize()[..20])
}

/// A pre-signed download URL valid for `period` seconds.
pub fn signed_url(
    app: &App,
    host: &str,
    blob: &str,
    crc: &str,
    ctype: &str,
    period: u64,
) -> String {
    let expires = chrono::Utc::now().timestamp() + period as i64;
    let sig = signature(&app.sign_key, blob, expires, crc, ctype);
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "http://{host}/cos/blob/{blob}?q-sign-algorithm=sha256&expires={expires}&crc64={}&ct={}&signature={sig}",
        enc(crc),
        enc(ctype)
    )
}

/// Parses one `Range: bytes=...` against `size`: Ok(None) = whole object.
fn parse_range(h: Option<&str>, size: u64) -> SResult<Option<(u64, u64)>> {
    let Some(h) = h else { return Ok(None) };
    let bad = || {
        ServerError::cos(
            416,
            codes::INVALID_RANGE,
            "the requested range is not satisfiable",
        )
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| bad())?;
        if n == 0 || size == 0 {
            return Err(bad());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let s: u64 = a.parse().map_err(|_| bad())?;
        let e: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| bad())?
                .min(size.saturating_sub(1))
        };
        if s >= size || e < s {
            return Err(bad());
        }
        (s, e)
    };
    Ok(Some((start, end)))
}

pub async fn object_get(app: &Arc<App>, ctx: Ctx, blob: &str) -> SResult<Response> {
    app.faults.check("download", true)?;
    app.faults.delay("download").await;
    app.stats.op("object_get");
    let q = &ctx.query;
    let denied = |m: &str| ServerError::cos(403, codes::ACCESS_DENIED, m.to_string());
    let expires: i64 = q
        .get("expires")
        .and_then(|e| e.parse().ok())
        .ok_or_else(|| denied("missing signature"))?;
    let crc = q.get("crc64").unwrap_or("");
    let ctype = q.get("ct").unwrap_or("application/octet-stream");
    let sig = q.get("signature").unwrap_or("");
    if sig != signature(&app.sign_key, blob, expires, crc, ctype) {
        return Err(denied(
            "SignatureDoesNotMatch: the request signature does not match",
        ));
    }
    if chrono::Utc::now().timestamp() > expires {
        return Err(denied("Request has expired"));
    }
    if blob.is_empty() || !blob.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServerError::cos(404, codes::NO_SUCH_KEY, "no such object"));
    }
    let gone = || ServerError::cos(404, codes::NO_SUCH_KEY, "the object does not exist");
    let path = app.store.blob_path(blob);
    // A blob file, or else a small blob in the database.
    let (mut file, mem) = match tokio::fs::File::open(&path).await {
        Ok(f) => (Some(f), None),
        Err(_) => {
            let (store, id) = (app.store.clone(), blob.to_string());
            let data = if store.busy() {
                tokio::task::spawn_blocking(move || store.small_blob(&id)).await??
            } else {
                store.small_blob(&id)?
            };
            (None, Some(axum::body::Bytes::from(data.ok_or_else(gone)?)))
        }
    };
    let size = match (&file, &mem) {
        (Some(f), _) => f.metadata().await?.len(),
        (None, Some(m)) => m.len() as u64,
        (None, None) => return Err(gone()),
    };
    let range = parse_range(ctx.headers.get("range").and_then(|v| v.to_str().ok()), size)?;
    let (status, start, len) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
        None => (StatusCode::OK, 0, size),
    };
    let mut resp = if ctx.method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Stats::add(&app.stats.object_bytes_served, len);
        match (file.take(), mem) {
            (Some(mut file), _) => {
                if start > 0 {
                    file.seek(SeekFrom::Start(start)).await?;
                }
                let stream = ReaderStream::with_capacity(file.take(len), 256 * 1024);
                Response::new(Body::from_stream(stream))
            }
            (None, Some(m)) => {
                Response::new(Body::from(m.slice(start as usize..(start + len) as usize)))
            }
            (None, None) => return Err(gone()),
        }
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("content-length", HeaderValue::from(len));
    h.insert("accept-ranges", HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(ctype) {
        h.insert("content-type", v);
    }
    if let Ok(v) = HeaderValue::from_str(crc) {
        h.insert("x-cos-hash-crc64ecma", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", &blob[..blob.len().min(32)])) {
        h.insert("etag", v);
    }
    if let Some((s, e)) = range {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {s}-{e}/{size}")) {
            h.insert("content-range", v);
        }
    }
    Ok(resp.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range(Some("bytes=90-"), 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range(Some("bytes=-10"), 100).unwrap(), Some((90, 99)));
        assert_eq!(
            parse_range(Some("bytes=50-500"), 100).unwrap(),
            Some((50, 99))
        );
        assert!(parse_range(Some("bytes=100-"), 100).is_err());
        assert_eq!(parse_range(None, 100).unwrap(), None);
    }
}
