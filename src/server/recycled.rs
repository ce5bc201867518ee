//! The recycle bin (§6): list, restore, purge.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use rusqlite::OptionalExtension;

use super::changes::{self, Change};
use super::error::{SResult, ServerError};
use super::http::*;
use super::store::{self, ROOT};
use super::App;
use crate::smh::codes;
use crate::smh::types::{EntryType, PathReply, RecycledItem, RecycledList};

/// `/api/v1/recycled/{lib}/{space}[/{id}]`.
pub async fn recycled_route(
    app: &Arc<App>,
    ctx: &Ctx,
    space: String,
    tail: Option<&str>,
) -> SResult<Response> {
    let item = match tail.filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(t.parse::<i64>().map_err(|_| recycled_not_found())?),
    };
    match (ctx.method.clone(), item) {
        (Method::GET, None) => {
            app.stats.op("recycled_list");
            authenticate(app, ctx, Some(&space))?;
            recycled_list(app, ctx, space).await
        }
        (Method::POST, Some(id)) if ctx.query.flag("restore") => {
            let auth = authenticate(app, ctx, Some(&space))?;
            auth.require(&["restore_recycled"])?;
            recycled_restore(app, ctx, space, id).await
        }
        (Method::DELETE, item) => {
            let auth = authenticate(app, ctx, Some(&space))?;
            auth.require(&["delete_recycled"])?;
            recycled_purge(app, space, item).await
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
                    Ok(RecycledItem {
                        recycled_item_id: r.get::<_, i64>(0)? as u64,
                        original_path: serde_json::from_str(&orig).unwrap_or_default(),
                        name: r.get(2)?,
                        kind: if is_dir { EntryType::Dir } else { EntryType::File },
                        size: Some(r.get::<_, i64>(4)?.to_string()),
                        creation_time: r.get(5)?,
                        modification_time: r.get(6)?,
                        removal_time: r.get(7)?,
                        remaining_time: 30,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    let more = rows.len() as u64 > limit;
    let list = RecycledList {
        contents: rows.into_iter().take(limit as usize).collect(),
        next_marker: more.then(|| (offset + limit).to_string()),
    };
    Ok(json_response(StatusCode::OK, &list))
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
            changes::record(c, n.id, Change::Restore)?;
            c.execute("DELETE FROM recycled WHERE id=?1", [id])?;
            store::touch(c, &space, parent)?;
            let mut p = parent_path;
            p.push(name);
            Ok((p, blobs))
        })
        .await?;
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.remove_orphans(blobs)).await?;
    Ok(json_response(StatusCode::OK, &PathReply::of(path)))
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
