//! Upload API (§4.8–4.12): begin (simple / multipart / instant), confirm,
//! status, renew, abort. The bytes arrive on the object routes
//! ([`super::cos`]).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use rusqlite::{params, Connection};

use super::assemble::{self};
use super::auth::Auth;
use super::error::{SResult, ServerError};
use super::http::{authenticate, empty, json_response, Ctx};
use super::stats::Stats;
use super::store::{self, now_ms, random_hex, FileData};
use super::tasks::{self, load_parts, load_task, new_credentials, ticket, Task, MIN_PART};
use super::App;
use crate::smh::codes;
use crate::smh::hash::INSTANT_UPLOAD_MIN_SIZE;
use crate::smh::time;
use crate::smh::types::{
    BeginBody, ConfirmBody, ConflictStrategy, EntryType, FileMeta, UploadStatus,
};

const UPLOAD_GRANTS: &[&str] = &[
    "upload_file",
    "upload_file_force",
    "begin_upload",
    "begin_upload_force",
];

/// Content type from the file name extension.
pub fn content_type_of(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "csv" => "text/csv",
        "json" => "application/json",
        "js" => "application/javascript",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

fn file_meta(path: Vec<String>, n: &store::Node, overwritten: bool) -> FileMeta {
    FileMeta {
        name: path.last().cloned().unwrap_or_default(),
        path: Some(path),
        kind: EntryType::File,
        inode: Some(n.inode()),
        creation_time: Some(n.ctime.clone()),
        modification_time: Some(n.mtime.clone()),
        content_type: n.ctype.clone(),
        size: n.size.to_string(),
        e_tag: Some(n.etag()),
        crc64: n.crc64.clone(),
        meta_data: n.meta.clone(),
        is_overwritten: overwritten,
    }
}

/// Places a finished file at `target`, resolving name conflicts; returns
/// the reply and blobs that may have become unreferenced.
#[allow(clippy::too_many_arguments)]
fn commit_file(
    c: &Connection,
    space: &str,
    target: &[String],
    strategy: ConflictStrategy,
    may_overwrite: bool,
    data: &FileData,
    cap: Option<u64>,
) -> SResult<(FileMeta, Vec<String>)> {
    let (name, parents, parent) = store::name_in_parent(c, space, target)?;
    let mut blobs = Vec::new();
    let mut freed = 0;
    // An overwrite replaces the content of the node (same inode).
    let mut replaced = None;
    let final_name = match store::child(c, space, parent.id, name)? {
        None => name.clone(),
        Some(e) => match strategy {
            ConflictStrategy::Ask => return Err(ServerError::conflict()),
            ConflictStrategy::Rename => store::free_name(c, space, parent.id, name, false)?,
            ConflictStrategy::Overwrite => {
                if e.is_dir {
                    return Err(ServerError::conflict());
                }
                if !may_overwrite {
                    return Err(ServerError::api(
                        403,
                        codes::NO_PERMISSION,
                        "overwriting needs the upload_file_force grant",
                    ));
                }
                freed = e.size;
                blobs.extend(e.blob.clone());
                replaced = Some(e.id);
                name.clone()
            }
        },
    };
    if let Some(cap) = cap {
        if store::usage(c, space)?.saturating_sub(freed) + data.size > cap {
            return Err(ServerError::api(
                400,
                codes::QUOTA_LIMIT_REACHED,
                "the space quota would be exceeded",
            ));
        }
    }
    let mut data = data.clone();
    data.ctype = content_type_of(&final_name).to_string();
    let id = match replaced {
        Some(id) => {
            store::replace_content(c, space, id, parent.id, &data)?;
            super::tree::touch_linkers(c, space, id)?;
            id
        }
        None => store::insert_file(c, space, parent.id, &final_name, &data, None)?,
    };
    let n = store::node(c, id)?
        .ok_or_else(|| ServerError::Internal("inserted node vanished".into()))?;
    let mut path = parents.to_vec();
    path.push(final_name);
    Ok((file_meta(path, &n, replaced.is_some()), blobs))
}

fn may_overwrite(auth: &Auth, grants: &[&str]) -> bool {
    auth.allows(grants)
}

pub async fn begin(
    app: &Arc<App>,
    ctx: Ctx,
    space: String,
    segs: Vec<String>,
    multipart: bool,
    body: BeginBody,
) -> SResult<Response> {
    app.faults.check("begin", false)?;
    app.faults.delay("begin").await;
    app.stats.op("upload_begin");
    let auth = authenticate(app, &ctx, Some(&space))?;
    auth.require(UPLOAD_GRANTS)?;
    if segs.is_empty() {
        return Err(ServerError::api(
            400,
            codes::EMPTY_FILE_NAME,
            "a file path is required",
        ));
    }
    let strategy = ctx.strategy(ConflictStrategy::Rename)?;
    let may_force = may_overwrite(&auth, &["upload_file_force", "begin_upload_force"]);
    let force = may_force && strategy == ConflictStrategy::Overwrite;
    let filesize: Option<u64> = match ctx.query.get("filesize") {
        None | Some("") => None,
        Some(v) => Some(
            v.parse()
                .map_err(|_| ServerError::api(400, codes::PARAM_INVALID, "invalid filesize"))?,
        ),
    };
    let size: Option<u64> = match body.size.as_deref() {
        None | Some("") => None,
        Some(v) => Some(
            v.parse()
                .map_err(|_| ServerError::api(400, codes::PARAM_INVALID, "invalid size"))?,
        ),
    };
    let cap = app.args.capacity;
    let lmtime = body.local_modification_time.clone();
    let lctime = body.local_creation_time.clone();
    // The new version's metadata: what this begin sends, nothing else.
    let meta = super::meta::from_headers(&ctx.headers)?;
    let ttl = app.args.ticket_ttl;
    let host = ctx.host.clone();
    enum Out {
        Instant(FileMeta, Vec<String>),
        Candidate,
        Ticket(Task),
    }
    let out = app
        .db_small(move |c| {
            let (name, _, parent) = store::name_in_parent(c, &space, &segs)?;
            let existing = store::child(c, &space, parent.id, name)?;
            let mut freed = 0;
            if let Some(e) = &existing {
                match strategy {
                    ConflictStrategy::Ask => return Err(ServerError::conflict()),
                    ConflictStrategy::Overwrite if e.is_dir => return Err(ServerError::conflict()),
                    ConflictStrategy::Overwrite if !may_force => {
                        return Err(ServerError::api(403, codes::NO_PERMISSION, "overwriting needs the upload_file_force grant"))
                    }
                    ConflictStrategy::Overwrite => freed = e.size,
                    ConflictStrategy::Rename => {}
                }
            }
            if let (Some(cap), Some(fs)) = (cap, filesize.or(size)) {
                if store::usage(c, &space)?.saturating_sub(freed) + fs > cap {
                    return Err(ServerError::api(400, codes::QUOTA_LIMIT_REACHED, "the space quota would be exceeded"));
                }
            }
            // Instant upload (§4.12), only for files of at least 1 MiB.
            if let (Some(size), Some(bh)) = (size, body.beginning_hash.as_deref()) {
                if size >= INSTANT_UPLOAD_MIN_SIZE {
                    if let Some(fh) = body.full_hash.as_deref() {
                        if let Some(n) = store::find_by_hash(c, size, true, &fh.to_ascii_lowercase())? {
                            let mut data = store::file_data(&n);
                            data.lmtime = lmtime.clone();
                            data.meta = meta.clone();
                            data.lctime = lctime.clone();
                            let (meta, blobs) = commit_file(c, &space, &segs, strategy, may_force, &data, cap)?;
                            return Ok(Out::Instant(meta, blobs));
                        }
                    } else if store::find_by_hash(c, size, false, &bh.to_ascii_lowercase())?.is_some() {
                        return Ok(Out::Candidate);
                    }
                }
            }
            let (auth, sectoken, expiration) = new_credentials(ttl);
            let t = Task {
                key: random_hex(32),
                space: space.clone(),
                path: segs.clone(),
                multipart,
                upload_id: multipart.then(|| random_hex(24)),
                strategy,
                force,
                auth,
                sectoken,
                expiration,
                ctime: time::now(),
                confirmed: false,
                final_path: None,
                lmtime,
                meta,
                lctime,
                psize: None,
                total: size.or(filesize),
                user: super::actor::current().map(|u| u.to_string()),
            };
            c.prepare_cached(
                "INSERT INTO uploads(key,space,path,multipart,upload_id,strategy,force,auth,sectoken,expiration,ctime,created,confirmed,lmtime,size,meta,lctime,user)
                 VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,0,?13,?14,?15,?16,?17)",
            )?
            .execute(
                params![
                    t.key,
                    t.space,
                    serde_json::to_string(&t.path).unwrap_or_default(),
                    t.multipart as i64,
                    t.upload_id,
                    t.strategy.as_str(),
                    t.force as i64,
                    t.auth,
                    t.sectoken,
                    t.expiration,
                    t.ctime,
                    now_ms(),
                    t.lmtime,
                    t.total.map(|v| v as i64),
                    super::meta::to_db(t.meta.as_ref()),
                    t.lctime,
                    t.user
                ],
            )?;
            Ok(Out::Ticket(t))
        })
        .await?;
    match out {
        Out::Instant(meta, blobs) => {
            Stats::add(&app.stats.instant_upload_hits, 1);
            if !blobs.is_empty() {
                let store = app.store.clone();
                tokio::task::spawn_blocking(move || store.remove_orphans(blobs)).await?;
            }
            Ok(json_response(StatusCode::OK, &meta))
        }
        Out::Candidate => Ok(empty(StatusCode::ACCEPTED)),
        Out::Ticket(t) => {
            app.tasks.begun(&t.key, t.shape());
            Ok(json_response(StatusCode::CREATED, &ticket(&t, &host, true)))
        }
    }
}

fn confirm_key(segs: &[String]) -> SResult<String> {
    match segs {
        [k] => Ok(k.clone()),
        _ => Err(ServerError::api(
            404,
            codes::UPLOAD_NOT_FOUND,
            "no such upload task",
        )),
    }
}

async fn task_of(app: &Arc<App>, key: String, space: String) -> SResult<Task> {
    app.db(move |c| load_task(c, &key))
        .await?
        .filter(|t| t.space == space)
        .ok_or_else(|| ServerError::api(404, codes::UPLOAD_NOT_FOUND, "no such upload task"))
}

struct ConfirmGuard(Arc<App>, String);
impl Drop for ConfirmGuard {
    fn drop(&mut self) {
        self.0.confirming.lock().remove(&self.1);
    }
}

/// Conflict strategy from the query, defaulting to the task's.
fn strategy_of(raw: Option<&str>, default: ConflictStrategy) -> SResult<ConflictStrategy> {
    match raw {
        None | Some("") => Ok(default),
        Some(s) => s.parse().map_err(|e: String| {
            ServerError::api(400, codes::INVALID_CONFLICT_RESOLUTION_STRATEGY, e)
        }),
    }
}

pub async fn confirm(
    app: &Arc<App>,
    mut ctx: Ctx,
    space: String,
    segs: Vec<String>,
) -> SResult<Response> {
    app.faults.check("confirm", false)?;
    app.faults.delay("confirm").await;
    app.stats.op("upload_confirm");
    let auth = authenticate(app, &ctx, Some(&space))?;
    auth.require(&["upload_file", "upload_file_force", "confirm_upload"])?;
    let key = confirm_key(&segs)?;
    let body = ctx.json_value().await?;
    let body: ConfirmBody = serde_json::from_value(body).map_err(|e| {
        ServerError::api(
            400,
            codes::BAD_REQUEST,
            format!("malformed confirm body: {e}"),
        )
    })?;
    if !app.confirming.lock().insert(key.clone()) {
        return Err(ServerError::api(
            409,
            codes::UPLOAD_COMPLETE,
            "the upload is being confirmed",
        ));
    }
    let _guard = ConfirmGuard(app.clone(), key.clone());
    let strategy = ctx
        .query
        .get("conflict_resolution_strategy")
        .map(String::from);
    let force_grant = auth.allows(&["upload_file_force"]);
    // Checks, blob, commit and cleanup in one trip to the blocking pool, or
    // right here when that is a rename and a few statements.
    let meta = if !app.store.busy() && app.tasks.hashed_simple(&key) {
        confirm_blocking(app, &key, &space, strategy.as_deref(), force_grant, &body)?
    } else {
        let app2 = app.clone();
        tokio::task::spawn_blocking(move || {
            confirm_blocking(&app2, &key, &space, strategy.as_deref(), force_grant, &body)
        })
        .await??
    };
    app.faults.check("confirm_reply", false)?;
    app.faults.delay("confirm_reply").await;
    Ok(json_response(StatusCode::OK, &meta))
}

fn confirm_blocking(
    app: &App,
    key: &str,
    space: &str,
    strategy: Option<&str>,
    force_grant: bool,
    body: &ConfirmBody,
) -> SResult<FileMeta> {
    let store = &app.store;
    let (task, mut parts) = store.tx(|c| {
        let task = load_task(c, key)?
            .filter(|t| t.space == space)
            .ok_or_else(|| ServerError::api(404, codes::UPLOAD_NOT_FOUND, "no such upload task"))?;
        let parts = if task.confirmed {
            Vec::new()
        } else {
            assemble::load_part_recs(c, key)?
        };
        Ok((task, parts))
    })?;
    if task.confirmed {
        return Err(ServerError::api(
            409,
            codes::UPLOAD_COMPLETE,
            "the upload was already confirmed",
        ));
    }
    let strategy = strategy_of(strategy, task.strategy)?;
    let force = task.force || force_grant;
    if parts.is_empty() {
        return Err(ServerError::api(
            404,
            codes::UPLOAD_INCOMPLETE,
            "no data was uploaded for this task",
        ));
    }
    if task.multipart {
        for (i, p) in parts.iter().enumerate() {
            if p.num as usize != i + 1 {
                return Err(ServerError::api(
                    400,
                    codes::MULTIPART_UPLOAD_INCOMPLETE,
                    format!("part {} is missing", i + 1),
                ));
            }
        }
        for p in &parts[..parts.len() - 1] {
            if p.size < MIN_PART {
                return Err(ServerError::api(
                    400,
                    codes::MULTIPART_UPLOAD_PART_TOO_SMALL,
                    format!(
                        "part {} has {} bytes; every part but the last needs at least 1 MiB",
                        p.num, p.size
                    ),
                ));
            }
        }
    } else {
        // A simple upload is its part 1.
        parts.truncate(1);
    }
    let tf = store.with(|c| app.tasks.get(c, key, task.shape()))?;
    let fin = tf.finish(store, &parts, body.crc64.as_deref())?;
    let data = FileData {
        size: fin.hashes.size,
        blob: fin.blob.clone(),
        crc64: fin.hashes.crc64_string(),
        bhash: fin.hashes.beginning_hash.clone(),
        fhash: fin.hashes.full_hash.clone(),
        ctype: String::new(),
        lmtime: body.local_modification_time.clone().or(task.lmtime.clone()),
        meta: task.meta.clone(),
        lctime: body.local_creation_time.clone().or(task.lctime.clone()),
    };
    let cap = app.args.capacity;
    let user = task.user.as_deref().map(std::sync::Arc::from);
    let res = super::actor::with(user, || {
        store.tx(|c| {
            let (meta, blobs) = commit_file(c, space, &task.path, strategy, force, &data, cap)?;
            c.prepare_cached("UPDATE uploads SET confirmed=1, final_path=?2 WHERE key=?1")?
                .execute(params![
                    key,
                    serde_json::to_string(&meta.path).unwrap_or_default()
                ])?;
            c.prepare_cached("DELETE FROM parts WHERE key=?1")?
                .execute([key])?;
            tasks::drop_earlier_credentials(c, key)?;
            Ok((meta, blobs))
        })
    });
    let (meta, blobs) = match res {
        Ok(x) => x,
        Err(e) => {
            tf.undo(store, &fin);
            return Err(e);
        }
    };
    app.tasks.remove(key);
    fin.cleanup(store, key, &parts);
    store.remove_orphans(blobs);
    Ok(meta)
}

pub async fn status(
    app: &Arc<App>,
    ctx: Ctx,
    space: String,
    segs: Vec<String>,
) -> SResult<Response> {
    app.stats.op("upload_status");
    let auth = authenticate(app, &ctx, Some(&space))?;
    auth.require(UPLOAD_GRANTS)?;
    let key = confirm_key(&segs)?;
    let task = task_of(app, key.clone(), space).await?;
    let parts = if task.multipart {
        app.db(move |c| load_parts(c, &key)).await?
    } else {
        Vec::new()
    };
    let st = UploadStatus {
        confirmed: task.confirmed,
        path: Some(task.final_path.clone().unwrap_or_else(|| task.path.clone())),
        kind: Some("file".into()),
        creation_time: Some(task.ctime.clone()),
        conflict_resolution_strategy: Some(task.strategy),
        force: task.force,
        available_domain_num: Some(serde_json::json!(1)),
        upload_id: task.upload_id.clone(),
        parts,
        upload_part_info: task.multipart.then(|| ticket(&task, &ctx.host, false)),
    };
    Ok(json_response(StatusCode::OK, &st))
}

pub async fn renew(
    app: &Arc<App>,
    ctx: Ctx,
    space: String,
    segs: Vec<String>,
) -> SResult<Response> {
    app.stats.op("upload_renew");
    let auth = authenticate(app, &ctx, Some(&space))?;
    auth.require(UPLOAD_GRANTS)?;
    let key = confirm_key(&segs)?;
    let ttl = app.args.ticket_ttl;
    let task = app
        .db(move |c| {
            let mut t = load_task(c, &key)?
                .filter(|t| t.space == space)
                .ok_or_else(|| {
                    ServerError::api(404, codes::UPLOAD_NOT_FOUND, "no such upload task")
                })?;
            if t.confirmed {
                return Err(ServerError::api(
                    409,
                    codes::UPLOAD_COMPLETE,
                    "the upload was already confirmed",
                ));
            }
            if !t.multipart {
                return Err(ServerError::api(
                    400,
                    codes::BAD_REQUEST,
                    "only multipart upload tasks can be renewed",
                ));
            }
            tasks::renew_credentials(c, &mut t, ttl)?;
            Ok(t)
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &ticket(&task, &ctx.host, true),
    ))
}

pub async fn abort(
    app: &Arc<App>,
    ctx: Ctx,
    space: String,
    segs: Vec<String>,
) -> SResult<Response> {
    app.stats.op("upload_abort");
    let auth = authenticate(app, &ctx, Some(&space))?;
    auth.require(UPLOAD_GRANTS)?;
    let key = confirm_key(&segs)?;
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || {
        let parts = app2.store.tx(|c| {
            let n = c
                .prepare_cached("DELETE FROM uploads WHERE key=?1 AND space=?2")?
                .execute(params![key, space])?;
            if n == 0 {
                return Err(ServerError::api(
                    404,
                    codes::UPLOAD_NOT_FOUND,
                    "no such upload task",
                ));
            }
            let parts = assemble::load_part_recs(c, &key)?;
            c.prepare_cached(
                "DELETE FROM blobdata WHERE id IN (SELECT dbblob FROM parts WHERE key=?1 AND dbblob IS NOT NULL)",
            )?
            .execute([&key])?;
            c.prepare_cached("DELETE FROM parts WHERE key=?1")?
                .execute([&key])?;
            tasks::drop_earlier_credentials(c, &key)?;
            Ok(parts)
        })?;
        app2.tasks.remove(&key);
        assemble::remove_task_files(&app2.store, &key, &parts);
        Ok::<_, ServerError>(())
    })
    .await??;
    Ok(empty(StatusCode::NO_CONTENT))
}
