//! Native symlinks (smh-api.md §4.7, §3.1, §3.2) and info by inode (§4.14).
//!
//! A symlink is a node with `link` = the node id of its target (a file or
//! another link, never a directory) and no content of its own. Linking by
//! node id is what makes a link follow renames and moves of its target, and
//! overwrites (they keep the node). A deleted target leaves the link
//! dangling: it is still listed (`linkTo` names the old inode, no size or
//! eTag), and reading through it answers 404 `FileNotFound`; restoring the
//! target from the recycle bin revives it. Resolving follows at most
//! [`MAX_DEPTH`] links (the link itself included); a longer chain is 400
//! `SymlinkDepthLimitExceeded`; a chain that comes back to the link being
//! created (only an overwrite can do that) is 409 `CircleSymlink`.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use rusqlite::{params, Connection, OptionalExtension};

use super::changes::{self, Change};
use super::entries::info_of;
use super::error::{SResult, ServerError};
use super::http::{authenticate, json_response, not_found_route, parse_body_path, Ctx};
use super::store::{self, Node, ROOT};
use super::App;
use crate::smh::codes;
use crate::smh::time;
use crate::smh::types::ConflictStrategy;

/// Links followed at most to reach a file.
pub const MAX_DEPTH: usize = 8;

fn depth_exceeded() -> ServerError {
    ServerError::api(
        400,
        codes::SYMLINK_DEPTH_LIMIT_EXCEEDED,
        format!("more than {MAX_DEPTH} symlinks in a row"),
    )
}

fn not_found() -> ServerError {
    ServerError::api(404, codes::FILE_NOT_FOUND, "file not found")
}

/// A node that is alive (not in the recycle bin, in `space`).
fn live_node(c: &Connection, space: &str, id: i64) -> SResult<Option<Node>> {
    let in_space: Option<String> = c
        .prepare_cached("SELECT space FROM nodes WHERE id=?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    if in_space.as_deref() != Some(space) || store::path_of(c, id)?.is_none() {
        return Ok(None);
    }
    store::node(c, id)
}

/// The file a node stands for: itself, or the end of its link chain (None:
/// the chain dangles).
pub fn follow(c: &Connection, space: &str, n: Node) -> SResult<Option<Node>> {
    let mut cur = n;
    for _ in 0..=MAX_DEPTH {
        let Some(next) = cur.link else {
            return Ok(Some(cur));
        };
        match live_node(c, space, next)? {
            Some(t) => cur = t,
            None => return Ok(None),
        }
    }
    Err(depth_exceeded())
}

/// A node as listings and `?info` show it: a link carries the size, blob
/// (eTag), CRC-64 and content type of the file it resolves to, and keeps
/// its own name, times and `link`; a dangling (or too deep) one has none.
pub fn present(c: &Connection, space: &str, n: Node) -> SResult<Node> {
    if n.link.is_none() {
        return Ok(n);
    }
    let target = follow(c, space, n.clone()).unwrap_or(None);
    let mut v = n;
    match target {
        Some(t) => {
            v.size = t.size;
            v.blob = t.blob;
            v.crc64 = t.crc64;
            v.ctype = t.ctype;
        }
        None => {
            v.size = 0;
            v.blob = None;
            v.crc64 = None;
            v.ctype = None;
        }
    }
    Ok(v)
}

/// Checks that a link to `target` may be created in place of `replacing`
/// (an overwritten node) and returns the target's id.
fn check_target(c: &Connection, space: &str, target: Node, replacing: Option<i64>) -> SResult<i64> {
    let id = target.id;
    let mut cur = target;
    // The new link itself is the first link of the chain.
    let mut links = 1;
    loop {
        if Some(cur.id) == replacing {
            return Err(ServerError::api(
                409,
                codes::CIRCLE_SYMLINK,
                "the link would point at itself",
            ));
        }
        if cur.is_dir {
            return Err(ServerError::api(
                400,
                codes::SYMLINK_TO_DIRECTORY_NOT_ALLOWED,
                "a symlink cannot point at a directory",
            ));
        }
        let Some(next) = cur.link else {
            return Ok(id);
        };
        links += 1;
        if links > MAX_DEPTH {
            return Err(depth_exceeded());
        }
        cur = live_node(c, space, next)?.ok_or_else(not_found)?;
    }
}

/// Creates the link `segs` → `target`; returns its final path and node id.
fn create(
    c: &Connection,
    space: &str,
    segs: &[String],
    target: &[String],
    strategy: ConflictStrategy,
) -> SResult<(Vec<String>, i64, Option<String>)> {
    let t = store::resolve(c, space, target)?
        .ok_or_else(|| ServerError::api(404, codes::FILE_NOT_FOUND, "link target not found"))?;
    let (name, parents, parent) = store::name_in_parent(c, space, segs)?;
    let existing = store::child(c, space, parent.id, name)?;
    let (final_name, replacing) = match existing {
        None => (name.clone(), None),
        Some(e) => match strategy {
            ConflictStrategy::Ask => return Err(ServerError::conflict()),
            ConflictStrategy::Rename => (store::free_name(c, space, parent.id, name, false)?, None),
            ConflictStrategy::Overwrite if e.is_dir => return Err(ServerError::conflict()),
            ConflictStrategy::Overwrite => (name.clone(), Some(e)),
        },
    };
    let to = check_target(c, space, t, replacing.as_ref().map(|e| e.id))?;
    let now = time::now();
    let (id, old_blob) = match replacing {
        // An overwrite keeps the node (and inode), as a file overwrite does.
        Some(e) => {
            changes::modify(c, e.id, || {
                Ok(c.prepare_cached(
                    "UPDATE nodes SET size=0,blob=NULL,crc64=NULL,bhash=NULL,fhash=NULL,ctype=NULL,mtime=?2,
                     lmtime=NULL,lctime=NULL,meta=NULL,link=?3 WHERE id=?1",
                )?
                .execute(params![e.id, now, to])?)
            })?;
            super::tree::touch_linkers(c, space, e.id)?;
            (e.id, e.blob)
        }
        None => {
            c.prepare_cached(
                "INSERT INTO nodes(space,parent,name,is_dir,size,ctime,mtime,link) VALUES(?1,?2,?3,0,0,?4,?4,?5)",
            )?
            .execute(params![space, parent.id, final_name, now, to])?;
            let id = c.last_insert_rowid();
            changes::record(c, id, Change::Create)?;
            (id, None)
        }
    };
    store::touch(c, space, parent.id)?;
    let mut path = parents.to_vec();
    path.push(final_name);
    Ok((path, id, old_blob))
}

/// `PUT /api/v1/file/{lib}/{space}/{path}` with `{"linkTo": "target"}`
/// → 200 `{"path": [...]}` (plus `inode` with `with_inode=1`).
pub async fn create_route(
    app: &Arc<App>,
    ctx: &Ctx,
    space: String,
    segs: Vec<String>,
    link_to: &str,
) -> SResult<Response> {
    app.stats.op("file_symlink");
    let auth = authenticate(app, ctx, Some(&space))?;
    let strategy = ctx.strategy(ConflictStrategy::Rename)?;
    if strategy == ConflictStrategy::Overwrite {
        auth.require(&["create_symlink_force"])?;
    } else {
        auth.require(&["create_symlink", "create_symlink_force"])?;
    }
    if segs.is_empty() {
        return Err(ServerError::api(
            400,
            codes::EMPTY_FILE_NAME,
            "a file path is required",
        ));
    }
    let target = parse_body_path(link_to, true)?;
    let (path, id, old_blob) = app
        .db(move |c| create(c, &space, &segs, &target, strategy))
        .await?;
    if let Some(b) = old_blob {
        let store = app.store.clone();
        tokio::task::spawn_blocking(move || store.remove_orphans(vec![b])).await?;
    }
    let mut reply = serde_json::json!({ "path": path });
    if ctx.query.flag("with_inode") {
        reply["inode"] = store::inode_of(id).into();
    }
    Ok(json_response(StatusCode::OK, &reply))
}

/// `GET /api/v1/inode/{lib}/{space}/{inode}` → the `?info` of that item,
/// with its `path` (404 `FileNotFound` when unknown or in the recycle bin).
pub async fn inode_route(
    app: &Arc<App>,
    ctx: &Ctx,
    space: String,
    inode: Option<String>,
) -> SResult<Response> {
    if ctx.method != axum::http::Method::GET {
        return Err(not_found_route());
    }
    app.stats.op("inode_info");
    authenticate(app, ctx, Some(&space))?;
    let inode = inode.unwrap_or_default();
    let inode = inode.trim_end_matches('/');
    let id = (!inode.is_empty() && inode.len() <= 32)
        .then(|| i64::from_str_radix(inode, 16).ok())
        .flatten()
        .ok_or_else(not_found)?;
    let info = app
        .db(move |c| {
            if id == ROOT {
                return Ok(info_of(&store::root(c, &space)?, Vec::new()));
            }
            let n = live_node(c, &space, id)?.ok_or_else(not_found)?;
            let path = store::path_of(c, id)?.ok_or_else(not_found)?;
            Ok(info_of(&present(c, &space, n)?, path))
        })
        .await?;
    Ok(json_response(StatusCode::OK, &info))
}
