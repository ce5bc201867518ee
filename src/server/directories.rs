//! Directory routes (§3): info, list, HEAD, create, move, copy, delete.

use std::sync::Arc;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::changes::{self, Change};
use super::entries::{delete_node, entry_of, info_of, require_delete_grant};
use super::error::{SResult, ServerError};
use super::http::*;
use super::store::{self, ListSpec, ROOT};
use super::App;
use crate::smh::codes;
use crate::smh::types::{DirEntry, DirListing, PathReply};

pub async fn dir_route(
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
                .db(move |c| match store::resolve(c, &space, &segs2)? {
                    Some(n) => Ok(Some(super::links::present(c, &space, n)?)),
                    None => Ok(None),
                })
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
                // Optional body (§3.4): `metaData` and the local times are
                // kept on the new (last) directory.
                let time = |k: &str| body.get(k).and_then(|v| v.as_str()).map(String::from);
                let attrs = store::DirAttrs {
                    meta: super::meta::from_json(body.get("metaData"))?,
                    lmtime: time("localModificationTime"),
                    lctime: time("localCreationTime"),
                };
                let meta = attrs.meta.clone();
                let (path, ctime) = app
                    .db(move |c| {
                        let (p, id) = store::mkdirs(c, &space, &segs, rename, &attrs)?;
                        let ctime = store::node(c, id)?.map(|n| n.ctime).unwrap_or_default();
                        Ok((p, ctime))
                    })
                    .await?;
                let mut reply = serde_json::to_value(PathReply {
                    path: Some(path),
                    creation_time: Some(ctime),
                })
                .unwrap_or_default();
                if let Some(m) = meta {
                    reply["metaData"] = serde_json::json!(m);
                }
                Ok(json_response(StatusCode::CREATED, &reply))
            }
        }
        Method::DELETE => {
            app.stats.op("dir_delete");
            let auth = authenticate(app, &ctx, Some(&space))?;
            let permanent = require_delete_grant(app, &auth, true, ctx.query.flag("permanent"))?;
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
    // A revalidation that matches costs no listing.
    let cond = if_none_match_header(ctx);
    let (dir, listed) = app
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
            if etag_matches(cond.as_deref(), &dir.etag()) {
                return Ok((dir, None));
            }
            let items = store::list(c, &space, dir.id, &spec)?
                .into_iter()
                .map(|n| super::links::present(c, &space, n))
                .collect::<SResult<Vec<_>>>()?;
            let counts = store::counts(c, &space, dir.id)?;
            Ok((dir, Some((items, counts))))
        })
        .await?;
    let etag = dir.etag();
    let Some((items, (files, dirs))) = listed else {
        app.stats.op("dir_list_not_modified");
        return Ok(not_modified(&etag));
    };
    let more = items.len() as u64 > limit;
    let with_inode = ctx.query.flag("with_inode");
    let contents: Vec<DirEntry> = items
        .iter()
        .take(limit as usize)
        .map(|n| {
            let mut e = entry_of(n);
            if with_inode {
                e.inode = Some(n.inode());
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
    let strategy = ctx.strategy(crate::smh::types::ConflictStrategy::Ask)?;
    let path = move_dir(app, space, src, dest, copy, strategy).await?;
    if strategy == crate::smh::types::ConflictStrategy::Rename {
        Ok(json_response(StatusCode::OK, &PathReply::of(path)))
    } else {
        Ok(empty(StatusCode::NO_CONTENT))
    }
}

/// Moves or copies the directory `src` (with everything in it) to `dest`,
/// creating missing parents; returns the final path.
pub async fn move_dir(
    app: &Arc<App>,
    space: String,
    src: Vec<String>,
    dest: Vec<String>,
    copy: bool,
    strategy: crate::smh::types::ConflictStrategy,
) -> SResult<Vec<String>> {
    if dest.is_empty() {
        return Err(ServerError::api(
            400,
            codes::INVALID_DESTINATION_PATH,
            "destination cannot be the root",
        ));
    }
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
                super::tree::copy_tree(c, &space, n.id, parent, &final_name)?;
            } else {
                c.execute(
                    "UPDATE nodes SET parent=?2, name=?3 WHERE id=?1",
                    rusqlite::params![n.id, parent, final_name],
                )?;
                let from = (n.parent, n.name.as_str());
                changes::record(c, n.id, Change::Move { from })?;
                store::touch(c, &space, n.parent)?;
                store::touch(c, &space, parent)?;
            }
            let mut p = parents.to_vec();
            p.push(final_name);
            Ok(p)
        })
        .await?;
    Ok(path)
}
