//! Connection, token, retries and the directory/file endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::codes;
use super::error::{Result, SmhError};
use super::path::SmhPath;
use super::redact::redact_url;
use super::telemetry::{self, RequestKind};
use super::types::*;

/// How the client authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// Mint tokens with `GET /api/v1/token` (and re-mint when they die).
    LibrarySecret(String),
    /// Use a token minted elsewhere; renewed with `POST /api/v1/token/{lib}/{token}`.
    AccessToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::LibrarySecret(_) => f.write_str("LibrarySecret(REDACTED)"),
            Credentials::AccessToken(_) => f.write_str("AccessToken(REDACTED)"),
        }
    }
}

/// Bounded exponential backoff with jitter, for 429, 5xx and broken connections.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://{lib}.api.tencentsmh.cn`, or `http://127.0.0.1:PORT` for `smhfs serve`.
    pub endpoint: url::Url,
    pub library: String,
    /// `-` for single-tenant libraries.
    pub space: String,
    pub user_id: Option<String>,
    pub credentials: Credentials,
    pub retry: RetryPolicy,
    /// Per-request timeout for API calls (not for part/object transfers).
    pub request_timeout: Duration,
    /// Grants asked for when minting a token (comma separated).
    pub grants: String,
}

impl ClientConfig {
    pub fn new(endpoint: url::Url, library: &str, space: &str, credentials: Credentials) -> Self {
        Self {
            endpoint,
            library: library.to_string(),
            space: space.to_string(),
            user_id: None,
            credentials,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(60),
            grants: "space_admin".to_string(),
        }
    }
}

/// What `HEAD /api/v1/file/...` tells (x-smh-* headers).
#[derive(Debug, Clone)]
pub struct FileHead {
    pub size: u64,
    pub kind: String,
    pub crc64: Option<String>,
    pub etag: Option<String>,
    pub modification_time: Option<String>,
}

/// Cheap-to-clone handle on one library space.
#[derive(Clone)]
pub struct SmhClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: reqwest::Client,
    token: tokio::sync::Mutex<Option<TokenState>>,
}

#[derive(Clone)]
struct TokenState {
    token: String,
    /// When to renew (a margin before the server's expiry); `None` = unknown.
    renew_at: Option<Instant>,
}

/// One API call, kept re-sendable so retries and token refreshes can repeat it.
pub(crate) struct ApiCall {
    /// What it is for (metrics label, debug line).
    pub kind: RequestKind,
    pub method: Method,
    /// Path below `/api/v1/`, already encoded.
    pub path: String,
    /// Value-less action flag written first (`info`, `multipart`, ...).
    pub flag: Option<&'static str>,
    pub query: Vec<(&'static str, String)>,
    pub json: Option<serde_json::Value>,
    pub headers: Vec<(std::borrow::Cow<'static, str>, String)>,
    /// Send the access token (everything but token minting).
    pub auth: bool,
    pub timeout: Option<Duration>,
}

impl ApiCall {
    pub fn new(kind: RequestKind, method: Method, path: String) -> Self {
        Self {
            kind,
            method,
            path,
            flag: None,
            query: Vec::new(),
            json: None,
            headers: Vec::new(),
            auth: true,
            timeout: None,
        }
    }
    pub fn flag(mut self, f: &'static str) -> Self {
        self.flag = Some(f);
        self
    }
    pub fn query(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.query.push((k, v.into()));
        self
    }
    pub fn json(mut self, v: &impl serde::Serialize) -> Self {
        self.json = serde_json::to_value(v).ok();
        self
    }
}

pub(crate) fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Reads an SMH error body (JSON) or an object-store error (COS XML).
pub(crate) async fn error_from_response(resp: reqwest::Response) -> SmhError {
    let status = resp.status().as_u16();
    let header_id = resp
        .headers()
        .get("x-smh-request-id")
        .or_else(|| resp.headers().get("x-cos-request-id"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (bytes, _) = read_capped(resp, MAX_ERROR_BYTES).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let mut body: ErrorBody = serde_json::from_str(&text).unwrap_or_default();
    if body.code.is_empty() {
        if let Some(code) = xml_tag(&text, "Code") {
            body.code = code;
            body.message = xml_tag(&text, "Message").unwrap_or_default();
            body.request_id = xml_tag(&text, "RequestId");
        } else if body.message.is_empty() {
            body.message = text.chars().take(200).collect();
        }
    }
    if body.request_id.is_none() {
        body.request_id = header_id;
    }
    SmhError::api(status, body)
}

fn xml_tag(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    Some(text[start..end].to_string())
}

impl SmhClient {
    /// Builds the client; makes no request.
    pub fn new(config: ClientConfig) -> Result<Self> {
        match config.endpoint.scheme() {
            "http" | "https" => {}
            other => {
                return Err(SmhError::Config(format!(
                    "endpoint must be an http or https URL, not {other}:"
                )))
            }
        }
        if config.library.is_empty() {
            return Err(SmhError::Config("library id is empty".into()));
        }
        if config.space.is_empty() || config.space.contains('/') {
            return Err(SmhError::Config(format!(
                "invalid space id {:?}",
                config.space
            )));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .user_agent(concat!("smhfs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SmhError::Config(format!("cannot build HTTP client: {e}")))?;
        let token = match &config.credentials {
            Credentials::AccessToken(t) => Some(TokenState {
                token: t.clone(),
                renew_at: None,
            }),
            Credentials::LibrarySecret(_) => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                token: tokio::sync::Mutex::new(token),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn base(&self) -> String {
        self.inner
            .config
            .endpoint
            .as_str()
            .trim_end_matches('/')
            .to_string()
    }

    /// `{kind}/{lib}/{space}/{path}` below `/api/v1/`.
    pub(crate) fn space_path(&self, kind: &str, path: &SmhPath) -> String {
        let c = &self.inner.config;
        let mut p = format!("{kind}/{}/{}", percent(&c.library), percent(&c.space));
        if !path.is_root() {
            p.push('/');
            p.push_str(&path.encoded());
        }
        p
    }

    /// Scheme of the endpoint: object URLs from tickets use the same one.
    pub(crate) fn scheme(&self) -> &str {
        self.inner.config.endpoint.scheme()
    }

    // ---- tokens --------------------------------------------------------

    /// A valid token, minting or renewing one if needed.
    pub async fn access_token(&self) -> Result<String> {
        let mut guard = self.inner.token.lock().await;
        if let Some(state) = guard.as_ref() {
            let fresh = state.renew_at.is_none_or(|t| Instant::now() < t);
            if fresh {
                return Ok(state.token.clone());
            }
        }
        let state = self.obtain_token(guard.as_ref()).await?;
        let token = state.token.clone();
        *guard = Some(state);
        Ok(token)
    }

    /// Replaces a token the server refused; concurrent callers refresh once.
    async fn refresh_token(&self, refused: &str) -> Result<()> {
        let mut guard = self.inner.token.lock().await;
        if let Some(state) = guard.as_ref() {
            if state.token != refused {
                return Ok(());
            }
        }
        let state = self.obtain_token(guard.as_ref()).await?;
        *guard = Some(state);
        Ok(())
    }

    async fn obtain_token(&self, current: Option<&TokenState>) -> Result<TokenState> {
        let c = &self.inner.config;
        let call = match (&c.credentials, current) {
            (Credentials::LibrarySecret(secret), _) => {
                let mut call = ApiCall::new(RequestKind::Token, Method::GET, "token".into())
                    .query("library_id", c.library.clone())
                    .query("library_secret", secret.clone())
                    .query("grant", c.grants.clone());
                if c.space != "-" {
                    call = call.query("space_id", c.space.clone());
                }
                if let Some(u) = &c.user_id {
                    call = call.query("user_id", u.clone());
                }
                call.auth = false;
                call
            }
            (Credentials::AccessToken(t), cur) => {
                let token = cur.map(|s| s.token.clone()).unwrap_or_else(|| t.clone());
                let mut call = ApiCall::new(
                    RequestKind::Token,
                    Method::POST,
                    format!("token/{}/{}", percent(&c.library), percent(&token)),
                );
                call.auth = false;
                call
            }
        };
        // Boxed: token calls never ask for a token, but the types recurse.
        let reply: TokenReply = Box::pin(self.call_json_with(call, false)).await?;
        if reply.access_token.is_empty() {
            return Err(SmhError::Malformed {
                url: "token".into(),
                message: "empty accessToken".into(),
            });
        }
        // Renew at 80% of the lifetime (at least 1 s ahead) so calls never race expiry.
        let life = Duration::from_secs(reply.expires_in.max(1));
        let renew_at = Instant::now()
            + life.mul_f64(0.8).min(
                life.saturating_sub(Duration::from_secs(1))
                    .max(Duration::from_millis(800)),
            );
        tracing::debug!(expires_in = reply.expires_in, "access token obtained");
        Ok(TokenState {
            token: reply.access_token,
            renew_at: Some(renew_at),
        })
    }

    // ---- request machinery --------------------------------------------

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let r = &self.inner.config.retry;
        let exp = r.base_delay.saturating_mul(1u32 << attempt.min(16));
        let capped = exp.min(r.max_delay);
        let jitter: f64 = rand::rng().random_range(0.5..1.0);
        capped.mul_f64(jitter)
    }

    /// Sends an API call with token, retries and error decoding; returns a
    /// successful (2xx or 3xx) response.
    pub(crate) async fn call(&self, call: ApiCall) -> Result<reqwest::Response> {
        self.call_with(call, true).await
    }

    async fn call_with(&self, call: ApiCall, refresh_on_403: bool) -> Result<reqwest::Response> {
        let max = self.inner.config.retry.max_retries;
        let mut attempt = 0u32;
        let mut refreshed = !refresh_on_403;
        loop {
            let token = if call.auth {
                Some(self.access_token().await?)
            } else {
                None
            };
            let mut url = format!("{}/api/v1/{}", self.base(), call.path);
            let mut q: Vec<String> = Vec::new();
            if let Some(f) = call.flag {
                q.push(f.to_string());
            }
            for (k, v) in &call.query {
                q.push(format!("{k}={}", percent(v)));
            }
            if let Some(u) = &self.inner.config.user_id {
                if call.auth {
                    q.push(format!("user_id={}", percent(u)));
                }
            }
            if let Some(t) = &token {
                q.push(format!("access_token={}", percent(t)));
            }
            if !q.is_empty() {
                url.push('?');
                url.push_str(&q.join("&"));
            }
            let mut req = self
                .inner
                .http
                .request(call.method.clone(), &url)
                .timeout(call.timeout.unwrap_or(self.inner.config.request_timeout));
            for (k, v) in &call.headers {
                req = req.header(k.as_ref(), v);
            }
            if let Some(j) = &call.json {
                req = req.json(j);
            }
            let started = Instant::now();
            let result = req.send().await;
            // Only worked out when something is shown (errors, debug).
            let shown = || redact_url(&url);
            match result {
                Err(e) => {
                    let shown = shown();
                    telemetry::exchange(call.kind, None, started.elapsed(), None, || shown.clone());
                    let err = SmhError::Network {
                        url: shown.clone(),
                        message: error_chain(&e),
                    };
                    if attempt < max {
                        let d = self.backoff(attempt);
                        telemetry::retry(call.kind, d);
                        tracing::warn!(method = %call.method, url = %shown, error = %err, retry_in = ?d, "request failed; retrying");
                        tokio::time::sleep(d).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(err);
                }
                Ok(resp) => {
                    let status = resp.status();
                    telemetry::exchange(
                        call.kind,
                        Some(status.as_u16()),
                        started.elapsed(),
                        telemetry::request_id(resp.headers()),
                        shown,
                    );
                    if status.is_success() || status.is_redirection() {
                        return Ok(resp);
                    }
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let err = error_from_response(resp).await;
                    if status == StatusCode::FORBIDDEN
                        && err.code() == Some(codes::INVALID_ACCESS_TOKEN)
                        && !refreshed
                    {
                        if let Some(t) = &token {
                            tracing::info!("access token refused; obtaining a new one");
                            refreshed = true;
                            self.refresh_token(t).await?;
                            continue;
                        }
                    }
                    if err.is_retryable() && attempt < max {
                        let d = retry_after
                            .unwrap_or_else(|| self.backoff(attempt))
                            .min(self.inner.config.retry.max_delay);
                        telemetry::retry(call.kind, d);
                        tracing::warn!(method = %call.method, url = %shown(), error = %err, retry_in = ?d, "server error; retrying");
                        tokio::time::sleep(d).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    pub(crate) async fn call_json<T: DeserializeOwned>(&self, call: ApiCall) -> Result<T> {
        self.call_json_with(call, true).await
    }

    async fn call_json_with<T: DeserializeOwned>(&self, call: ApiCall, refresh: bool) -> Result<T> {
        let path = call.path.clone();
        let resp = self.call_with(call, refresh).await?;
        decode_json(resp, &path).await
    }

    /// Proves the endpoint, credentials and space work (token + root listing).
    pub async fn check_access(&self) -> Result<()> {
        self.access_token().await?;
        self.list_page(&SmhPath::root(), None, 1).await?;
        Ok(())
    }

    // ---- directories -------------------------------------------------

    /// One listing page (marker paging; `limit` <= 1000).
    pub async fn list_page(
        &self,
        dir: &SmhPath,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<DirListing> {
        let mut call = ApiCall::new(
            RequestKind::List,
            Method::GET,
            self.space_path("directory", dir),
        )
        .query("limit", limit.clamp(1, 1000).to_string());
        if let Some(m) = marker {
            call = call.query("marker", m);
        }
        self.call_json(call).await
    }

    /// All entries of a directory, 1000 per request.
    pub async fn list_all(&self, dir: &SmhPath) -> Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self.list_page(dir, marker.as_deref(), 1000).await?;
            out.extend(page.contents);
            match page.next_marker {
                Some(m) if !m.is_empty() && Some(&m) != marker.as_ref() => marker = Some(m),
                _ => return Ok(out),
            }
        }
    }

    /// `?info` on any path; `Ok(None)` when it does not exist.
    pub async fn stat(&self, path: &SmhPath) -> Result<Option<EntryInfo>> {
        let call = ApiCall::new(
            RequestKind::Info,
            Method::GET,
            self.space_path("directory", path),
        )
        .flag("info");
        match self.call_json(call).await {
            Ok(info) => Ok(Some(info)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `HEAD` on a directory.
    pub async fn dir_exists(&self, path: &SmhPath) -> Result<bool> {
        let call = ApiCall::new(
            RequestKind::Head,
            Method::HEAD,
            self.space_path("directory", path),
        );
        match self.call(call).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the directory (and missing parents); returns the final path.
    pub async fn create_dir(&self, path: &SmhPath, strategy: ConflictStrategy) -> Result<SmhPath> {
        let call = ApiCall::new(
            RequestKind::Mkdir,
            Method::PUT,
            self.space_path("directory", path),
        )
        .query("conflict_resolution_strategy", strategy.as_str());
        let resp = self.call(call).await?;
        path_reply(resp, path).await
    }

    /// Deletes recursively (to the recycle bin unless `permanent`).
    pub async fn delete_dir(&self, path: &SmhPath, permanent: bool) -> Result<()> {
        if path.is_root() {
            return Err(SmhError::InvalidPath(
                "refusing to delete the root directory".into(),
            ));
        }
        self.delete("directory", path, permanent).await
    }

    /// DELETE of a file or directory (to the recycle bin unless `permanent`).
    async fn delete(&self, kind: &str, path: &SmhPath, permanent: bool) -> Result<()> {
        let call = ApiCall::new(
            RequestKind::Delete,
            Method::DELETE,
            self.space_path(kind, path),
        )
        .query("permanent", if permanent { "1" } else { "0" });
        self.call(call).await.map(drop)
    }

    /// PUT on `to` with a `from` (move) or `copyFrom` (copy) body; the reply's
    /// path is the final one (a `rename` strategy may have changed it).
    async fn put_from(
        &self,
        kind: &str,
        to: &SmhPath,
        body: MoveBody,
        strategy: ConflictStrategy,
    ) -> Result<SmhPath> {
        let request = if body.copy_from.is_some() {
            RequestKind::Copy
        } else {
            RequestKind::Move
        };
        let call = ApiCall::new(request, Method::PUT, self.space_path(kind, to))
            .query("conflict_resolution_strategy", strategy.as_str())
            .json(&body);
        let resp = self.call(call).await?;
        path_reply(resp, to).await
    }

    /// Moves/renames a directory (`ask` or `rename` only).
    pub async fn move_dir(
        &self,
        from: &SmhPath,
        to: &SmhPath,
        strategy: ConflictStrategy,
    ) -> Result<SmhPath> {
        let strategy = match strategy {
            ConflictStrategy::Overwrite => ConflictStrategy::Ask,
            s => s,
        };
        self.put_from("directory", to, MoveBody::moving(from), strategy)
            .await
    }

    // ---- files -------------------------------------------------------

    /// `?info` with a download URL (`cos_url`).
    pub async fn file_info(&self, path: &SmhPath) -> Result<FileInfo> {
        let call = ApiCall::new(
            RequestKind::Info,
            Method::GET,
            self.space_path("file", path),
        )
        .flag("info");
        self.call_json(call).await
    }

    /// `HEAD`; `Ok(None)` when missing.
    pub async fn head_file(&self, path: &SmhPath) -> Result<Option<FileHead>> {
        let call = ApiCall::new(
            RequestKind::Head,
            Method::HEAD,
            self.space_path("file", path),
        );
        let resp = match self.call(call).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let h = resp.headers();
        let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        let size = get("x-smh-size")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| SmhError::Malformed {
                url: self.space_path("file", path),
                message: "HEAD reply has no valid x-smh-size".into(),
            })?;
        Ok(Some(FileHead {
            size,
            kind: get("x-smh-type").unwrap_or_else(|| "file".into()),
            crc64: get("x-smh-crc64"),
            etag: get("x-smh-etag"),
            modification_time: get("x-smh-modification-time"),
        }))
    }

    pub async fn delete_file(&self, path: &SmhPath, permanent: bool) -> Result<()> {
        self.delete("file", path, permanent).await
    }

    pub async fn move_file(
        &self,
        from: &SmhPath,
        to: &SmhPath,
        strategy: ConflictStrategy,
    ) -> Result<SmhPath> {
        self.put_from("file", to, MoveBody::moving(from), strategy)
            .await
    }

    pub async fn copy_file(
        &self,
        from: &SmhPath,
        to: &SmhPath,
        strategy: ConflictStrategy,
    ) -> Result<SmhPath> {
        self.put_from("file", to, MoveBody::copying(from), strategy)
            .await
    }
}

pub(crate) async fn decode_json<T: DeserializeOwned>(
    resp: reqwest::Response,
    path: &str,
) -> Result<T> {
    let (bytes, whole) =
        read_capped(resp, MAX_REPLY_BYTES)
            .await
            .map_err(|e| SmhError::Network {
                url: path.to_string(),
                message: error_chain(&e),
            })?;
    if !whole {
        return Err(too_large(path));
    }
    serde_json::from_slice(&bytes).map_err(|e| SmhError::Malformed {
        url: path.to_string(),
        message: format!(
            "{e}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ),
    })
}

/// The final path of a create/move/copy: the reply's `path`, else the request's.
pub(crate) async fn path_reply(resp: reqwest::Response, requested: &SmhPath) -> Result<SmhPath> {
    let (bytes, whole) = read_capped(resp, MAX_REPLY_BYTES).await.unwrap_or_default();
    if !whole {
        return Err(too_large(&requested.to_string()));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(requested.clone());
    }
    let reply: PathReply = serde_json::from_slice(&bytes).map_err(|e| SmhError::Malformed {
        url: requested.to_string(),
        message: e.to_string(),
    })?;
    match reply.path {
        Some(segs) => SmhPath::from_segments(segs),
        None => Ok(requested.clone()),
    }
}

/// reqwest's Display hides the cause ("error sending request"); show it.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    redact_url(&s)
}

/// Largest JSON API reply read: a listing page of 1000 entries is well
/// under 1 MiB. A hostile or broken endpoint answering more is refused
/// before it can grow the process.
pub const MAX_REPLY_BYTES: usize = 4 << 20;

/// Error bodies: only their code and message are shown.
const MAX_ERROR_BYTES: usize = 64 << 10;

fn too_large(url: &str) -> SmhError {
    SmhError::Malformed {
        url: url.to_string(),
        message: format!(
            "the reply is larger than {} MiB, the limit for an API reply; refused",
            MAX_REPLY_BYTES >> 20
        ),
    }
}

/// Reads at most `cap` bytes of a body, streaming (a declared or actual
/// body past the cap is not read further). `true`: the body was complete.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> reqwest::Result<(Bytes, bool)> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Ok((Bytes::new(), false));
    }
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > cap {
            out.extend_from_slice(&chunk[..cap - out.len()]);
            return Ok((out.freeze(), false));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out.freeze(), true))
}
