//! Directory create with custom metadata (§3.4: the optional body
//! `{"metaData": {...}}` of `PUT .../directory/{path}`), for the modes
//! smhfs keeps (`fs::posix`).

use reqwest::Method;

use super::client::{path_reply, ApiCall, SmhClient};
use super::telemetry::RequestKind;
use super::types::MetaData;
use super::{ConflictStrategy, Result, SmhPath};

impl SmhClient {
    /// [`create_dir`](SmhClient::create_dir) storing `meta` with the
    /// directory (none: the same request without a body).
    pub async fn create_dir_with_meta(
        &self,
        path: &SmhPath,
        strategy: ConflictStrategy,
        meta: &MetaData,
    ) -> Result<SmhPath> {
        if meta.is_empty() {
            return self.create_dir(path, strategy).await;
        }
        let call = ApiCall::new(
            RequestKind::Mkdir,
            Method::PUT,
            self.space_path("directory", path),
        )
        .query("conflict_resolution_strategy", strategy.as_str())
        .json(&serde_json::json!({ "metaData": meta }));
        let resp = self.call(call).await?;
        path_reply(resp, path).await
    }
}
