//! The HTTP context every handler works with: the request taken apart
//! (`Ctx`, `Query`), authentication, path and parameter parsing, and typed
//! replies.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};

use super::actor::Actor;
use super::auth::{self, Auth};
use super::error::{SResult, ServerError};
use super::App;
use crate::smh::codes;

/// Decoded query string.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// Bare `?flag` or `?flag=1` (anything but `0`/`false`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some(v) if v != "0" && v != "false")
    }
}

/// One request, taken apart.
pub struct Ctx {
    pub method: Method,
    pub query: Query,
    pub headers: HeaderMap,
    /// Taken once; in a Mutex so that `&Ctx` is Sync (Body is not).
    pub body: std::sync::Mutex<Option<Body>>,
    /// `host:port` clients reached us at.
    pub host: String,
}

impl Ctx {
    pub async fn body_bytes(&mut self) -> SResult<Bytes> {
        let body = self.take_body();
        match body {
            None => Ok(Bytes::new()),
            Some(b) => axum::body::to_bytes(b, 4 << 20)
                .await
                .map_err(|e| body_error(&e, codes::BAD_REQUEST)),
        }
    }

    pub fn take_body(&self) -> Option<Body> {
        self.body.lock().ok().and_then(|mut b| b.take())
    }

    /// JSON body as a value; empty body → `{}`.
    pub async fn json_value(&mut self) -> SResult<Value> {
        let b = self.body_bytes().await?;
        if b.iter().all(|c| c.is_ascii_whitespace()) {
            return Ok(json!({}));
        }
        let v: Value = serde_json::from_slice(&b).map_err(|e| {
            ServerError::api(400, codes::BAD_REQUEST, format!("malformed JSON body: {e}"))
        })?;
        match v {
            Value::Null => Ok(json!({})),
            Value::Object(_) => Ok(v),
            _ => Err(ServerError::api(
                400,
                codes::BAD_REQUEST,
                "the JSON body must be an object",
            )),
        }
    }

    pub fn strategy(
        &self,
        default: crate::smh::types::ConflictStrategy,
    ) -> SResult<crate::smh::types::ConflictStrategy> {
        match self.query.get("conflict_resolution_strategy") {
            None | Some("") => Ok(default),
            Some(s) => s.parse().map_err(|e: String| {
                ServerError::api(400, codes::INVALID_CONFLICT_RESOLUTION_STRATEGY, e)
            }),
        }
    }
}

/// A request body sent nothing for `--body-timeout` seconds.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for too long")]
pub struct BodyTimeout;

/// `body` with an idle timeout: every chunk must arrive within `idle`, else
/// reading it fails with [`BodyTimeout`] (and the connection is closed, the
/// body being unread).
pub fn with_idle_timeout(body: Body, idle: std::time::Duration) -> Body {
    use futures::StreamExt;
    if axum::body::HttpBody::is_end_stream(&body) {
        return body;
    }
    let stream = futures::stream::unfold(Some(body.into_data_stream()), move |s| async move {
        let mut s = s?;
        match tokio::time::timeout(idle, s.next()).await {
            Ok(Some(Ok(b))) => Some((Ok(b), Some(s))),
            Ok(Some(Err(e))) => Some((Err(axum::BoxError::from(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(axum::BoxError::from(BodyTimeout)), None)),
        }
    });
    Body::from_stream(stream)
}

/// The error for a body that could not be read: 408 `ReadRequestTimeout`
/// after [`BodyTimeout`], else 400 with `code`.
pub fn body_error(e: &(dyn std::error::Error + 'static), code: &str) -> ServerError {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyTimeout>() {
            return ServerError::api(408, codes::READ_REQUEST_TIMEOUT, BodyTimeout.to_string());
        }
        cur = err.source();
    }
    ServerError::api(400, code, format!("reading the body: {e}"))
}

pub fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::to_string(v).unwrap_or_else(|_| "{}".into()),
    )
        .into_response()
}

pub fn empty(status: StatusCode) -> Response {
    status.into_response()
}

pub fn not_found_route() -> ServerError {
    ServerError::api(404, codes::ROUTE_NOT_FOUND, "no such route")
}

/// Largest listing offset accepted (keeps arithmetic and SQLite in range).
pub const MAX_OFFSET: u64 = 1 << 40;

/// Library check for authenticated routes: a token presented for another
/// library is an invalid token (403), as on Tencent Cloud.
pub fn check_library_auth(app: &App, ctx: &Ctx, lib: &str) -> SResult<()> {
    if lib == app.args.library {
        return Ok(());
    }
    let has_token = ctx.query.get("access_token").is_some_and(|t| !t.is_empty())
        || ctx.headers.contains_key("authorization");
    if has_token {
        Err(ServerError::api(
            403,
            codes::INVALID_ACCESS_TOKEN,
            format!("the access token is not valid for library {lib:?}"),
        ))
    } else {
        check_library(app, lib)
    }
}

pub fn check_library(app: &App, lib: &str) -> SResult<()> {
    if lib == app.args.library {
        Ok(())
    } else {
        Err(ServerError::api(
            404,
            codes::LIBRARY_NOT_FOUND,
            format!("library {lib:?} not found"),
        ))
    }
}

pub fn check_space(app: &App, space: &str) -> SResult<()> {
    if app.spaces.lock().contains(space) {
        Ok(())
    } else {
        Err(ServerError::api(
            404,
            codes::SPACE_NOT_FOUND,
            format!("space {space:?} not found"),
        ))
    }
}

/// Percent-decodes the path tail (so `%2F` separates too) and validates it.
pub fn parse_tail(raw: &str, file_route: bool) -> SResult<Vec<String>> {
    if raw.is_empty() || raw == "/" {
        return Ok(Vec::new());
    }
    let bytes: Vec<u8> = percent_decode_str(raw).collect();
    let s = String::from_utf8(bytes)
        .map_err(|_| ServerError::api(400, codes::ILLEGAL_FILE_NAME, "path is not valid UTF-8"))?;
    let segs: Vec<&str> = s.split('/').collect();
    let n = segs.len();
    let mut out = Vec::with_capacity(n);
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == n;
        if seg.is_empty() {
            return Err(ServerError::api(
                400,
                if last {
                    codes::EMPTY_FILE_NAME
                } else {
                    codes::INVALID_FILE_PATH
                },
                "empty path segment",
            ));
        }
        if *seg == "." || *seg == ".." {
            return Err(ServerError::api(
                400,
                codes::INVALID_FILE_PATH,
                format!("{seg:?} is not allowed in a path"),
            ));
        }
        if seg.chars().any(|c| c == '\0' || c.is_control()) {
            return Err(ServerError::api(
                400,
                codes::ILLEGAL_FILE_NAME,
                "control characters are not allowed in names",
            ));
        }
        if seg.len() > crate::smh::path::MAX_NAME_BYTES {
            let code = if file_route && last {
                codes::FILE_NAME_LENGTH_EXCEED
            } else {
                codes::DIRECTORY_NAME_LENGTH_EXCEED
            };
            return Err(ServerError::api(400, code, "name longer than 255 bytes"));
        }
        out.push(seg.to_string());
    }
    Ok(out)
}

/// Splits and validates a move/copy source path from a JSON body.
pub fn parse_body_path(p: &str, file_route: bool) -> SResult<Vec<String>> {
    let t = p.trim_start_matches('/');
    let t = t.strip_suffix('/').unwrap_or(t);
    if t.is_empty() {
        return Err(ServerError::api(
            400,
            if file_route {
                codes::INVALID_SOURCE_FILE
            } else {
                codes::INVALID_SOURCE_DIRECTORY
            },
            "empty source path",
        ));
    }
    // Body paths are plain (not percent-encoded): validate segment by segment.
    let segs: Vec<String> = t.split('/').map(String::from).collect();
    for (i, s) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        if s.is_empty() || s == "." || s == ".." {
            return Err(ServerError::api(
                400,
                codes::INVALID_FILE_PATH,
                "invalid source path",
            ));
        }
        if s.len() > 255 {
            return Err(ServerError::api(
                400,
                if file_route && last {
                    codes::FILE_NAME_LENGTH_EXCEED
                } else {
                    codes::DIRECTORY_NAME_LENGTH_EXCEED
                },
                "name longer than 255 bytes",
            ));
        }
    }
    Ok(segs)
}

/// The access token a request carries: the `access_token` query, else an
/// `Authorization: Bearer` header.
pub fn token_of(ctx: &Ctx) -> Option<String> {
    let bearer = ctx
        .headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(|s| s.trim().to_string());
    ctx.query
        .get("access_token")
        .filter(|t| !t.is_empty())
        .map(String::from)
        .or(bearer)
}

/// Checks the token of a request; `space` restricts space-bound tokens.
pub fn authenticate(app: &App, ctx: &Ctx, space: Option<&str>) -> SResult<Auth> {
    if let Some(sec) = ctx.query.get("library_secret") {
        if !sec.is_empty() {
            if sec == app.secret {
                return Ok(Auth::full());
            }
            return Err(ServerError::api(
                404,
                codes::WRONG_LIBRARY_ID_OR_SECRET,
                "wrong library secret",
            ));
        }
    }
    let tok = token_of(ctx)
        .ok_or_else(|| ServerError::api(400, codes::EMPTY_ACCESS_TOKEN, "access token missing"))?;
    let mut tokens = app.tokens.lock();
    let now = auth::now_secs();
    let invalid = || {
        ServerError::api(
            403,
            codes::INVALID_ACCESS_TOKEN,
            "access token invalid or expired",
        )
    };
    let t = tokens.get_mut(&tok).ok_or_else(invalid)?;
    if t.expires <= now {
        tokens.remove(&tok);
        return Err(invalid());
    }
    if t.extend {
        t.expires = now + t.period as i64;
    }
    if let (Some(space), Some(allowed)) = (space, &t.spaces) {
        if !allowed.iter().any(|s| s == space) {
            return Err(ServerError::api(
                403,
                codes::ACCESS_TOKEN_NOT_MATCH_SPACE,
                "token not valid for this space",
            ));
        }
    }
    Ok(Auth {
        admin: false,
        grants: t.grants.clone(),
    })
}

pub fn if_none_match(ctx: &Ctx, etag: &str) -> bool {
    etag_matches(if_none_match_header(ctx).as_deref(), etag)
}

/// The request's `If-None-Match`, for checks made away from the `Ctx`.
pub fn if_none_match_header(ctx: &Ctx) -> Option<String> {
    ctx.headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// Whether an `If-None-Match` value names `etag` (or is `*`).
pub fn etag_matches(header: Option<&str>, etag: &str) -> bool {
    header.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

pub fn not_modified(etag: &str) -> Response {
    let mut r = empty(StatusCode::NOT_MODIFIED);
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert("etag", v);
    }
    r
}

pub fn num_param(ctx: &Ctx, k: &str) -> SResult<Option<u64>> {
    match ctx.query.get(k) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ServerError::api(400, codes::PARAM_INVALID, format!("invalid {k} {v:?}"))),
    }
}

/// The user a request acts as. A token issued for a user acts as that
/// user; the library secret, or a token with admin rights and no user,
/// acts as the `user_id` the request names (if any). Invalid credentials
/// act as nobody (authentication refuses them later).
pub fn actor_of(app: &App, ctx: &Ctx) -> Actor {
    let named = || {
        ctx.query
            .get("user_id")
            .filter(|u| !u.is_empty())
            .map(std::sync::Arc::from)
    };
    if let Some(sec) = ctx.query.get("library_secret").filter(|s| !s.is_empty()) {
        return if sec == app.secret { named() } else { None };
    }
    let tok = token_of(ctx)?;
    let tokens = app.tokens.lock();
    let t = tokens.get(&tok)?;
    match &t.user_id {
        Some(u) => Some(std::sync::Arc::from(u.as_str())),
        None if t.grants.iter().any(|g| g == "admin") => named(),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert!(parse_tail("", false).unwrap().is_empty());
        assert!(parse_tail("/", false).unwrap().is_empty());
        assert_eq!(parse_tail("a%2Fb/c%20d", true).unwrap(), ["a", "b", "c d"]);
        assert_eq!(
            parse_tail("a/..", true).unwrap_err().code(),
            codes::INVALID_FILE_PATH
        );
        assert_eq!(
            parse_tail("a/", true).unwrap_err().code(),
            codes::EMPTY_FILE_NAME
        );
        assert_eq!(
            parse_tail("a//b", true).unwrap_err().code(),
            codes::INVALID_FILE_PATH
        );
        let long = "x".repeat(256);
        assert_eq!(
            parse_tail(&long, true).unwrap_err().code(),
            codes::FILE_NAME_LENGTH_EXCEED
        );
        assert_eq!(
            parse_tail(&format!("{long}/a"), true).unwrap_err().code(),
            codes::DIRECTORY_NAME_LENGTH_EXCEED
        );
        assert_eq!(
            parse_tail("%FF", true).unwrap_err().code(),
            codes::ILLEGAL_FILE_NAME
        );
    }

    #[test]
    fn query_flags() {
        let q = Query::parse(Some("info&multipart=1&permanent=0&by-marker=1"));
        assert!(q.flag("info") && q.flag("multipart"));
        assert!(!q.flag("permanent") && !q.flag("confirm"));
    }
}
