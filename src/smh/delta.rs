//! The change feed (`fs-delta`, smh-api.md §4.15) and conditional listings:
//! how a client learns what other clients changed.

use reqwest::{Method, StatusCode};

use super::client::{decode_json, percent, ApiCall, SmhClient};
use super::codes;
use super::error::{Result, SmhError};
use super::path::SmhPath;
use super::telemetry::RequestKind;
use super::types::{DeltaCursor, DeltaPage, DirListing};

/// Entries asked for per `delta` call.
pub const DELTA_PAGE: u32 = 500;

/// What a `delta` call found.
#[derive(Debug)]
pub enum DeltaPoll {
    /// The changes after the cursor (possibly none).
    Changes(DeltaPage),
    /// The server cannot continue from this cursor (expired, unknown):
    /// get a new one and revalidate everything cached.
    CursorLost(SmhError),
}

impl SmhClient {
    fn delta_path(&self, what: &str) -> String {
        let c = self.config();
        format!(
            "fs-delta/{}/{}/{what}",
            percent(&c.library),
            percent(&c.space)
        )
    }

    /// The current position of the space's change log; `Ok(None)` when the
    /// server has no feed (404 or `FunctionNotEnabled`).
    pub async fn delta_cursor(&self) -> Result<Option<String>> {
        let call = ApiCall::new(RequestKind::Delta, Method::GET, self.delta_path("cursor"));
        match self.call_json::<DeltaCursor>(call).await {
            Ok(c) => Ok(Some(c.cursor)),
            Err(e) if no_feed(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The changes after `cursor` (at most `limit`). Any 4xx but an auth
    /// or rate error means the cursor is lost (§4.15).
    pub async fn delta(&self, cursor: &str, limit: u32) -> Result<DeltaPoll> {
        let call = ApiCall::new(RequestKind::Delta, Method::GET, self.delta_path("delta"))
            .query("cursor", cursor)
            .query("limit", limit.clamp(1, 1000).to_string());
        match self.call_json::<DeltaPage>(call).await {
            Ok(p) => Ok(DeltaPoll::Changes(p)),
            Err(e) if cursor_lost(&e) => Ok(DeltaPoll::CursorLost(e)),
            Err(e) => Err(e),
        }
    }

    /// One listing page with `inode`s, unless the directory's eTag is still
    /// `etag` (`Ok(None)`: 304, which costs the server no listing).
    pub async fn list_page_if_changed(
        &self,
        dir: &SmhPath,
        marker: Option<&str>,
        limit: u32,
        etag: Option<&str>,
    ) -> Result<Option<DirListing>> {
        let mut call = ApiCall::new(
            RequestKind::List,
            Method::GET,
            self.space_path("directory", dir),
        )
        .query("limit", limit.clamp(1, 1000).to_string())
        .query("with_inode", "1");
        if let Some(m) = marker {
            call = call.query("marker", m);
        }
        if let Some(t) = etag {
            call.headers.push(("if-none-match".into(), t.to_string()));
        }
        let path = call.path.clone();
        let resp = self.call(call).await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        decode_json(resp, &path).await.map(Some)
    }
}

fn no_feed(e: &SmhError) -> bool {
    e.status() == Some(404) || e.code() == Some(codes::FUNCTION_NOT_ENABLED)
}

fn cursor_lost(e: &SmhError) -> bool {
    matches!(e.status(), Some(s) if (400..500).contains(&s) && s != 401 && s != 403 && s != 429)
}
