//! Batch operations (§5.1: `POST /api/v1/batch/{lib}/{space}?delete|move|copy`)
//! and the tasks large batches run as (§5.2: `GET /api/v1/task/...`).
//!
//! Each item is done like its single-item route (same checks, grants and
//! conflict rules). Up to `--batch-sync-max` items are done before the
//! reply (200 all done, 207 some failed); larger batches answer 202 with a
//! task id and run in the background. Tasks live in memory: a restart
//! forgets them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use super::auth::Auth;
use super::error::{SResult, ServerError};
use super::http::{authenticate, json_response, not_found_route, parse_body_path, Ctx};
use super::store;
use super::{directories, entries, files, App};
use crate::smh::codes;
use crate::smh::types::{
    BatchDeleteItem, BatchItemResult, BatchMoveItem, BatchReply, ConflictStrategy, TaskCreated,
    TaskInfo,
};

/// What a batch does to each item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchOp {
    Delete,
    Move,
    Copy,
}

/// The items of a batch, as sent.
enum Items {
    Delete(Vec<BatchDeleteItem>),
    Move(Vec<BatchMoveItem>, BatchOp),
}

impl Items {
    fn len(&self) -> usize {
        match self {
            Items::Delete(v) => v.len(),
            Items::Move(v, _) => v.len(),
        }
    }
}

/// A batch task: running, or done with its per-item results.
enum TaskState {
    Running,
    Done(BatchReply),
}

struct BatchTask {
    space: String,
    state: TaskState,
}

/// The batch tasks of this server run.
#[derive(Default)]
pub struct BatchTasks {
    next: AtomicU64,
    map: Mutex<HashMap<u64, BatchTask>>,
}

impl BatchTasks {
    fn start(&self, space: &str) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.map.lock().insert(
            id,
            BatchTask {
                space: space.to_string(),
                state: TaskState::Running,
            },
        );
        id
    }

    fn finish(&self, id: u64, reply: BatchReply) {
        if let Some(t) = self.map.lock().get_mut(&id) {
            t.state = TaskState::Done(reply);
        }
    }

    fn info(&self, space: &str, id: u64) -> Option<TaskInfo> {
        let map = self.map.lock();
        let t = map.get(&id).filter(|t| t.space == space)?;
        Some(match &t.state {
            TaskState::Running => TaskInfo {
                task_id: id,
                status: 202,
                result: None,
            },
            TaskState::Done(reply) => TaskInfo {
                task_id: id,
                status: batch_status(reply).as_u16(),
                result: serde_json::to_value(reply).ok(),
            },
        })
    }
}

/// 200 when every item was done, else 207.
fn batch_status(reply: &BatchReply) -> StatusCode {
    if reply.result.iter().all(BatchItemResult::ok) {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    }
}

fn parse_items<T: DeserializeOwned>(body: &[u8]) -> SResult<Vec<T>> {
    serde_json::from_slice(body).map_err(|e| {
        ServerError::api(
            400,
            codes::BAD_REQUEST,
            format!("the batch body must be a JSON array of items: {e}"),
        )
    })
}

/// `POST /api/v1/batch/{lib}/{space}?delete|move|copy`.
pub async fn batch_route(app: &Arc<App>, mut ctx: Ctx, space: String) -> SResult<Response> {
    if ctx.method != Method::POST {
        return Err(not_found_route());
    }
    let op = if ctx.query.flag("delete") {
        BatchOp::Delete
    } else if ctx.query.flag("move") {
        BatchOp::Move
    } else if ctx.query.flag("copy") {
        BatchOp::Copy
    } else {
        return Err(not_found_route());
    };
    app.stats.op(match op {
        BatchOp::Delete => "batch_delete",
        BatchOp::Move => "batch_move",
        BatchOp::Copy => "batch_copy",
    });
    let auth = authenticate(app, &ctx, Some(&space))?;
    let body = ctx.body_bytes().await?;
    let items = match op {
        BatchOp::Delete => Items::Delete(parse_items(&body)?),
        _ => Items::Move(parse_items(&body)?, op),
    };
    if items.len() > app.args.batch_sync_max {
        let id = app.batch_tasks.start(&space);
        let app2 = app.clone();
        let actor = super::actor::current();
        tokio::spawn(super::actor::scope(actor, async move {
            let reply = run(&app2, &auth, &space, items).await;
            app2.batch_tasks.finish(id, reply);
        }));
        return Ok(json_response(
            StatusCode::ACCEPTED,
            &TaskCreated { task_id: id },
        ));
    }
    let reply = run(app, &auth, &space, items).await;
    Ok(json_response(batch_status(&reply), &reply))
}

/// `GET /api/v1/task/{lib}/{space}/{id,id,...}`.
pub fn task_route(app: &Arc<App>, ctx: &Ctx, space: &str, ids: &str) -> SResult<Response> {
    if ctx.method != Method::GET {
        return Err(not_found_route());
    }
    app.stats.op("task_query");
    authenticate(app, ctx, Some(space))?;
    let unknown = || ServerError::api(404, codes::TASK_NOT_FOUND, "no such task");
    let mut out = Vec::new();
    for id in ids.split(',').filter(|s| !s.is_empty()) {
        let id: u64 = id.trim().parse().map_err(|_| unknown())?;
        out.push(app.batch_tasks.info(space, id).ok_or_else(unknown)?);
    }
    if out.is_empty() {
        return Err(unknown());
    }
    Ok(json_response(StatusCode::OK, &out))
}

async fn run(app: &Arc<App>, auth: &Auth, space: &str, items: Items) -> BatchReply {
    let mut result = Vec::with_capacity(items.len());
    match items {
        Items::Delete(items) => {
            for it in items {
                result.push(delete_item(app, auth, space, &it).await);
            }
        }
        Items::Move(items, op) => {
            for it in items {
                result.push(move_item(app, auth, space, &it, op == BatchOp::Copy).await);
            }
        }
    }
    BatchReply { result }
}

/// A failed item: the error's status, code and message.
fn failed(e: ServerError, base: BatchItemResult) -> BatchItemResult {
    BatchItemResult {
        status: e.status().as_u16(),
        code: Some(e.code().to_string()),
        message: Some(e.message()),
        ..base
    }
}

/// Whether `segs` is a directory (`None`: nothing there).
async fn is_dir(app: &Arc<App>, space: &str, segs: &[String]) -> SResult<Option<bool>> {
    let (space, segs) = (space.to_string(), segs.to_vec());
    Ok(app
        .db(move |c| store::resolve(c, &space, &segs))
        .await?
        .map(|n| n.is_dir))
}

async fn delete_item(
    app: &Arc<App>,
    auth: &Auth,
    space: &str,
    it: &BatchDeleteItem,
) -> BatchItemResult {
    let segs = match parse_body_path(&it.path, true) {
        Ok(s) => s,
        Err(e) => return failed(e, BatchItemResult::default()),
    };
    let base = BatchItemResult {
        path: Some(segs.clone()),
        ..Default::default()
    };
    let done = async {
        let dir = is_dir(app, space, &segs).await?.ok_or_else(|| {
            ServerError::api(404, codes::PATH_NOT_FOUND, "no such file or directory")
        })?;
        let permanent = entries::require_delete_grant(app, auth, dir, it.permanent)?;
        entries::remove(app, space.to_string(), segs.clone(), Some(dir), permanent).await
    };
    match done.await {
        Ok(Some(id)) => BatchItemResult {
            status: 200,
            recycled_item_id: Some(id as u64),
            ..base
        },
        Ok(None) => BatchItemResult {
            status: 204,
            ..base
        },
        Err(e) => failed(e, base),
    }
}

async fn move_item(
    app: &Arc<App>,
    auth: &Auth,
    space: &str,
    it: &BatchMoveItem,
    copy: bool,
) -> BatchItemResult {
    let (src, other_space) = if copy {
        (it.copy_from.as_deref(), it.copy_from_space_id.as_deref())
    } else {
        (it.from.as_deref(), it.from_space_id.as_deref())
    };
    let paths = src
        .ok_or_else(|| {
            let field = if copy { "copyFrom" } else { "from" };
            ServerError::api(400, codes::BAD_REQUEST, format!("`{field}` is required"))
        })
        .and_then(|s| Ok((parse_body_path(s, true)?, parse_body_path(&it.to, true)?)));
    let (src, dest) = match paths {
        Ok(p) => p,
        Err(e) => return failed(e, BatchItemResult::default()),
    };
    let base = BatchItemResult {
        from: (!copy).then(|| src.clone()),
        copy_from: copy.then(|| src.clone()),
        to: Some(dest.clone()),
        ..Default::default()
    };
    let done = async {
        if other_space.is_some_and(|s| s != space) {
            return Err(ServerError::api(
                400,
                codes::FUNCTION_NOT_ENABLED,
                "cross-space batches are not supported by this server",
            ));
        }
        let dir = is_dir(app, space, &src).await?.ok_or_else(|| {
            let code = if copy { "copy" } else { "move" };
            ServerError::api(
                404,
                codes::PATH_NOT_FOUND,
                format!("nothing to {code} at the source path"),
            )
        })?;
        let (space, src, dest) = (space.to_string(), src.clone(), dest.clone());
        if dir {
            let strategy = it
                .conflict_resolution_strategy
                .unwrap_or(ConflictStrategy::Ask);
            auth.require(&[if copy {
                "copy_directory"
            } else {
                "move_directory"
            }])?;
            let path = directories::move_dir(app, space, src, dest, copy, strategy).await?;
            Ok((path, strategy))
        } else {
            let strategy = it
                .conflict_resolution_strategy
                .unwrap_or(ConflictStrategy::Rename);
            files::require_move_grant(auth, copy, strategy)?;
            let path = files::move_file(app, space, src, dest, copy, strategy).await?;
            Ok((path, strategy))
        }
    };
    match done.await {
        Ok((path, strategy)) => BatchItemResult {
            status: if strategy == ConflictStrategy::Rename {
                200
            } else {
                204
            },
            path: Some(path),
            ..base
        },
        Err(e) => failed(e, base),
    }
}
