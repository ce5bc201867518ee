//! File routes (§4): info, HEAD, download redirect, delete, move, copy, and
//! dispatch to the upload handlers.

use std::sync::Arc;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::auth::Auth;
use super::changes::{self, Change};
use super::entries::{delete_node, require_delete_grant};
use super::error::{SResult, ServerError};
use super::http::{authenticate, empty, json_response, parse_body_path, Ctx};
use super::store::{self, Node};
use super::{cos, uploads, App};
use crate::smh::codes;
use crate::smh::types::{BeginBody, ConflictStrategy, EntryType, FileInfo, PathReply};

pub async fn file_route(
    app: &Arc<App>,
    mut ctx: Ctx,
    space: String,
    segs: Vec<String>,
) -> SResult<Response> {
    let q = ctx.query.clone();
    match ctx.method.clone() {
        Method::GET if q.flag("upload") => uploads::status(app, ctx, space, segs).await,
        Method::GET if q.flag("info") => {
            app.stats.op("file_info");
            authenticate(app, &ctx, Some(&space))?;
            let n = find_file(app, &space, &segs).await?;
            let period = q
                .get("period")
                .and_then(|p| p.parse::<u64>().ok())
                .unwrap_or(7200)
                .clamp(60, 7200);
            let info = FileInfo {
                cos_url: (!q.flag("pre_check")).then(|| cos_url(app, &ctx, &n, period)),
                kind: EntryType::File,
                creation_time: Some(n.ctime.clone()),
                modification_time: Some(n.mtime.clone()),
                local_creation_time: n.lctime.clone(),
                local_modification_time: n.lmtime.clone(),
                content_type: n.ctype.clone(),
                size: n.size.to_string(),
                e_tag: Some(n.etag()),
                crc64: n.crc64.clone(),
                meta_data: n.meta.clone(),
            };
            Ok(json_response(StatusCode::OK, &info))
        }
        Method::GET => {
            app.stats.op("file_download");
            authenticate(app, &ctx, Some(&space))?;
            let n = find_file(app, &space, &segs).await?;
            let url = cos_url(app, &ctx, &n, 7200);
            let mut r = empty(StatusCode::FOUND);
            if let Ok(v) = HeaderValue::from_str(&url) {
                r.headers_mut().insert("location", v);
            }
            smh_headers(&mut r, &n);
            Ok(r)
        }
        Method::HEAD => {
            app.stats.op("file_head");
            authenticate(app, &ctx, Some(&space))?;
            let n = find_file(app, &space, &segs).await?;
            let mut r = empty(StatusCode::OK);
            smh_headers(&mut r, &n);
            Ok(r)
        }
        Method::DELETE if q.flag("upload") => uploads::abort(app, ctx, space, segs).await,
        Method::DELETE => {
            app.stats.op("file_delete");
            let auth = authenticate(app, &ctx, Some(&space))?;
            let permanent = require_delete_grant(app, &auth, false, q.flag("permanent"))?;
            if segs.is_empty() {
                return Err(ServerError::api(
                    404,
                    codes::FILE_NOT_FOUND,
                    "file not found",
                ));
            }
            delete_node(app, space, segs, false, permanent).await
        }
        Method::PUT => {
            let body = ctx.json_value().await?;
            if let Some(from) = body.get("from") {
                let from = from.as_str().ok_or_else(|| {
                    ServerError::api(400, codes::BAD_REQUEST, "`from` must be a string")
                })?;
                app.stats.op("file_move");
                file_move(app, &ctx, space, segs, from.to_string(), false).await
            } else if let Some(from) = body.get("copyFrom") {
                let from = from.as_str().ok_or_else(|| {
                    ServerError::api(400, codes::BAD_REQUEST, "`copyFrom` must be a string")
                })?;
                app.stats.op("file_copy");
                file_move(app, &ctx, space, segs, from.to_string(), true).await
            } else if q.flag("virtual_file") || q.flag("convert") {
                Err(ServerError::api(
                    400,
                    codes::FUNCTION_NOT_ENABLED,
                    "virtual files and conversion are not supported by this server",
                ))
            } else if let Some(to) = body.get("linkTo") {
                let to = to.as_str().ok_or_else(|| {
                    ServerError::api(400, codes::BAD_REQUEST, "`linkTo` must be a string")
                })?;
                super::links::create_route(app, &ctx, space, segs, to).await
            } else {
                let b: BeginBody = serde_json::from_value(body).map_err(|e| {
                    ServerError::api(
                        400,
                        codes::BAD_REQUEST,
                        format!("malformed upload body: {e}"),
                    )
                })?;
                uploads::begin(app, ctx, space, segs, false, b).await
            }
        }
        Method::POST if q.flag("multipart") => {
            let body = ctx.json_value().await?;
            let b: BeginBody = serde_json::from_value(body).map_err(|e| {
                ServerError::api(
                    400,
                    codes::BAD_REQUEST,
                    format!("malformed upload body: {e}"),
                )
            })?;
            uploads::begin(app, ctx, space, segs, true, b).await
        }
        Method::POST if q.flag("confirm") => uploads::confirm(app, ctx, space, segs).await,
        Method::POST if q.flag("renew") => uploads::renew(app, ctx, space, segs).await,
        Method::POST => Err(ServerError::api(
            400,
            codes::FUNCTION_NOT_ENABLED,
            "form upload is not supported; use PUT or POST ?multipart",
        )),
        _ => Err(ServerError::api(
            405,
            codes::METHOD_NOT_ALLOWED,
            "method not allowed",
        )),
    }
}

/// The file at `segs`; a symlink is followed to its target's content.
async fn find_file(app: &Arc<App>, space: &str, segs: &[String]) -> SResult<Node> {
    let (space, segs) = (space.to_string(), segs.to_vec());
    app.db(move |c| match store::resolve(c, &space, &segs)? {
        Some(n) if !n.is_dir => super::links::follow(c, &space, n),
        _ => Ok(None),
    })
    .await?
    .ok_or_else(|| ServerError::api(404, codes::FILE_NOT_FOUND, "file not found"))
}

fn cos_url(app: &App, ctx: &Ctx, n: &Node, period: u64) -> String {
    cos::signed_url(
        app,
        &ctx.host,
        n.blob.as_deref().unwrap_or(""),
        n.crc64.as_deref().unwrap_or(""),
        n.ctype.as_deref().unwrap_or("application/octet-stream"),
        period,
    )
}

fn smh_headers(r: &mut Response, n: &Node) {
    let h = r.headers_mut();
    let mut put = |k: &'static str, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    put("x-smh-type", "file");
    put("x-smh-creation-time", &n.ctime);
    put("x-smh-modification-time", &n.mtime);
    put(
        "x-smh-content-type",
        n.ctype.as_deref().unwrap_or("application/octet-stream"),
    );
    put("x-smh-size", &n.size.to_string());
    put("x-smh-etag", &n.etag());
    put("x-smh-crc64", n.crc64.as_deref().unwrap_or(""));
    if let Some(l) = &n.lmtime {
        put("x-smh-local-modification-time", l);
    }
    super::meta::put_headers(h, n.meta.as_ref());
}

async fn file_move(
    app: &Arc<App>,
    ctx: &Ctx,
    space: String,
    dest: Vec<String>,
    from: String,
    copy: bool,
) -> SResult<Response> {
    let auth = authenticate(app, ctx, Some(&space))?;
    let strategy = ctx.strategy(ConflictStrategy::Rename)?;
    require_move_grant(&auth, copy, strategy)?;
    let src = parse_body_path(&from, true)?;
    let path = move_file(app, space, src, dest, copy, strategy).await?;
    Ok(json_response(StatusCode::OK, &PathReply::of(path)))
}

/// The grant a file move or copy needs (`*_force` to overwrite).
pub fn require_move_grant(auth: &Auth, copy: bool, strategy: ConflictStrategy) -> SResult<()> {
    let (plain, force) = if copy {
        ("copy_file", "copy_file_force")
    } else {
        ("move_file", "move_file_force")
    };
    if strategy == ConflictStrategy::Overwrite {
        auth.require(&[force])
    } else {
        auth.require(&[plain, force])
    }
}

/// Moves or copies the file `src` to `dest`; returns the final path.
pub async fn move_file(
    app: &Arc<App>,
    space: String,
    src: Vec<String>,
    dest: Vec<String>,
    copy: bool,
    strategy: ConflictStrategy,
) -> SResult<Vec<String>> {
    if dest.is_empty() {
        return Err(ServerError::api(
            400,
            codes::INVALID_DESTINATION_PATH,
            "destination cannot be the root",
        ));
    }
    let cap = app.args.capacity;
    let (path, blobs) = app
        .db(move |c| {
            let n = store::resolve(c, &space, &src)?
                .filter(|n| !n.is_dir)
                .ok_or_else(|| {
                    ServerError::api(404, codes::SOURCE_FILE_NOT_FOUND, "source file not found")
                })?;
            let (name, parents) = dest.split_last().ok_or_else(|| {
                ServerError::api(400, codes::INVALID_DESTINATION_PATH, "empty destination")
            })?;
            let parent = store::resolve_dir(c, &space, parents)?.ok_or_else(|| {
                ServerError::api(
                    404,
                    codes::DIRECTORY_NOT_FOUND,
                    "destination directory not found",
                )
            })?;
            let mut blobs = Vec::new();
            let existing = store::child(c, &space, parent.id, name)?;
            let final_name = match existing {
                None => name.clone(),
                Some(e) if e.id == n.id && !copy => {
                    return Ok((dest.clone(), blobs));
                }
                Some(e) => match strategy {
                    ConflictStrategy::Ask => return Err(ServerError::conflict()),
                    ConflictStrategy::Rename => {
                        store::free_name(c, &space, parent.id, name, false)?
                    }
                    ConflictStrategy::Overwrite => {
                        if e.is_dir || e.id == n.id {
                            return Err(ServerError::conflict());
                        }
                        super::tree::touch_linkers(c, &space, e.id)?;
                        blobs = store::delete_tree(c, e.id)?;
                        name.clone()
                    }
                },
            };
            if copy {
                if let Some(cap) = cap {
                    if store::usage(c, &space)? + n.size > cap {
                        return Err(ServerError::api(
                            400,
                            codes::QUOTA_LIMIT_REACHED,
                            "the space quota would be exceeded",
                        ));
                    }
                }
                if n.link.is_some() {
                    // A copy of a link is a link to the same target.
                    super::tree::copy_tree(c, &space, n.id, parent.id, &final_name)?;
                } else {
                    store::insert_file(
                        c,
                        &space,
                        parent.id,
                        &final_name,
                        &store::file_data(&n),
                        None,
                    )?;
                }
            } else {
                c.execute(
                    "UPDATE nodes SET parent=?2, name=?3 WHERE id=?1",
                    rusqlite::params![n.id, parent.id, final_name],
                )?;
                let from = (n.parent, n.name.as_str());
                changes::record(c, n.id, Change::Move { from })?;
                store::touch(c, &space, n.parent)?;
                if parent.id != n.parent {
                    store::touch(c, &space, parent.id)?;
                }
            }
            let mut p = parents.to_vec();
            p.push(final_name);
            Ok((p, blobs))
        })
        .await?;
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.remove_orphans(blobs)).await?;
    Ok(path)
}
