//! Native symlinks (smh-api.md §4.7) and item info by inode (§4.14).
//!
//! SMH links point at an existing file of the same space; the server keeps
//! the target's inode (`linkTo` in listings and `?info`), so a link follows
//! renames, moves and overwrites of its target. Errors come back as
//! [`SmhError::Api`] with the SMH code (`FileNotFound`,
//! `SymlinkToDirectoryNotAllowed`, `CircleSymlink`,
//! `SymlinkDepthLimitExceeded`, `SameNameDirectoryOrFileExists`).

use reqwest::Method;
use serde_json::json;

use super::client::{path_reply, percent, ApiCall, SmhClient};
use super::error::{Result, SmhError};
use super::path::SmhPath;
use super::telemetry::RequestKind;
use super::types::{ConflictStrategy, EntryInfo};

impl SmhClient {
    /// Creates the symlink `link` → `target` (a path in the same space);
    /// returns the link's final path (`rename` may change its name).
    pub async fn create_symlink(
        &self,
        link: &SmhPath,
        target: &SmhPath,
        strategy: ConflictStrategy,
    ) -> Result<SmhPath> {
        if target.is_root() {
            return Err(SmhError::InvalidPath(
                "a symlink cannot point at the root".into(),
            ));
        }
        let call = ApiCall::new(
            RequestKind::Symlink,
            Method::PUT,
            self.space_path("file", link),
        )
        .query("conflict_resolution_strategy", strategy.as_str())
        .json(&json!({ "linkTo": target.to_string() }));
        let resp = self.call(call).await?;
        path_reply(resp, link).await
    }

    /// The info (with `path`) of the item with this `inode`; `Ok(None)`
    /// when the server knows no such live item.
    pub async fn info_by_inode(&self, inode: &str) -> Result<Option<EntryInfo>> {
        let c = &self.inner.config;
        let path = format!(
            "inode/{}/{}/{}",
            percent(&c.library),
            percent(&c.space),
            percent(inode)
        );
        let call = ApiCall::new(RequestKind::Info, Method::GET, path);
        match self.call_json(call).await {
            Ok(info) => Ok(Some(info)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
