//! Directory create with custom metadata and local times (smh-api.md §3.4).
//! Files get theirs at upload begin (`UploadOptions::meta`, sent as
//! `x-smh-meta-*` headers).

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::client::{path_reply, ApiCall, SmhClient};
use super::error::Result;
use super::path::SmhPath;
use super::telemetry::RequestKind;
use super::types::{ConflictStrategy, MetaData};

/// Optional body of a directory create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirCreateBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<MetaData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_modification_time: Option<String>,
}

impl SmhClient {
    /// [`SmhClient::create_dir`] that also stores `body` on the new (last)
    /// directory; returns the final path.
    pub async fn create_dir_with(
        &self,
        path: &SmhPath,
        strategy: ConflictStrategy,
        body: &DirCreateBody,
    ) -> Result<SmhPath> {
        let call = ApiCall::new(
            RequestKind::Mkdir,
            Method::PUT,
            self.space_path("directory", path),
        )
        .query("conflict_resolution_strategy", strategy.as_str())
        .json(body);
        let resp = self.call(call).await?;
        path_reply(resp, path).await
    }
}
