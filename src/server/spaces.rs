//! Spaces (§2), usage and quota.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::error::{SResult, ServerError};
use super::http::*;
use super::store::{self};
use super::App;
use crate::smh::codes;
use crate::smh::types::{
    LibraryUsage, QuotaReply, SpaceCreated, SpaceItem, SpaceList, SpaceSize, SpaceUsage,
};

pub async fn space_route(
    app: &Arc<App>,
    ctx: &mut Ctx,
    lib: Option<String>,
    space: Option<String>,
    tail: Option<String>,
) -> SResult<Response> {
    let lib = lib.ok_or_else(not_found_route)?;
    check_library_auth(app, ctx, &lib)?;
    match (ctx.method.clone(), space.as_deref(), tail.as_deref()) {
        (Method::POST, None, _) | (Method::POST, Some(""), _) => {
            app.stats.op("space_create");
            let auth = authenticate(app, ctx, None)?;
            auth.require_admin("create_space")?;
            if !app.args.multi_space {
                return Err(ServerError::api(
                    400,
                    codes::NOT_MULTI_SPACE_LIBRARY,
                    "the library is not multi-tenant (start with --multi-space)",
                ));
            }
            let id = match ctx.query.get("space_id").filter(|s| !s.is_empty()) {
                Some(id) => {
                    let ok = (2..=32).contains(&id.len())
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !id.starts_with('-')
                        && !id.ends_with('-');
                    if !ok {
                        return Err(ServerError::api(
                            400,
                            codes::SPACE_ID_INVALID,
                            "invalid space id",
                        ));
                    }
                    if app.spaces.lock().contains(id) {
                        return Err(ServerError::api(
                            409,
                            codes::SPACE_ALREADY_EXISTS,
                            "space already exists",
                        ));
                    }
                    id.to_string()
                }
                None => format!("space{}", store::random_hex(7)),
            };
            let id2 = id.clone();
            app.db(move |c| store::ensure_space(c, &id2)).await?;
            app.spaces.lock().insert(id.clone());
            Ok(json_response(
                StatusCode::CREATED,
                &SpaceCreated { space_id: id },
            ))
        }
        (Method::GET, Some("list"), None) | (Method::GET, Some("list"), Some("")) => {
            app.stats.op("space_list");
            authenticate(app, ctx, None)?;
            let limit = num_param(ctx, "limit")?.unwrap_or(1000).clamp(1, 1000);
            let marker = ctx.query.get("marker").unwrap_or("").to_string();
            let rows = app
                .db(move |c| {
                    let mut stmt = c.prepare(
                        "SELECT id, ctime FROM spaces WHERE id > ?1 ORDER BY id LIMIT ?2",
                    )?;
                    let rows = stmt
                        .query_map(rusqlite::params![marker, (limit + 1) as i64], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                        })?
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(rows)
                })
                .await?;
            let more = rows.len() as u64 > limit;
            let next_marker = more
                .then(|| rows.get(limit as usize - 1).map(|(id, _)| id.clone()))
                .flatten();
            let list = rows
                .into_iter()
                .take(limit as usize)
                .map(|(space_id, ct)| SpaceItem {
                    space_id,
                    user_id: String::new(),
                    creation_time: Some(ct),
                })
                .collect();
            Ok(json_response(
                StatusCode::OK,
                &SpaceList { list, next_marker },
            ))
        }
        (Method::DELETE, Some(sp), None) | (Method::DELETE, Some(sp), Some("")) => {
            app.stats.op("space_delete");
            let auth = authenticate(app, ctx, None)?;
            auth.require_admin("delete_space")?;
            if !app.args.multi_space {
                return Err(ServerError::api(
                    400,
                    codes::NOT_MULTI_SPACE_LIBRARY,
                    "the library is not multi-tenant",
                ));
            }
            check_space(app, sp)?;
            let force = ctx.query.flag("force");
            let sp2 = sp.to_string();
            let blobs = app
                .db(move |c| {
                    let n: i64 =
                        c.query_row("SELECT COUNT(*) FROM nodes WHERE space=?1", [&sp2], |r| {
                            r.get(0)
                        })?;
                    if n > 0 && !force {
                        return Err(ServerError::api(
                            409,
                            codes::SPACE_NOT_EMPTY,
                            "space is not empty",
                        ));
                    }
                    let mut stmt =
                        c.prepare("SELECT blob FROM nodes WHERE space=?1 AND blob IS NOT NULL")?;
                    let blobs = stmt
                        .query_map([&sp2], |r| r.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()?;
                    c.execute("DELETE FROM nodes WHERE space=?1", [&sp2])?;
                    c.execute("DELETE FROM recycled WHERE space=?1", [&sp2])?;
                    c.execute("DELETE FROM spaces WHERE id=?1", [&sp2])?;
                    super::delta::forget_space(c, &sp2)?;
                    Ok(blobs)
                })
                .await?;
            app.spaces.lock().remove(sp);
            let store = app.store.clone();
            tokio::task::spawn_blocking(move || store.remove_orphans(blobs)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::GET, Some(sp), Some("size")) => {
            app.stats.op("space_size");
            check_space(app, sp)?;
            authenticate(app, ctx, Some(sp))?;
            let sp2 = sp.to_string();
            let used = app.db(move |c| store::usage(c, &sp2)).await?;
            Ok(json_response(
                StatusCode::OK,
                &SpaceSize {
                    size: used.to_string(),
                },
            ))
        }
        _ => Err(not_found_route()),
    }
}

/// `GET /api/v1/usage/{lib}/[{spaces}]`: needs `admin` or `space_admin`
/// (smh-api.md §2.5); without spaces, the whole library.
pub async fn usage(app: &Arc<App>, ctx: &Ctx, spaces: Option<String>) -> SResult<Response> {
    app.stats.op("usage");
    let auth = authenticate(app, ctx, None)?;
    auth.require_admin("space_admin")?;
    let spaces: Vec<String> = match spaces.filter(|s| !s.is_empty()) {
        Some(s) => s.split(',').map(String::from).collect(),
        None => {
            let total = app
                .db(|c| {
                    Ok(c.query_row(
                        "SELECT COALESCE(SUM(size),0) FROM nodes WHERE is_dir=0",
                        [],
                        |r| r.get::<_, i64>(0),
                    )?)
                })
                .await?;
            return Ok(json_response(
                StatusCode::OK,
                &LibraryUsage {
                    total_file_size: total.to_string(),
                },
            ));
        }
    };
    for s in &spaces {
        check_space(app, s)?;
    }
    let cap = app.args.capacity;
    let out = app
        .db(move |c| {
            let mut v = Vec::new();
            for space_id in spaces {
                let used = store::usage(c, &space_id)?;
                v.push(SpaceUsage {
                    space_id,
                    capacity: cap.map(|x| x.to_string()),
                    available_space: cap.map(|x| x.saturating_sub(used).to_string()),
                    size: used.to_string(),
                });
            }
            Ok(v)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

/// `GET /api/v1/quota/{lib}/{space}`.
pub fn quota(app: &Arc<App>, ctx: &Ctx, space: &str) -> SResult<Response> {
    app.stats.op("quota");
    authenticate(app, ctx, Some(space))?;
    match app.args.capacity {
        Some(cap) => Ok(json_response(
            StatusCode::OK,
            &QuotaReply {
                id: 1,
                capacity: cap.to_string(),
            },
        )),
        None => Err(ServerError::api(
            404,
            codes::NO_QUOTA,
            "this space has no quota",
        )),
    }
}
