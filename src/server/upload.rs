//! Uploads (§4.8–4.12): begin (simple / multipart / instant), object PUTs of
//! parts and simple bodies, confirm, status, renew, abort.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use rusqlite::{params, Connection, OptionalExtension};

use super::assemble::{self, Loc, PartRec, TaskShape};
use super::auth::Auth;
use super::error::{SResult, ServerError};
use super::routes::{authenticate, empty, json_response, Ctx};
use super::stats::Stats;
use super::store::{self, now_ms, random_hex, FileData};
use super::App;
use crate::smh::codes;
use crate::smh::hash::{ContentHasher, Crc64, INSTANT_UPLOAD_MIN_SIZE};
use crate::smh::time;
use crate::smh::types::{
    BeginBody, ConfirmBody, ConflictStrategy, EntryType, FileMeta, PartInfo, UploadStatus,
    UploadTicket,
};

/// Smallest non-last part of a multipart upload.
pub const MIN_PART: u64 = 1024 * 1024;
pub const MAX_PART_NUMBER: u32 = 10_000;

const UPLOAD_GRANTS: &[&str] = &[
    "upload_file",
    "upload_file_force",
    "begin_upload",
    "begin_upload_force",
];

/// An upload task as stored.
#[derive(Debug, Clone)]
pub struct Task {
    pub key: String,
    pub space: String,
    pub path: Vec<String>,
    pub multipart: bool,
    pub upload_id: Option<String>,
    pub strategy: ConflictStrategy,
    pub force: bool,
    pub auth: String,
    pub sectoken: String,
    /// Ticket expiry, Unix ms.
    pub expiration: i64,
    pub ctime: String,
    pub confirmed: bool,
    pub final_path: Option<Vec<String>>,
    pub lmtime: Option<String>,
    /// Part size of the task blob, once a part was stored in it.
    pub psize: Option<u64>,
    /// Total size announced at begin.
    pub total: Option<u64>,
}

impl Task {
    fn shape(&self) -> TaskShape {
        TaskShape {
            multipart: self.multipart,
            psize: self.psize,
            total: self.total,
        }
    }
}

fn load_task(c: &Connection, key: &str) -> SResult<Option<Task>> {
    Ok(c
        .prepare_cached(
            "SELECT key,space,path,multipart,upload_id,strategy,force,auth,sectoken,expiration,ctime,confirmed,final_path,lmtime,psize,size
             FROM uploads WHERE key=?1",
        )?
        .query_row(
            [key],
            |r| {
                let path: String = r.get(2)?;
                let strategy: String = r.get(5)?;
                let fp: Option<String> = r.get(12)?;
                Ok(Task {
                    key: r.get(0)?,
                    space: r.get(1)?,
                    path: serde_json::from_str(&path).unwrap_or_default(),
                    multipart: r.get::<_, i64>(3)? != 0,
                    upload_id: r.get(4)?,
                    strategy: strategy.parse().unwrap_or_default(),
                    force: r.get::<_, i64>(6)? != 0,
                    auth: r.get(7)?,
                    sectoken: r.get(8)?,
                    expiration: r.get(9)?,
                    ctime: r.get(10)?,
                    confirmed: r.get::<_, i64>(11)? != 0,
                    final_path: fp.and_then(|p| serde_json::from_str(&p).ok()),
                    lmtime: r.get(13)?,
                    psize: r.get::<_, Option<i64>>(14)?.map(|v| v as u64),
                    total: r.get::<_, Option<i64>>(15)?.map(|v| v as u64),
                })
            },
        )
        .optional()?)
}

fn load_parts(c: &Connection, key: &str) -> SResult<Vec<PartInfo>> {
    let mut stmt =
        c.prepare_cached("SELECT num,size,etag,mtime FROM parts WHERE key=?1 ORDER BY num")?;
    let rows = stmt
        .query_map([key], |r| {
            Ok(PartInfo {
                part_number: r.get::<_, i64>(0)? as u32,
                size: r.get::<_, i64>(1)? as u64,
                etag: r.get(2)?,
                last_modified: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn new_credentials(ttl: u64) -> (String, String, i64) {
    let now = chrono::Utc::now().timestamp();
    let end = now + ttl as i64;
    let auth = format!(
        "q-sign-algorithm=sha1&q-ak=AKIDsmhlocal{}&q-sign-time={now};{end}&q-key-time={now};{end}&q-header-list=&q-url-param-list=&q-signature={}",
        random_hex(8),
        random_hex(20)
    );
    (auth, random_hex(32), now_ms() + ttl as i64 * 1000)
}

fn ticket(t: &Task, host: &str, full: bool) -> UploadTicket {
    let mut headers = BTreeMap::new();
    headers.insert(
        "Content-Type".to_string(),
        serde_json::json!("application/octet-stream"),
    );
    headers.insert("Authorization".to_string(), serde_json::json!(t.auth));
    headers.insert(
        "x-cos-security-token".to_string(),
        serde_json::json!(t.sectoken),
    );
    UploadTicket {
        domain: host.to_string(),
        path: format!("/cos/up/{}", t.key),
        upload_id: t.upload_id.clone(),
        headers,
        confirm_key: full.then(|| t.key.clone()),
        expiration: Some(time::from_unix_ms(t.expiration)),
        available_domain_num: full.then(|| serde_json::json!(1)),
    }
}

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
        inode: Some(format!("{:032x}", n.id)),
        creation_time: Some(n.ctime.clone()),
        modification_time: Some(n.mtime.clone()),
        content_type: n.ctype.clone(),
        size: n.size.to_string(),
        e_tag: Some(n.etag()),
        crc64: n.crc64.clone(),
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
    let (name, parents) = target
        .split_last()
        .ok_or_else(|| ServerError::api(400, codes::EMPTY_FILE_NAME, "empty file name"))?;
    let parent = store::resolve_dir(c, space, parents)?.ok_or_else(|| {
        ServerError::api(
            404,
            codes::DIRECTORY_NOT_FOUND,
            "the parent directory does not exist",
        )
    })?;
    let mut blobs = Vec::new();
    let mut freed = 0;
    let mut ctime = None;
    let mut overwritten = false;
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
                ctime = Some(e.ctime.clone());
                blobs = store::delete_tree(c, e.id)?;
                overwritten = true;
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
    let id = store::insert_file(c, space, parent.id, &final_name, &data, ctime.as_deref())?;
    let n = store::node(c, id)?
        .ok_or_else(|| ServerError::Internal("inserted node vanished".into()))?;
    let mut path = parents.to_vec();
    path.push(final_name);
    Ok((file_meta(path, &n, overwritten), blobs))
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
    let ttl = app.args.ticket_ttl;
    let host = ctx.host.clone();
    enum Out {
        Instant(FileMeta, Vec<String>),
        Candidate,
        Ticket(Task),
    }
    let out = app
        .db_small(move |c| {
            let (name, parents) = segs.split_last().ok_or_else(|| ServerError::api(400, codes::EMPTY_FILE_NAME, "empty name"))?;
            let parent = store::resolve_dir(c, &space, parents)?
                .ok_or_else(|| ServerError::api(404, codes::DIRECTORY_NOT_FOUND, "the parent directory does not exist"))?;
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
                psize: None,
                total: size.or(filesize),
            };
            c.prepare_cached(
                "INSERT INTO uploads(key,space,path,multipart,upload_id,strategy,force,auth,sectoken,expiration,ctime,created,confirmed,lmtime,size)
                 VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,0,?13,?14)",
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
                    t.total.map(|v| v as i64)
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
    };
    let cap = app.args.capacity;
    let res = store.tx(|c| {
        let (meta, blobs) = commit_file(c, space, &task.path, strategy, force, &data, cap)?;
        c.prepare_cached("UPDATE uploads SET confirmed=1, final_path=?2 WHERE key=?1")?
            .execute(params![
                key,
                serde_json::to_string(&meta.path).unwrap_or_default()
            ])?;
        c.prepare_cached("DELETE FROM parts WHERE key=?1")?
            .execute([key])?;
        Ok((meta, blobs))
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
            let (a, s, e) = new_credentials(ttl);
            t.auth = a;
            t.sectoken = s;
            t.expiration = e;
            c.execute(
                "UPDATE uploads SET auth=?2, sectoken=?3, expiration=?4 WHERE key=?1",
                params![t.key, t.auth, t.sectoken, t.expiration],
            )?;
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
            Ok(parts)
        })?;
        app2.tasks.remove(&key);
        assemble::remove_task_files(&app2.store, &key, &parts);
        Ok::<_, ServerError>(())
    })
    .await??;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `PUT /cos/up/{key}[?partNumber=N&uploadId=U]`: the COS side of uploads.
pub async fn object_put(app: &Arc<App>, ctx: Ctx, key: &str) -> SResult<Response> {
    let r = object_put_inner(app, &ctx, key).await;
    if r.is_err() {
        // Read (and discard) an unread body so that the client sees our
        // error reply instead of a connection reset mid-upload.
        if let Some(body) = ctx.take_body() {
            drain(body).await;
        }
    }
    r
}

async fn drain(body: axum::body::Body) {
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await {
        total += chunk.len();
        if total > 1 << 30 {
            break;
        }
    }
}

fn etag_of(crc: u64, n: u64) -> String {
    format!("\"{crc:016x}{n:016x}\"")
}

/// Received bytes are handed to the blocking pool in batches of this size
/// (one hop for a small body, file open, write and record included).
const RECV_BUF: usize = 1 << 20;

/// Bodies up to this size are stored without a trip to the blocking pool.
const SMALL_INLINE: u64 = 64 << 10;

/// Simple uploads up to this size are hashed while received (no read-back
/// at confirm); larger ones are hashed from the page cache at confirm, so
/// that the receive path stays as fast as the disk.
const INLINE_HASH_MAX: u64 = 16 << 20;

/// What an object PUT asks for, checked against the task in the first hop.
struct PutRequest {
    key: String,
    part_number: Option<String>,
    upload_id: Option<String>,
    auth: String,
    sectoken: String,
    len: Option<u64>,
}

/// A part being received.
struct PartWriter {
    tf: Arc<assemble::TaskFiles>,
    num: u32,
    multipart: bool,
    place: assemble::Placement,
    /// None: the part goes to the database (`data`).
    file: Option<std::fs::File>,
    data: Vec<u8>,
    /// Offset of the part in `file`.
    base: u64,
    written: u64,
    len: Option<u64>,
    hasher: Option<ContentHasher>,
    /// Recorded; otherwise dropping frees the slot and the fallback file
    /// (also when the client goes away mid-body and the request is dropped).
    recorded: bool,
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        if !self.recorded {
            self.tf.release(self.num, &self.place);
            if self.file.is_some() && !self.place.slot {
                let _ = std::fs::remove_file(&self.place.path);
            }
        }
    }
}

impl PartWriter {
    /// Loads and checks the task, then picks and opens the part's file.
    fn open(app: &App, req: &PutRequest) -> SResult<PartWriter> {
        let store = &app.store;
        let (task, tf) = store.with(|c| {
            let task = load_task(c, &req.key)?
                .filter(|t| !t.confirmed)
                .ok_or_else(|| {
                    ServerError::cos(404, codes::NO_SUCH_UPLOAD, "the upload does not exist")
                })?;
            let tf = app.tasks.get(c, &req.key, task.shape())?;
            Ok((task, tf))
        })?;
        if req.auth != task.auth || req.sectoken != task.sectoken {
            return Err(ServerError::cos(
                403,
                codes::ACCESS_DENIED,
                "the signature or security token is not valid for this upload",
            ));
        }
        if now_ms() > task.expiration {
            return Err(ServerError::cos(
                403,
                codes::ACCESS_DENIED,
                "Request has expired",
            ));
        }
        let num: u32 = if task.multipart {
            let n: u32 = req
                .part_number
                .as_deref()
                .and_then(|p| p.parse().ok())
                .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
                .ok_or_else(|| {
                    ServerError::cos(400, codes::INVALID_ARGUMENT, "partNumber must be 1..10000")
                })?;
            if req.upload_id.as_deref() != task.upload_id.as_deref() {
                return Err(ServerError::cos(
                    404,
                    codes::NO_SUCH_UPLOAD,
                    "uploadId does not match",
                ));
            }
            n
        } else {
            if req.part_number.is_some() {
                return Err(ServerError::cos(
                    400,
                    codes::INVALID_ARGUMENT,
                    "this is not a multipart upload",
                ));
            }
            1
        };
        let place = tf.place(store, num, req.len);
        let opened = if let Loc::Db(_) = place.loc {
            Ok(None)
        } else if place.slot {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&place.path)
                .map(Some)
        } else {
            std::fs::File::create(&place.path).map(Some)
        };
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                tf.release(num, &place);
                return Err(e.into());
            }
        };
        let base = match place.loc {
            Loc::Blob(o) => o,
            _ => 0,
        };
        let hasher = (!task.multipart && req.len.is_some_and(|l| l <= INLINE_HASH_MAX))
            .then(ContentHasher::new);
        Ok(PartWriter {
            tf,
            num,
            multipart: task.multipart,
            place,
            file,
            data: Vec::new(),
            base,
            written: 0,
            len: req.len,
            hasher,
            recorded: false,
        })
    }

    fn write(&mut self, data: &[axum::body::Bytes]) -> SResult<()> {
        use std::os::unix::fs::FileExt;
        let tf = self.tf.clone();
        let _serial = self.place.slot.then(|| tf.write_lock.lock());
        for d in data {
            if self.len.is_some_and(|l| self.written + d.len() as u64 > l) {
                return Err(ServerError::cos(
                    400,
                    codes::INCOMPLETE_BODY,
                    "the body is longer than Content-Length",
                ));
            }
            match &self.file {
                Some(f) => f.write_all_at(d, self.base + self.written)?,
                None => self.data.extend_from_slice(d),
            }
            self.written += d.len() as u64;
            if let Some(h) = self.hasher.as_mut() {
                h.update(d);
            }
        }
        Ok(())
    }

    /// Records the complete part (the task must still be open).
    fn commit(mut self, app: &App, etag: String) -> SResult<()> {
        let key = self.tf.key.clone();
        let num = self.num;
        let slot = self.place.slot;
        let psize = if slot { self.tf.psize_to_save() } else { None };
        let (off, fname, dbblob) = self.place.loc.cols();
        let written = self.written;
        let data = std::mem::take(&mut self.data);
        let res = app.store.tx(|c| {
            let live: Option<i64> = c
                .prepare_cached("SELECT confirmed FROM uploads WHERE key=?1")?
                .query_row([&key], |r| r.get(0))
                .optional()?;
            if live != Some(0) {
                return Err(ServerError::cos(
                    404,
                    codes::NO_SUCH_UPLOAD,
                    "the upload does not exist",
                ));
            }
            let old: Option<(Option<String>, Option<String>)> = c
                .prepare_cached("SELECT file,dbblob FROM parts WHERE key=?1 AND num=?2")?
                .query_row(params![key, num as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (old_file, old_db) = old.unwrap_or_default();
            if let Some(id) = &old_db {
                c.prepare_cached("DELETE FROM blobdata WHERE id=?1")?
                    .execute([id])?;
            }
            if let Some(id) = dbblob {
                c.prepare_cached("INSERT INTO blobdata(id,data) VALUES(?1,?2)")?
                    .execute(params![id, data])?;
            }
            c.prepare_cached(
                "INSERT OR REPLACE INTO parts(key,num,size,etag,mtime,off,file,dbblob) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
            )?
            .execute(params![key, num as i64, written as i64, etag, time::now(), off, fname, dbblob])?;
            if let Some(p) = psize {
                c.prepare_cached("UPDATE uploads SET psize=?2 WHERE key=?1")?
                    .execute(params![key, p as i64])?;
            }
            Ok(old_file)
        });
        let old = match res {
            Ok(old) => old,
            Err(e) => {
                if slot && e.code() == codes::NO_SUCH_UPLOAD {
                    // Gone (aborted or confirmed) while we wrote: the task
                    // blob, if any, is one we recreated.
                    let _ = std::fs::remove_file(&self.place.path);
                }
                return Err(e);
            }
        };
        self.recorded = true;
        if let Some(f) = old.filter(|f| Some(f.as_str()) != fname) {
            let _ = std::fs::remove_file(app.store.part_file(&f));
        }
        if let Some(h) = self.hasher.take() {
            self.tf.hashed_inline(&etag, h);
        }
        let rec = PartRec {
            num,
            size: written,
            etag,
            loc: self.place.loc.clone(),
        };
        if self.tf.recorded(rec, slot, psize.is_some()) && self.multipart {
            let (tf, store) = (self.tf.clone(), app.store.clone());
            // Not awaited: hashing runs behind the reply.
            tokio::task::spawn_blocking(move || tf.run_hasher(&store));
        }
        Ok(())
    }
}

async fn object_put_inner(app: &Arc<App>, ctx: &Ctx, key: &str) -> SResult<Response> {
    app.faults.check("part", true)?;
    app.faults.delay("part").await;
    let part_number = ctx.query.get("partNumber").map(String::from);
    app.stats.op(if part_number.is_some() {
        "part_put"
    } else {
        "object_put"
    });
    let hdr = |k: &str| {
        ctx.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let req = Arc::new(PutRequest {
        key: key.to_string(),
        part_number,
        upload_id: ctx.query.get("uploadId").map(String::from),
        auth: hdr("authorization"),
        sectoken: hdr("x-cos-security-token"),
        len: ctx
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
    });
    let body = ctx.take_body().unwrap_or_default();
    let mut stream = body.into_data_stream();
    let mut crc = Crc64::new();
    let mut n = 0u64;
    let mut writer: Option<PartWriter> = None;
    let mut done = false;
    // Body in batches of up to RECV_BUF; the first hop also checks the task
    // and opens the file, the last one records the part.
    while !done {
        let mut batch = Vec::new();
        let mut batch_len = 0;
        while batch_len < RECV_BUF {
            match stream.next().await {
                Some(Ok(chunk)) => {
                    crc.update(&chunk);
                    n += chunk.len() as u64;
                    batch_len += chunk.len();
                    batch.push(chunk);
                    if req.len == Some(n) {
                        // All of Content-Length: record with this batch
                        // rather than in one more hop after the end.
                        done = true;
                        break;
                    }
                }
                Some(Err(e)) => {
                    if let Some(w) = writer.take() {
                        tokio::task::spawn_blocking(move || drop(w)).await?;
                    }
                    return Err(ServerError::cos(
                        400,
                        codes::INCOMPLETE_BODY,
                        format!("reading the body: {e}"),
                    ));
                }
                None => {
                    done = true;
                    break;
                }
            }
        }
        let etag = done.then(|| etag_of(crc.value(), n));
        let (app2, req2, w) = (app.clone(), req.clone(), writer.take());
        let step = move || -> SResult<Option<PartWriter>> {
            let mut w = match w {
                Some(w) => w,
                None => PartWriter::open(&app2, &req2)?,
            };
            w.write(&batch)?;
            match etag {
                Some(etag) => w.commit(&app2, etag).map(|()| None),
                None => Ok(Some(w)),
            }
        };
        // A small body is stored right here (open, write, record: tens of
        // microseconds), larger ones on the blocking pool.
        let small = done && n <= SMALL_INLINE && !app.store.busy();
        writer = if small {
            step()
        } else {
            tokio::task::spawn_blocking(step)
                .await
                .map_err(ServerError::from)
                .and_then(|r| r)
        }
        .map_err(ServerError::into_cos)?;
    }
    let crc = crc.value();
    let etag = etag_of(crc, n);
    Stats::add(&app.stats.part_bytes, n);
    let mut r = empty(StatusCode::OK);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("x-cos-hash-crc64ecma", HeaderValue::from(crc));
    Ok(r)
}
