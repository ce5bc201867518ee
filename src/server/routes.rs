//! Request dispatch, path parsing, tokens, directories, spaces, usage.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use rusqlite::OptionalExtension;
use serde_json::{json, Value};

use super::auth::{self, Auth, Token};
use super::error::{request_id, SResult, ServerError};
use super::store::{self, ListSpec, Node, ROOT};
use super::{faults, files, objects, upload, App};
use crate::smh::codes;
use crate::smh::types::{DirEntry, DirListing, EntryInfo, EntryType};

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
            Some(b) => axum::body::to_bytes(b, 4 << 20).await.map_err(|e| {
                ServerError::api(400, codes::BAD_REQUEST, format!("reading the body: {e}"))
            }),
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

/// Entry point for every request.
pub async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let is_object = path.starts_with("/cos/");
    // Tokens, secrets and signatures travel in query strings: redact them
    // (only when the request log is on).
    let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| {
        (
            req.method().clone(),
            crate::smh::redact::redact_url(&req.uri().to_string()),
        )
    });
    let started = std::time::Instant::now();
    let resp = match route(&app, req, &path).await {
        Ok(r) => r,
        Err(e) if is_object => e.into_cos().into_response(),
        Err(e) => e.into_response(),
    };
    if let Some((method, shown)) = logged {
        tracing::debug!(%method, uri = %shown, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    }
    let mut resp = resp;
    if !resp.headers().contains_key("x-smh-request-id") {
        if let Ok(v) = HeaderValue::from_str(&request_id()) {
            resp.headers_mut().insert("x-smh-request-id", v);
        }
    }
    resp
}

fn not_found_route() -> ServerError {
    ServerError::api(404, codes::ROUTE_NOT_FOUND, "no such route")
}

async fn route(app: &Arc<App>, req: Request, path: &str) -> SResult<Response> {
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .unwrap_or_else(|| app.args.listen.clone());
    let mut ctx = Ctx {
        method: parts.method.clone(),
        query: Query::parse(parts.uri.query()),
        headers: parts.headers,
        body: std::sync::Mutex::new(Some(body)),
        host,
    };
    if let Some(admin) = path.strip_prefix("/__") {
        return admin_route(app, &mut ctx, admin).await;
    }
    if let Some(rest) = path.strip_prefix("/cos/") {
        let (kind, id) = rest.split_once('/').ok_or_else(not_found_route)?;
        return match (kind, ctx.method.clone()) {
            ("up", Method::PUT) => upload::object_put(app, ctx, id).await,
            ("blob", Method::GET) | ("blob", Method::HEAD) => {
                objects::object_get(app, ctx, id).await
            }
            _ => Err(ServerError::cos(
                405,
                codes::METHOD_NOT_ALLOWED,
                "method not allowed",
            )),
        };
    }
    let Some(api) = path.strip_prefix("/api/v1/") else {
        return Err(not_found_route());
    };
    app.faults.check("api", false)?;
    app.faults.delay("api").await;
    // Split off up to four raw segments: kind / lib / space / tail.
    let mut it = api.splitn(4, '/');
    let kind = it.next().unwrap_or("");
    let lib = it.next();
    let space = it.next();
    let tail = it.next();
    let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    match kind {
        "token" => token_route(app, &mut ctx, lib.map(dec), space.map(dec)).await,
        "directory" | "file" => {
            let lib = dec(lib.ok_or_else(not_found_route)?);
            let space = dec(space.ok_or_else(not_found_route)?);
            check_library_auth(app, &ctx, &lib)?;
            check_space(app, &space)?;
            let is_file = kind == "file";
            let segs = parse_tail(tail.unwrap_or(""), is_file)?;
            if is_file {
                files::file_route(app, ctx, space, segs).await
            } else {
                dir_route(app, ctx, space, segs).await
            }
        }
        "usage" => {
            let lib = dec(lib.ok_or_else(not_found_route)?);
            check_library_auth(app, &ctx, &lib)?;
            app.stats.op("usage");
            let auth = authenticate(app, &ctx, None)?;
            let _ = auth;
            let spaces: Vec<String> = match space {
                Some(s) if !s.is_empty() => dec(s).split(',').map(String::from).collect(),
                _ => {
                    let total = app
                        .db(|c| {
                            Ok(c.query_row(
                                "SELECT COALESCE(SUM(size),0) FROM nodes WHERE is_dir=0",
                                [],
                                |r| r.get::<_, i64>(0),
                            )?)
                        })
                        .await?;
                    return Ok(json_response(
                        StatusCode::OK,
                        &json!({"totalFileSize": total.to_string()}),
                    ));
                }
            };
            for s in &spaces {
                check_space(app, s)?;
            }
            let cap = app.args.capacity;
            let out = app
                .db(move |c| {
                    let mut v = Vec::new();
                    for s in spaces {
                        let used = store::usage(c, &s)?;
                        v.push(json!({
                            "spaceId": s,
                            "capacity": cap.map(|x| x.to_string()),
                            "availableSpace": cap.map(|x| x.saturating_sub(used).to_string()),
                            "size": used.to_string(),
                        }));
                    }
                    Ok(v)
                })
                .await?;
            Ok(json_response(StatusCode::OK, &out))
        }
        "space" => space_route(app, &mut ctx, lib.map(dec), space.map(dec), tail.map(dec)).await,
        "quota" => {
            let lib = dec(lib.ok_or_else(not_found_route)?);
            let space = dec(space.ok_or_else(not_found_route)?);
            check_library_auth(app, &ctx, &lib)?;
            check_space(app, &space)?;
            app.stats.op("quota");
            authenticate(app, &ctx, Some(&space))?;
            match app.args.capacity {
                Some(cap) => Ok(json_response(
                    StatusCode::OK,
                    &json!({"id": 1, "capacity": cap.to_string()}),
                )),
                None => Err(ServerError::api(
                    404,
                    codes::NO_QUOTA,
                    "this space has no quota",
                )),
            }
        }
        "recycled" => {
            let lib = dec(lib.ok_or_else(not_found_route)?);
            let space = dec(space.ok_or_else(not_found_route)?);
            check_library_auth(app, &ctx, &lib)?;
            check_space(app, &space)?;
            let item = match tail.filter(|t| !t.is_empty()) {
                None => None,
                Some(t) => Some(t.parse::<i64>().map_err(|_| {
                    ServerError::api(404, codes::RECYCLED_ITEM_NOT_FOUND, "no such recycled item")
                })?),
            };
            match (ctx.method.clone(), item) {
                (Method::GET, None) => {
                    app.stats.op("recycled_list");
                    authenticate(app, &ctx, Some(&space))?;
                    recycled_list(app, &ctx, space).await
                }
                (Method::POST, Some(id)) if ctx.query.flag("restore") => {
                    let auth = authenticate(app, &ctx, Some(&space))?;
                    auth.require(&["restore_recycled"])?;
                    recycled_restore(app, &ctx, space, id).await
                }
                (Method::DELETE, item) => {
                    let auth = authenticate(app, &ctx, Some(&space))?;
                    auth.require(&["delete_recycled"])?;
                    recycled_purge(app, space, item).await
                }
                _ => Err(not_found_route()),
            }
        }
        _ => Err(not_found_route()),
    }
}

/// Largest listing offset accepted (keeps arithmetic and SQLite in range).
const MAX_OFFSET: u64 = 1 << 40;

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

// ---------------------------------------------------------------- auth

/// Checks the token of a request; `space` restricts space-bound tokens.
pub fn authenticate(app: &App, ctx: &Ctx, space: Option<&str>) -> SResult<Auth> {
    if let Some(sec) = ctx.query.get("library_secret") {
        if !sec.is_empty() {
            if sec == app.args.secret {
                return Ok(Auth::full());
            }
            return Err(ServerError::api(
                404,
                codes::WRONG_LIBRARY_ID_OR_SECRET,
                "wrong library secret",
            ));
        }
    }
    let bearer = ctx
        .headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(|s| s.trim().to_string());
    let tok = ctx
        .query
        .get("access_token")
        .filter(|t| !t.is_empty())
        .map(String::from)
        .or(bearer)
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

async fn token_route(
    app: &Arc<App>,
    ctx: &mut Ctx,
    lib: Option<String>,
    tok: Option<String>,
) -> SResult<Response> {
    match (lib, tok, ctx.method.clone()) {
        (None, _, Method::GET) | (None, _, Method::POST) => {
            app.faults.check("token", false)?;
            app.faults.delay("token").await;
            app.stats.op("token_create");
            mint(app, ctx).await
        }
        (Some(lib), Some(tok), m)
            if !tok.is_empty() && (m == Method::POST || m == Method::DELETE) =>
        {
            app.faults.check("token", false)?;
            app.faults.delay("token").await;
            check_library(app, &lib)?;
            if m == Method::DELETE {
                app.stats.op("token_delete");
                app.tokens.lock().remove(&tok);
                let store = app.store.clone();
                tokio::task::spawn_blocking(move || auth::delete_token(&store, Some(&tok)))
                    .await??;
                return Ok(empty(StatusCode::NO_CONTENT));
            }
            app.stats.op("token_renew");
            let now = auth::now_secs();
            let renewed = {
                let mut tokens = app.tokens.lock();
                match tokens.get_mut(&tok) {
                    Some(t) if t.expires > now => {
                        let life = app.args.token_ttl.map_or(t.period, |ttl| ttl.min(t.period));
                        t.expires = now + life as i64;
                        Some((t.clone(), life))
                    }
                    _ => None,
                }
            };
            let (t, life) = renewed.ok_or_else(|| {
                ServerError::api(
                    403,
                    codes::INVALID_ACCESS_TOKEN,
                    "access token invalid or expired",
                )
            })?;
            let store = app.store.clone();
            let tok2 = tok.clone();
            tokio::task::spawn_blocking(move || auth::save_token(&store, &tok2, &t)).await??;
            Ok(json_response(
                StatusCode::OK,
                &json!({"accessToken": tok, "expiresIn": life}),
            ))
        }
        (Some(lib), None, Method::DELETE) | (Some(lib), Some(_), Method::DELETE) => {
            // Delete a user's tokens (library secret required).
            check_library(app, &lib)?;
            app.stats.op("token_delete");
            if ctx.query.get("library_secret") != Some(app.args.secret.as_str()) {
                return Err(ServerError::api(
                    404,
                    codes::WRONG_LIBRARY_ID_OR_SECRET,
                    "wrong library secret",
                ));
            }
            let user = ctx.query.get("user_id").unwrap_or("").to_string();
            let clients: Option<Vec<String>> = ctx
                .query
                .get("client_id")
                .map(|c| c.split(',').map(String::from).collect());
            let _ = clients;
            let removed: Vec<String> = {
                let mut tokens = app.tokens.lock();
                let keys: Vec<String> = tokens
                    .iter()
                    .filter(|(_, t)| t.user_id.as_deref() == Some(user.as_str()))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in &keys {
                    tokens.remove(k);
                }
                keys
            };
            let store = app.store.clone();
            tokio::task::spawn_blocking(move || {
                for k in removed {
                    auth::delete_token(&store, Some(&k))?;
                }
                Ok::<_, ServerError>(())
            })
            .await??;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(not_found_route()),
    }
}

async fn mint(app: &Arc<App>, ctx: &Ctx) -> SResult<Response> {
    let q = &ctx.query;
    let lib = q.get("library_id").unwrap_or("");
    let sec = q.get("library_secret").unwrap_or("");
    if lib.is_empty() || sec.is_empty() {
        return Err(ServerError::api(
            400,
            codes::EMPTY_LIBRARY_ID_OR_SECRET,
            "library_id and library_secret are required",
        ));
    }
    if lib != app.args.library || sec != app.args.secret {
        return Err(ServerError::api(
            404,
            codes::WRONG_LIBRARY_ID_OR_SECRET,
            "wrong library id or secret",
        ));
    }
    let period = auth::period_of(q.get("period"));
    let life = app
        .args
        .token_ttl
        .map_or(period, |ttl| ttl.clamp(1, period));
    let user_id = q.get("user_id").filter(|u| !u.is_empty()).map(String::from);
    if user_id.as_ref().is_some_and(|u| u.len() > 200) {
        return Err(ServerError::api(
            400,
            codes::USER_ID_LENGTH_EXCEED,
            "user_id too long",
        ));
    }
    let spaces: Option<Vec<String>> = q
        .get("space_id")
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(String::from).collect());
    if let Some(sp) = &spaces {
        for s in sp {
            check_space(app, s)?;
        }
    }
    let grants: Vec<String> = q
        .get("grant")
        .unwrap_or("")
        .split(',')
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    let t = Token {
        grants,
        period: life,
        expires: auth::now_secs() + life as i64,
        user_id,
        spaces,
        extend: app.args.token_ttl.is_none(),
    };
    let value = auth::new_token_value();
    app.tokens.lock().insert(value.clone(), t.clone());
    let store = app.store.clone();
    let v2 = value.clone();
    tokio::task::spawn_blocking(move || auth::save_token(&store, &v2, &t)).await??;
    Ok(json_response(
        StatusCode::OK,
        &json!({"accessToken": value, "expiresIn": life}),
    ))
}

// ---------------------------------------------------------------- admin

async fn admin_route(app: &Arc<App>, ctx: &mut Ctx, path: &str) -> SResult<Response> {
    let bad = |m: String| ServerError::api(400, codes::BAD_REQUEST, m);
    match (ctx.method.clone(), path) {
        (Method::GET, "stats") => {
            let mut stats = app.stats.json();
            stats["faults_injected"] = app.faults.fired_json();
            Ok(json_response(StatusCode::OK, &stats))
        }
        (Method::POST, "stats/reset") => {
            app.stats.reset();
            app.faults.reset_fired();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, "fault") => {
            let b = ctx.body_bytes().await?;
            let spec = String::from_utf8_lossy(&b).to_string();
            app.faults.add(faults::parse_fault(&spec).map_err(bad)?);
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, "latency") => {
            let b = ctx.body_bytes().await?;
            let spec = String::from_utf8_lossy(&b).to_string();
            let (t, ms) = faults::parse_latency(&spec).map_err(bad)?;
            app.faults.add_latency(t, ms);
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, "faults/clear") => {
            app.faults.clear();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, "revoke-tokens") => {
            app.tokens.lock().clear();
            let store = app.store.clone();
            tokio::task::spawn_blocking(move || auth::delete_token(&store, None)).await??;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(not_found_route()),
    }
}

// ---------------------------------------------------------------- directories

pub fn entry_of(n: &Node) -> DirEntry {
    DirEntry {
        name: n.name.clone(),
        kind: if n.is_dir {
            EntryType::Dir
        } else {
            EntryType::File
        },
        creation_time: Some(n.ctime.clone()),
        modification_time: Some(n.mtime.clone()),
        local_modification_time: n.lmtime.clone(),
        size: (!n.is_dir).then(|| n.size.to_string()),
        e_tag: Some(n.etag()),
        crc64: if n.is_dir { None } else { n.crc64.clone() },
        content_type: if n.is_dir { None } else { n.ctype.clone() },
        inode: None,
    }
}

pub fn info_of(n: &Node, path: Vec<String>) -> EntryInfo {
    EntryInfo {
        path,
        name: n.name.clone(),
        kind: if n.is_dir {
            EntryType::Dir
        } else {
            EntryType::File
        },
        user_id: None,
        creation_time: Some(n.ctime.clone()),
        modification_time: Some(n.mtime.clone()),
        local_modification_time: n.lmtime.clone(),
        e_tag: Some(n.etag()),
        inode: Some(format!("{:032x}", n.id)),
        size: (!n.is_dir).then(|| n.size.to_string()),
        crc64: if n.is_dir { None } else { n.crc64.clone() },
        content_type: if n.is_dir { None } else { n.ctype.clone() },
    }
}

fn if_none_match(ctx: &Ctx, etag: &str) -> bool {
    ctx.headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn not_modified(etag: &str) -> Response {
    let mut r = empty(StatusCode::NOT_MODIFIED);
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert("etag", v);
    }
    r
}

async fn dir_route(
    app: &Arc<App>,
    mut ctx: Ctx,
    space: String,
    segs: Vec<String>,
) -> SResult<Response> {
    match ctx.method.clone() {
        Method::GET if ctx.query.flag("info") => {
            app.stats.op("dir_info");
            authenticate(app, &ctx, Some(&space))?;
            let segs2 = segs.clone();
            let n = app
                .db(move |c| store::resolve(c, &space, &segs2))
                .await?
                .ok_or_else(|| {
                    ServerError::api(404, codes::PATH_NOT_FOUND, "no such file or directory")
                })?;
            let etag = n.etag();
            if if_none_match(&ctx, &etag) {
                return Ok(not_modified(&etag));
            }
            Ok(json_response(StatusCode::OK, &info_of(&n, segs)))
        }
        Method::GET => {
            app.faults.check("list", false)?;
            app.faults.delay("list").await;
            app.stats.op("dir_list");
            authenticate(app, &ctx, Some(&space))?;
            dir_list(app, &ctx, space, segs).await
        }
        Method::HEAD => {
            app.stats.op("dir_head");
            authenticate(app, &ctx, Some(&space))?;
            let n = app
                .db(move |c| store::resolve_dir(c, &space, &segs))
                .await?;
            match n {
                Some(n) => {
                    let mut r = empty(StatusCode::OK);
                    if let Ok(v) = HeaderValue::from_str(&n.etag()) {
                        r.headers_mut().insert("etag", v);
                    }
                    Ok(r)
                }
                None => Err(ServerError::api(
                    404,
                    codes::DIRECTORY_NOT_FOUND,
                    "directory not found",
                )),
            }
        }
        Method::PUT => {
            let body = ctx.json_value().await?;
            if let Some(from) = body.get("from") {
                let from = from
                    .as_str()
                    .ok_or_else(|| {
                        ServerError::api(400, codes::BAD_REQUEST, "`from` must be a string")
                    })?
                    .to_string();
                app.stats.op("dir_move");
                let auth = authenticate(app, &ctx, Some(&space))?;
                auth.require(&["move_directory"])?;
                dir_move(app, &ctx, space, segs, &from, false).await
            } else if let Some(from) = body.get("copyFrom") {
                let from = from
                    .as_str()
                    .ok_or_else(|| {
                        ServerError::api(400, codes::BAD_REQUEST, "`copyFrom` must be a string")
                    })?
                    .to_string();
                app.stats.op("dir_copy");
                let auth = authenticate(app, &ctx, Some(&space))?;
                auth.require(&["copy_directory"])?;
                dir_move(app, &ctx, space, segs, &from, true).await
            } else {
                app.stats.op("dir_create");
                let auth = authenticate(app, &ctx, Some(&space))?;
                auth.require(&["create_directory"])?;
                if segs.is_empty() {
                    return Err(ServerError::conflict());
                }
                let rename = ctx.strategy(crate::smh::types::ConflictStrategy::Ask)?
                    == crate::smh::types::ConflictStrategy::Rename;
                let (path, ctime) = app
                    .db(move |c| {
                        let (p, id) = store::mkdirs(c, &space, &segs, rename)?;
                        let ctime = store::node(c, id)?.map(|n| n.ctime).unwrap_or_default();
                        Ok((p, ctime))
                    })
                    .await?;
                Ok(json_response(
                    StatusCode::CREATED,
                    &json!({"path": path, "creationTime": ctime}),
                ))
            }
        }
        Method::DELETE => {
            app.stats.op("dir_delete");
            let auth = authenticate(app, &ctx, Some(&space))?;
            let permanent = ctx.query.flag("permanent") || app.args.no_recycle_bin;
            if permanent && !app.args.no_recycle_bin {
                auth.require(&["delete_directory_permanent"])?;
            } else {
                auth.require(&["delete_directory", "delete_directory_permanent"])?;
            }
            if segs.is_empty() {
                return Err(ServerError::api(
                    400,
                    codes::ROOT_DIRECTORY_NOT_ALLOWED,
                    "cannot delete the root directory",
                ));
            }
            delete_node(app, space, segs, true, permanent).await
        }
        _ => Err(ServerError::api(
            405,
            codes::METHOD_NOT_ALLOWED,
            "method not allowed",
        )),
    }
}

/// Deletes a file or directory (bin or permanent).
pub async fn delete_node(
    app: &Arc<App>,
    space: String,
    segs: Vec<String>,
    dir: bool,
    permanent: bool,
) -> SResult<Response> {
    let (rid, blobs) = app
        .db(move |c| {
            let n = store::resolve(c, &space, &segs)?.filter(|n| n.is_dir == dir && n.id != ROOT);
            let n = n.ok_or_else(|| {
                if dir {
                    ServerError::api(404, codes::DIRECTORY_NOT_FOUND, "directory not found")
                } else {
                    ServerError::api(404, codes::FILE_NOT_FOUND, "file not found")
                }
            })?;
            if permanent {
                let blobs = store::delete_tree(c, n.id)?;
                store::touch(c, &space, n.parent)?;
                Ok((None, blobs))
            } else {
                Ok((Some(store::recycle(c, &space, &n)?), Vec::new()))
            }
        })
        .await?;
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.remove_orphans(blobs)).await?;
    Ok(match rid {
        Some(id) => json_response(StatusCode::OK, &json!({"recycledItemId": id})),
        None => empty(StatusCode::NO_CONTENT),
    })
}

fn order_sql(ctx: &Ctx) -> SResult<String> {
    let col = match ctx.query.get("order_by").unwrap_or("name") {
        "" | "name" => "name",
        "modificationTime" => "mtime",
        "creationTime" | "localCreationTime" => "ctime",
        "size" => "size",
        other => {
            return Err(ServerError::api(
                400,
                codes::PARAM_INVALID,
                format!("invalid order_by {other:?}"),
            ))
        }
    };
    let dir = match ctx.query.get("order_by_type").unwrap_or("asc") {
        "" | "asc" => "ASC",
        "desc" => "DESC",
        other => {
            return Err(ServerError::api(
                400,
                codes::PARAM_INVALID,
                format!("invalid order_by_type {other:?}"),
            ))
        }
    };
    let tie = if col == "name" {
        String::new()
    } else {
        format!(", name {dir}")
    };
    Ok(if ctx.query.get("sort_type") == Some("union") {
        format!("{col} {dir}{tie}")
    } else {
        format!("is_dir DESC, {col} {dir}{tie}")
    })
}

fn num_param(ctx: &Ctx, k: &str) -> SResult<Option<u64>> {
    match ctx.query.get(k) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ServerError::api(400, codes::PARAM_INVALID, format!("invalid {k} {v:?}"))),
    }
}

async fn dir_list(
    app: &Arc<App>,
    ctx: &Ctx,
    space: String,
    segs: Vec<String>,
) -> SResult<Response> {
    let order = order_sql(ctx)?;
    let filter = match ctx.query.get("filter") {
        Some("onlyDir") => "is_dir=1",
        Some("onlyFile") => "is_dir=0",
        _ => "",
    };
    let page = num_param(ctx, "page")?;
    let page_size = num_param(ctx, "page_size")?;
    let page_mode = page.is_some() || page_size.is_some();
    let (limit, offset) = if page_mode {
        let ps = page_size.unwrap_or(20).clamp(1, 1000);
        let p = page.unwrap_or(1).max(1);
        (ps, (p - 1).saturating_mul(ps).min(MAX_OFFSET))
    } else {
        let limit = num_param(ctx, "limit")?.unwrap_or(20).clamp(1, 1000);
        let offset = match ctx.query.get("marker") {
            None | Some("") => 0,
            Some(m) => m
                .strip_prefix("o")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .filter(|o| *o < MAX_OFFSET)
                .ok_or_else(|| ServerError::api(404, codes::MARKER_NOT_FOUND, "invalid marker"))?,
        };
        (limit, offset)
    };
    let path = segs.clone();
    let spec = ListSpec {
        order,
        filter,
        limit: limit + 1,
        offset,
    };
    let (dir, items, (files, dirs)) = app
        .db(move |c| {
            let dir = store::resolve(c, &space, &segs)?.ok_or_else(|| {
                ServerError::api(404, codes::DIRECTORY_NOT_FOUND, "directory not found")
            })?;
            if !dir.is_dir {
                return Err(ServerError::api(
                    404,
                    codes::DIRECTORY_NOT_FOUND,
                    "not a directory",
                ));
            }
            let items = store::list(c, &space, dir.id, &spec)?;
            let counts = store::counts(c, &space, dir.id)?;
            Ok((dir, items, counts))
        })
        .await?;
    let etag = dir.etag();
    if if_none_match(ctx, &etag) {
        return Ok(not_modified(&etag));
    }
    let more = items.len() as u64 > limit;
    let with_inode = ctx.query.flag("with_inode");
    let contents: Vec<DirEntry> = items
        .iter()
        .take(limit as usize)
        .map(|n| {
            let mut e = entry_of(n);
            if with_inode {
                e.inode = Some(format!("{:032x}", n.id));
            }
            e
        })
        .collect();
    let listing = DirListing {
        path,
        next_marker: (more && !page_mode).then(|| format!("o{:x}", offset + limit)),
        e_tag: Some(etag.clone()),
        file_count: files,
        sub_dir_count: dirs,
        total_num: files + dirs,
        contents,
    };
    let mut r = json_response(StatusCode::OK, &listing);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert("etag", v);
    }
    Ok(r)
}

async fn dir_move(
    app: &Arc<App>,
    ctx: &Ctx,
    space: String,
    dest: Vec<String>,
    from: &str,
    copy: bool,
) -> SResult<Response> {
    let src = parse_body_path(from, false)?;
    if dest.is_empty() {
        return Err(ServerError::api(
            400,
            codes::INVALID_DESTINATION_PATH,
            "destination cannot be the root",
        ));
    }
    let strategy = ctx.strategy(crate::smh::types::ConflictStrategy::Ask)?;
    let rename = match strategy {
        crate::smh::types::ConflictStrategy::Ask => false,
        crate::smh::types::ConflictStrategy::Rename => true,
        crate::smh::types::ConflictStrategy::Overwrite => {
            return Err(ServerError::api(
                400,
                codes::INVALID_CONFLICT_RESOLUTION_STRATEGY,
                "overwrite is not valid for directories",
            ))
        }
    };
    let path = app
        .db(move |c| {
            let n = store::resolve(c, &space, &src)?
                .filter(|n| n.is_dir && n.id != ROOT)
                .ok_or_else(|| {
                    ServerError::api(
                        404,
                        codes::SOURCE_DIRECTORY_NOT_FOUND,
                        "source directory not found",
                    )
                })?;
            if dest == src && !copy {
                return Ok(dest);
            }
            if dest.len() > src.len() && dest.starts_with(&src) {
                return Err(ServerError::api(
                    400,
                    codes::SOURCE_DIRECTORY_IS_PARENT_OF_DESTINATION,
                    "the destination is inside the source",
                ));
            }
            let (name, parents) = dest.split_last().ok_or_else(|| {
                ServerError::api(400, codes::INVALID_DESTINATION_PATH, "empty destination")
            })?;
            let parent = store::ensure_parents(c, &space, parents)?;
            let final_name = match store::child(c, &space, parent, name)? {
                None => name.clone(),
                Some(_) if rename => store::free_name(c, &space, parent, name, true)?,
                Some(_) => return Err(ServerError::conflict()),
            };
            if copy {
                store::copy_tree(c, &space, n.id, parent, &final_name)?;
            } else {
                c.execute(
                    "UPDATE nodes SET parent=?2, name=?3 WHERE id=?1",
                    rusqlite::params![n.id, parent, final_name],
                )?;
                store::touch(c, &space, n.parent)?;
                store::touch(c, &space, parent)?;
            }
            let mut p = parents.to_vec();
            p.push(final_name);
            Ok(p)
        })
        .await?;
    if rename {
        Ok(json_response(StatusCode::OK, &json!({"path": path})))
    } else {
        Ok(empty(StatusCode::NO_CONTENT))
    }
}

// ---------------------------------------------------------------- spaces

async fn space_route(
    app: &Arc<App>,
    ctx: &mut Ctx,
    lib: Option<String>,
    space: Option<String>,
    tail: Option<String>,
) -> SResult<Response> {
    let lib = lib.ok_or_else(not_found_route)?;
    check_library_auth(app, ctx, &lib)?;
    match (ctx.method.clone(), space.as_deref(), tail.as_deref()) {
        (Method::POST, None, _) | (Method::POST, Some(""), _) => {
            app.stats.op("space_create");
            let auth = authenticate(app, ctx, None)?;
            auth.require_admin("create_space")?;
            if !app.args.multi_space {
                return Err(ServerError::api(
                    400,
                    codes::NOT_MULTI_SPACE_LIBRARY,
                    "the library is not multi-tenant (start with --multi-space)",
                ));
            }
            let id = match ctx.query.get("space_id").filter(|s| !s.is_empty()) {
                Some(id) => {
                    let ok = (2..=32).contains(&id.len())
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !id.starts_with('-')
                        && !id.ends_with('-');
                    if !ok {
                        return Err(ServerError::api(
                            400,
                            codes::SPACE_ID_INVALID,
                            "invalid space id",
                        ));
                    }
                    if app.spaces.lock().contains(id) {
                        return Err(ServerError::api(
                            409,
                            codes::SPACE_ALREADY_EXISTS,
                            "space already exists",
                        ));
                    }
                    id.to_string()
                }
                None => format!("space{}", store::random_hex(7)),
            };
            let id2 = id.clone();
            app.db(move |c| store::ensure_space(c, &id2)).await?;
            app.spaces.lock().insert(id.clone());
            Ok(json_response(StatusCode::CREATED, &json!({"spaceId": id})))
        }
        (Method::GET, Some("list"), None) | (Method::GET, Some("list"), Some("")) => {
            app.stats.op("space_list");
            authenticate(app, ctx, None)?;
            let limit = num_param(ctx, "limit")?.unwrap_or(1000).clamp(1, 1000);
            let marker = ctx.query.get("marker").unwrap_or("").to_string();
            let rows = app
                .db(move |c| {
                    let mut stmt = c.prepare(
                        "SELECT id, ctime FROM spaces WHERE id > ?1 ORDER BY id LIMIT ?2",
                    )?;
                    let rows = stmt
                        .query_map(rusqlite::params![marker, (limit + 1) as i64], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                        })?
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(rows)
                })
                .await?;
            let more = rows.len() as u64 > limit;
            let list: Vec<Value> = rows
                .iter()
                .take(limit as usize)
                .map(|(id, ct)| json!({"spaceId": id, "userId": "", "creationTime": ct}))
                .collect();
            let mut out = json!({ "list": list });
            if more {
                if let Some((last, _)) = rows.get(limit as usize - 1) {
                    out["nextMarker"] = json!(last);
                }
            }
            Ok(json_response(StatusCode::OK, &out))
        }
        (Method::DELETE, Some(sp), None) | (Method::DELETE, Some(sp), Some("")) => {
            app.stats.op("space_delete");
            let auth = authenticate(app, ctx, None)?;
            auth.require_admin("delete_space")?;
            if !app.args.multi_space {
                return Err(ServerError::api(
                    400,
                    codes::NOT_MULTI_SPACE_LIBRARY,
                    "the library is not multi-tenant",
                ));
            }
            check_space(app, sp)?;
            let force = ctx.query.flag("force");
            let sp2 = sp.to_string();
            let blobs = app
                .db(move |c| {
                    let n: i64 =
                        c.query_row("SELECT COUNT(*) FROM nodes WHERE space=?1", [&sp2], |r| {
                            r.get(0)
                        })?;
                    if n > 0 && !force {
                        return Err(ServerError::api(
                            409,
                            codes::SPACE_NOT_EMPTY,
                            "space is not empty",
                        ));
                    }
                    let mut stmt =
                        c.prepare("SELECT blob FROM nodes WHERE space=?1 AND blob IS NOT NULL")?;
                    let blobs = stmt
                        .query_map([&sp2], |r| r.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()?;
                    c.execute("DELETE FROM nodes WHERE space=?1", [&sp2])?;
                    c.execute("DELETE FROM recycled WHERE space=?1", [&sp2])?;
                    c.execute("DELETE FROM spaces WHERE id=?1", [&sp2])?;
                    Ok(blobs)
                })
                .await?;
            app.spaces.lock().remove(sp);
            let store = app.store.clone();
            tokio::task::spawn_blocking(move || store.remove_orphans(blobs)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::GET, Some(sp), Some("size")) => {
            app.stats.op("space_size");
            check_space(app, sp)?;
            authenticate(app, ctx, Some(sp))?;
            let sp2 = sp.to_string();
            let used = app.db(move |c| store::usage(c, &sp2)).await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"size": used.to_string()}),
            ))
        }
        _ => Err(not_found_route()),
    }
}

async fn recycled_list(app: &Arc<App>, ctx: &Ctx, space: String) -> SResult<Response> {
    let limit = num_param(ctx, "limit")?.unwrap_or(20).clamp(1, 100);
    let offset = match ctx.query.get("marker") {
        None | Some("") => 0,
        Some(m) => m
            .parse::<u64>()
            .ok()
            .filter(|o| *o < MAX_OFFSET)
            .ok_or_else(|| ServerError::api(404, codes::MARKER_NOT_FOUND, "invalid marker"))?,
    };
    let rows = app
        .db(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, orig, name, is_dir, size, ctime, mtime, rtime FROM recycled WHERE space=?1 ORDER BY id LIMIT ?2 OFFSET ?3",
            )?;
            let rows = stmt
                .query_map(rusqlite::params![space, (limit + 1) as i64, offset as i64], |r| {
                    let orig: String = r.get(1)?;
                    let is_dir = r.get::<_, i64>(3)? != 0;
                    Ok(json!({
                        "recycledItemId": r.get::<_, i64>(0)?,
                        "originalPath": serde_json::from_str::<Value>(&orig).unwrap_or(json!([])),
                        "name": r.get::<_, String>(2)?,
                        "type": if is_dir { "dir" } else { "file" },
                        "size": r.get::<_, i64>(4)?.to_string(),
                        "creationTime": r.get::<_, Option<String>>(5)?,
                        "modificationTime": r.get::<_, Option<String>>(6)?,
                        "removalTime": r.get::<_, String>(7)?,
                        "remainingTime": 30,
                    }))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    let more = rows.len() as u64 > limit;
    let contents: Vec<Value> = rows.into_iter().take(limit as usize).collect();
    let mut out = json!({ "contents": contents });
    if more {
        out["nextMarker"] = json!((offset + limit).to_string());
    }
    Ok(json_response(StatusCode::OK, &out))
}

fn recycled_not_found() -> ServerError {
    ServerError::api(404, codes::RECYCLED_ITEM_NOT_FOUND, "no such recycled item")
}

/// `POST /api/v1/recycled/{lib}/{space}/{id}?restore`.
async fn recycled_restore(app: &Arc<App>, ctx: &Ctx, space: String, id: i64) -> SResult<Response> {
    use crate::smh::types::ConflictStrategy;
    let strategy = ctx.strategy(ConflictStrategy::Ask)?;
    let fallback_root = ctx.query.get("restore_path_strategy") == Some("fallbackToRoot");
    let (path, blobs) = app
        .db(move |c| {
            let row: Option<(i64, String)> = c
                .query_row(
                    "SELECT node, orig FROM recycled WHERE id=?1 AND space=?2",
                    rusqlite::params![id, space],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (node_id, orig) = row.ok_or_else(recycled_not_found)?;
            let n = store::node(c, node_id)?.ok_or_else(recycled_not_found)?;
            let orig: Vec<String> = serde_json::from_str(&orig).unwrap_or_default();
            let parents = orig
                .split_last()
                .map(|(_, p)| p.to_vec())
                .unwrap_or_default();
            let parent = match store::resolve_dir(c, &space, &parents)? {
                Some(p) => p.id,
                None if fallback_root => ROOT,
                None => store::ensure_parents(c, &space, &parents)?,
            };
            let parent_path = if parent == ROOT { Vec::new() } else { parents };
            let mut blobs = Vec::new();
            let name = match store::child(c, &space, parent, &n.name)? {
                None => n.name.clone(),
                Some(e) => match strategy {
                    ConflictStrategy::Ask => return Err(ServerError::conflict()),
                    ConflictStrategy::Rename => {
                        store::free_name(c, &space, parent, &n.name, n.is_dir)?
                    }
                    ConflictStrategy::Overwrite => {
                        if e.is_dir || n.is_dir {
                            return Err(ServerError::conflict());
                        }
                        blobs = store::delete_tree(c, e.id)?;
                        n.name.clone()
                    }
                },
            };
            c.execute(
                "UPDATE nodes SET parent=?2, name=?3 WHERE id=?1",
                rusqlite::params![n.id, parent, name],
            )?;
            c.execute("DELETE FROM recycled WHERE id=?1", [id])?;
            store::touch(c, &space, parent)?;
            let mut p = parent_path;
            p.push(name);
            Ok((p, blobs))
        })
        .await?;
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.remove_orphans(blobs)).await?;
    Ok(json_response(StatusCode::OK, &json!({ "path": path })))
}

/// `DELETE /api/v1/recycled/{lib}/{space}[/{id}]`: purge one item or empty the bin.
async fn recycled_purge(app: &Arc<App>, space: String, item: Option<i64>) -> SResult<Response> {
    let blobs = app
        .db(move |c| {
            let items: Vec<(i64, i64)> = {
                let mut stmt = c.prepare(
                    "SELECT id, node FROM recycled WHERE space=?1 AND (?2 IS NULL OR id=?2)",
                )?;
                let rows = stmt
                    .query_map(rusqlite::params![space, item], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            if item.is_some() && items.is_empty() {
                return Err(recycled_not_found());
            }
            let mut blobs = Vec::new();
            for (id, node) in items {
                blobs.extend(store::delete_tree(c, node)?);
                c.execute("DELETE FROM recycled WHERE id=?1", [id])?;
            }
            Ok(blobs)
        })
        .await?;
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.remove_orphans(blobs)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
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
