//! Space-level calls: usage and quota (statfs), batch operations (§5.1)
//! and the tasks large batches run as (§5.2).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use super::client::{decode_json, percent, ApiCall, SmhClient};
use super::error::{Result, SmhError};
use super::path::SmhPath;
use super::telemetry::RequestKind;
use super::types::{
    BatchDeleteItem, BatchItemResult, BatchReply, SpaceSize, SpaceUsage, TaskCreated, TaskInfo,
};

/// How long [`SmhClient::wait_batch_task`] waits for a batch task.
pub const BATCH_TASK_WAIT: Duration = Duration::from_secs(600);

/// Space usage for statfs. `capacity`/`available` are `None` without a quota.
#[derive(Debug, Clone)]
pub struct Usage {
    pub used: u64,
    pub capacity: Option<u64>,
    pub available: Option<u64>,
}

impl SmhClient {
    // ---- batches -----------------------------------------------------

    /// Deletes `paths` in one batch (§5.1; to the recycle bin unless
    /// `permanent`): one result per path, in order; a failed item has a 4xx
    /// or 5xx `status` and its `code`. A batch the server runs as a task
    /// (202) is waited for with [`SmhClient::wait_batch_task`].
    pub async fn batch_delete(
        &self,
        paths: &[SmhPath],
        permanent: bool,
    ) -> Result<Vec<BatchItemResult>> {
        let c = &self.inner.config;
        let items: Vec<BatchDeleteItem> = paths
            .iter()
            .map(|p| BatchDeleteItem {
                path: p.to_string(),
                permanent,
            })
            .collect();
        let call = ApiCall::new(
            RequestKind::Batch,
            Method::POST,
            format!("batch/{}/{}", percent(&c.library), percent(&c.space)),
        )
        .flag("delete")
        .json(&items);
        let resp = self.call(call).await?;
        if resp.status() == StatusCode::ACCEPTED {
            let task: TaskCreated = decode_json(resp, "batch").await?;
            return self.wait_batch_task(task.task_id).await;
        }
        let reply: BatchReply = decode_json(resp, "batch").await?;
        Ok(reply.result)
    }

    /// Polls batch task `id` (§5.2) until it is done, for at most
    /// [`BATCH_TASK_WAIT`]; returns its per-item results.
    pub async fn wait_batch_task(&self, id: u64) -> Result<Vec<BatchItemResult>> {
        let c = &self.inner.config;
        let path = format!("task/{}/{}/{id}", percent(&c.library), percent(&c.space));
        let deadline = Instant::now() + BATCH_TASK_WAIT;
        let mut pause = Duration::from_millis(100);
        loop {
            let infos: Vec<TaskInfo> = self
                .call_json(ApiCall::new(RequestKind::Task, Method::GET, path.clone()))
                .await?;
            let info =
                infos
                    .into_iter()
                    .find(|t| t.task_id == id)
                    .ok_or_else(|| SmhError::Malformed {
                        url: path.clone(),
                        message: format!("task {id} is not in the reply"),
                    })?;
            match info.status {
                202 => {}
                200 | 204 | 207 => {
                    let reply: BatchReply = info
                        .result
                        .map(serde_json::from_value)
                        .transpose()
                        .map_err(|e| SmhError::Malformed {
                            url: path.clone(),
                            message: e.to_string(),
                        })?
                        .unwrap_or_default();
                    return Ok(reply.result);
                }
                status => {
                    return Err(SmhError::Api {
                        status,
                        code: String::new(),
                        message: format!("batch task {id} failed"),
                        request_id: None,
                    })
                }
            }
            if Instant::now() >= deadline {
                return Err(SmhError::TaskPending(id));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Usage and quota of the space (for statfs). Falls back to the space
    /// size when the token may not read usage.
    pub async fn usage(&self) -> Result<Usage> {
        let c = &self.inner.config;
        let call = ApiCall::new(
            RequestKind::Usage,
            Method::GET,
            format!("usage/{}/{}", percent(&c.library), percent(&c.space)),
        );
        let parse = |s: &Option<String>| s.as_deref().and_then(|v| v.parse::<u64>().ok());
        match self.call_json::<Vec<SpaceUsage>>(call).await {
            Ok(list) => {
                let u = list.into_iter().next().ok_or_else(|| SmhError::Malformed {
                    url: "usage".into(),
                    message: "empty usage list".into(),
                })?;
                Ok(Usage {
                    used: u.size.parse().unwrap_or(0),
                    capacity: parse(&u.capacity),
                    available: parse(&u.available_space),
                })
            }
            Err(e) if matches!(e.status(), Some(403) | Some(404)) => {
                let call = ApiCall::new(
                    RequestKind::Usage,
                    Method::GET,
                    format!("space/{}/{}/size", percent(&c.library), percent(&c.space)),
                );
                let s: SpaceSize = self.call_json(call).await?;
                Ok(Usage {
                    used: s.size.parse().unwrap_or(0),
                    capacity: None,
                    available: None,
                })
            }
            Err(e) => Err(e),
        }
    }
}
