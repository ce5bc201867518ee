//! Connection, token, retries and the directory/file endpoints.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::error::{Result, SmhError};
use super::path::SmhPath;
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

/// Space usage for statfs. `capacity`/`available` are `None` without a quota.
#[derive(Debug, Clone)]
pub struct Usage {
    pub used: u64,
    pub capacity: Option<u64>,
    pub available: Option<u64>,
}

/// Cheap-to-clone handle on one library space.
#[derive(Clone)]
pub struct SmhClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: reqwest::Client,
}

impl SmhClient {
    /// Builds the client; makes no request.
    pub fn new(config: ClientConfig) -> Result<Self> {
        todo!()
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A valid token, minting or renewing one if needed.
    pub async fn access_token(&self) -> Result<String> {
        todo!()
    }

    /// Proves the endpoint, credentials and space work (token + root listing).
    pub async fn check_access(&self) -> Result<()> {
        todo!()
    }

    // ---- directories -------------------------------------------------

    /// One listing page (marker paging; `limit` <= 1000).
    pub async fn list_page(
        &self,
        dir: &SmhPath,
        marker: Option<&str>,
        limit: u32,
    ) -> Result<DirListing> {
        todo!()
    }

    /// All entries of a directory, 1000 per request.
    pub async fn list_all(&self, dir: &SmhPath) -> Result<Vec<DirEntry>> {
        todo!()
    }

    /// `?info` on any path; `Ok(None)` when it does not exist.
    pub async fn stat(&self, path: &SmhPath) -> Result<Option<EntryInfo>> {
        todo!()
    }

    /// `HEAD` on a directory.
    pub async fn dir_exists(&self, path: &SmhPath) -> Result<bool> {
        todo!()
    }

    /// Creates the directory (and missing parents); returns the final path.
    pub async fn create_dir(&self, path: &SmhPath, strategy: ConflictStrategy) -> Result<SmhPath> {
        todo!()
    }

    /// Deletes recursively (to the recycle bin unless `permanent`).
    pub async fn delete_dir(&self, path: &SmhPath, permanent: bool) -> Result<()> {
        todo!()
    }

    /// Moves/renames a directory (`ask` or `rename` only).
    pub async fn move_dir(
        &self,
        from: &SmhPath,
        to: &SmhPath,
        strategy: ConflictStrategy,
    ) -> Result<SmhPath> {
        todo!()
    }

    // ---- files -------------------------------------------------------

    /// `?info` with a download URL (`cos_url`).
    pub async fn file_info(&self, path: &SmhPath) -> Result<FileInfo> {
        todo!()
    }

    /// `HEAD`; `Ok(None)` when missing.
    pub async fn head_file(&self, path: &SmhPath) -> Result<Option<FileHead>> {
        todo!()
    }

    /// The download endpoint's 302 `Location` (a pre-signed object URL).
    pub async fn download_url(&self, path: &SmhPath) -> Result<String> {
        todo!()
    }

    /// Ranged GET on an object URL. A 403 (expired URL) comes back as
    /// `SmhError::Api { status: 403, .. }` so the caller can fetch a new URL.
    pub async fn read_range(&self, url: &str, offset: u64, len: u64) -> Result<Bytes> {
        todo!()
    }

    pub async fn delete_file(&self, path: &SmhPath, permanent: bool) -> Result<()> {
        todo!()
    }

    pub async fn move_file(
        &self,
        from: &SmhPath,
        to: &SmhPath,
        strategy: ConflictStrategy,
    ) -> Result<SmhPath> {
        todo!()
    }

    pub async fn copy_file(
        &self,
        from: &SmhPath,
        to: &SmhPath,
        strategy: ConflictStrategy,
    ) -> Result<SmhPath> {
        todo!()
    }

    /// Usage and quota of the space (for statfs).
    pub async fn usage(&self) -> Result<Usage> {
        todo!()
    }
}
