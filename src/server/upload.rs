//! Uploads (§4.8–4.12): begin (simple / multipart / instant), object PUTs of
//! parts and simple bodies, confirm, status, renew, abort.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use rusqlite::{params, Connection, OptionalExtension};

use super::auth::Auth;
use super::error::{SResult, ServerError};
use super::routes::{authenticate, empty, json_response, Ctx};
use super::stats::Stats;
use super::store::{self, iso_ms, now_iso, now_ms, random_hex, FileData};
use super::App;
use crate::smh::hash::{Crc64, INSTANT_UPLOAD_MIN_SIZE};
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
}

fn load_task(c: &Connection, key: &str) -> SResult<Option<Task>> {
    Ok(c
        .query_row(
            "SELECT key,space,path,multipart,upload_id,strategy,force,auth,sectoken,expiration,ctime,confirmed,final_path,lmtime
             FROM uploads WHERE key=?1",
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
                })
            },
        )
        .optional()?)
}

fn load_parts(c: &Connection, key: &str) -> SResult<Vec<PartInfo>> {
    let mut stmt = c.prepare("SELECT num,size,etag,mtime FROM parts WHERE key=?1 ORDER BY num")?;
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
        expiration: Some(iso_ms(t.expiration)),
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
        .ok_or_else(|| ServerError::api(400, "EmptyFileName", "empty file name"))?;
    let parent = store::resolve_dir(c, space, parents)?.ok_or_else(|| {
        ServerError::api(
            404,
            "DirectoryNotFound",
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
                        "NoPermission",
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
                "QuotaLimitReached",
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
            "EmptyFileName",
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
                .map_err(|_| ServerError::api(400, "ParamInvalid", "invalid filesize"))?,
        ),
    };
    let size: Option<u64> = match body.size.as_deref() {
        None | Some("") => None,
        Some(v) => Some(
            v.parse()
                .map_err(|_| ServerError::api(400, "ParamInvalid", "invalid size"))?,
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
        .db(move |c| {
            let (name, parents) = segs.split_last().ok_or_else(|| ServerError::api(400, "EmptyFileName", "empty name"))?;
            let parent = store::resolve_dir(c, &space, parents)?
                .ok_or_else(|| ServerError::api(404, "DirectoryNotFound", "the parent directory does not exist"))?;
            let existing = store::child(c, &space, parent.id, name)?;
            let mut freed = 0;
            if let Some(e) = &existing {
                match strategy {
                    ConflictStrategy::Ask => return Err(ServerError::conflict()),
                    ConflictStrategy::Overwrite if e.is_dir => return Err(ServerError::conflict()),
                    ConflictStrategy::Overwrite if !may_force => {
                        return Err(ServerError::api(403, "NoPermission", "overwriting needs the upload_file_force grant"))
                    }
                    ConflictStrategy::Overwrite => freed = e.size,
                    ConflictStrategy::Rename => {}
                }
            }
            if let (Some(cap), Some(fs)) = (cap, filesize.or(size)) {
                if store::usage(c, &space)?.saturating_sub(freed) + fs > cap {
                    return Err(ServerError::api(400, "QuotaLimitReached", "the space quota would be exceeded"));
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
                ctime: now_iso(),
                confirmed: false,
                final_path: None,
                lmtime,
            };
            c.execute(
                "INSERT INTO uploads(key,space,path,multipart,upload_id,strategy,force,auth,sectoken,expiration,ctime,created,confirmed,lmtime)
                 VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,0,?13)",
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
                    t.lmtime
                ],
            )?;
            Ok(Out::Ticket(t))
        })
        .await?;
    match out {
        Out::Instant(meta, blobs) => {
            Stats::add(&app.stats.instant_upload_hits, 1);
            let store = app.store.clone();
            tokio::task::spawn_blocking(move || store.remove_orphans(blobs)).await?;
            Ok(json_response(StatusCode::OK, &meta))
        }
        Out::Candidate => Ok(empty(StatusCode::ACCEPTED)),
        Out::Ticket(t) => Ok(json_response(StatusCode::CREATED, &ticket(&t, &host, true))),
    }
}

fn confirm_key(segs: &[String]) -> SResult<String> {
    match segs {
        [k] => Ok(k.clone()),
        _ => Err(ServerError::api(
            404,
            "UploadNotFound",
            "no such upload task",
        )),
    }
}

async fn task_of(app: &Arc<App>, key: String, space: String) -> SResult<Task> {
    app.db(move |c| load_task(c, &key))
        .await?
        .filter(|t| t.space == space)
        .ok_or_else(|| ServerError::api(404, "UploadNotFound", "no such upload task"))
}

struct ConfirmGuard(Arc<App>, String);
impl Drop for ConfirmGuard {
    fn drop(&mut self) {
        self.0.confirming.lock().remove(&self.1);
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
    let body: ConfirmBody = serde_json::from_value(body)
        .map_err(|e| ServerError::api(400, "BadRequest", format!("malformed confirm body: {e}")))?;
    if !app.confirming.lock().insert(key.clone()) {
        return Err(ServerError::api(
            409,
            "UploadComplete",
            "the upload is being confirmed",
        ));
    }
    let _guard = ConfirmGuard(app.clone(), key.clone());
    // The task and its parts in one trip to the database.
    let (k2, sp2) = (key.clone(), space.clone());
    let (task, parts) = app
        .db(move |c| {
            let task = load_task(c, &k2)?
                .filter(|t| t.space == sp2)
                .ok_or_else(|| ServerError::api(404, "UploadNotFound", "no such upload task"))?;
            let parts = if task.confirmed {
                Vec::new()
            } else {
                load_parts(c, &k2)?
            };
            Ok((task, parts))
        })
        .await?;
    if task.confirmed {
        return Err(ServerError::api(
            409,
            "UploadComplete",
            "the upload was already confirmed",
        ));
    }
    let strategy = ctx.strategy(task.strategy)?;
    let force = task.force || auth.allows(&["upload_file_force"]);
    if parts.is_empty() {
        return Err(ServerError::api(
            404,
            "UploadIncomplete",
            "no data was uploaded for this task",
        ));
    }
    if task.multipart {
        for (i, p) in parts.iter().enumerate() {
            if p.part_number as usize != i + 1 {
                return Err(ServerError::api(
                    400,
                    "MultipartUploadIncomplete",
                    format!("part {} is missing", i + 1),
                ));
            }
        }
        for p in &parts[..parts.len() - 1] {
            if p.size < MIN_PART {
                return Err(ServerError::api(
                    400,
                    "MultipartUploadPartTooSmall",
                    format!(
                        "part {} has {} bytes; every part but the last needs at least 1 MiB",
                        p.part_number, p.size
                    ),
                ));
            }
        }
    }
    let app2 = app.clone();
    let k3 = key.clone();
    let (blob, hashes) =
        tokio::task::spawn_blocking(move || app2.assemblies.finish(&app2.store, &k3, &parts))
            .await??;
    let cleanup_blob = |app: &Arc<App>, blob: &str| {
        let _ = std::fs::remove_file(app.store.blob_path(blob));
    };
    if let Some(want) = body.crc64.as_deref().filter(|c| !c.is_empty()) {
        if want.trim() != hashes.crc64_string() {
            cleanup_blob(app, &blob);
            return Err(ServerError::api(
                400,
                "BadCrc64",
                format!(
                    "crc64 mismatch: expected {want}, got {}",
                    hashes.crc64_string()
                ),
            ));
        }
    }
    let data = FileData {
        size: hashes.size,
        blob: blob.clone(),
        crc64: hashes.crc64_string(),
        bhash: hashes.beginning_hash.clone(),
        fhash: hashes.full_hash.clone(),
        ctype: String::new(),
        lmtime: body.local_modification_time.clone().or(task.lmtime.clone()),
    };
    let cap = app.args.capacity;
    let target = task.path.clone();
    let k4 = key.clone();
    let store = app.store.clone();
    let dir = app.store.upload_dir(&key);
    // Commit, then drop the part files and replaced blobs, in one trip to
    // the blocking pool.
    let res = tokio::task::spawn_blocking(move || {
        let meta = store.tx(|c| {
            let (meta, blobs) = commit_file(c, &space, &target, strategy, force, &data, cap)?;
            c.execute(
                "UPDATE uploads SET confirmed=1, final_path=?2 WHERE key=?1",
                params![k4, serde_json::to_string(&meta.path).unwrap_or_default()],
            )?;
            c.execute("DELETE FROM parts WHERE key=?1", [&k4])?;
            Ok((meta, blobs))
        });
        meta.map(|(meta, blobs)| {
            // Cleanup runs behind the reply: the file is committed already.
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_dir_all(dir);
                store.remove_orphans(blobs);
            });
            meta
        })
    })
    .await?;
    let meta = match res {
        Ok(x) => x,
        Err(e) => {
            cleanup_blob(app, &blob);
            return Err(e);
        }
    };
    Ok(json_response(StatusCode::OK, &meta))
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
                .ok_or_else(|| ServerError::api(404, "UploadNotFound", "no such upload task"))?;
            if t.confirmed {
                return Err(ServerError::api(
                    409,
                    "UploadComplete",
                    "the upload was already confirmed",
                ));
            }
            if !t.multipart {
                return Err(ServerError::api(
                    400,
                    "BadRequest",
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
    let k2 = key.clone();
    app.db(move |c| {
        let n = c.execute(
            "DELETE FROM uploads WHERE key=?1 AND space=?2",
            params![k2, space],
        )?;
        if n == 0 {
            return Err(ServerError::api(
                404,
                "UploadNotFound",
                "no such upload task",
            ));
        }
        c.execute("DELETE FROM parts WHERE key=?1", [&k2])?;
        Ok(())
    })
    .await?;
    let app2 = app.clone();
    let k3 = key.clone();
    tokio::task::spawn_blocking(move || app2.assemblies.forget(&k3)).await?;
    let dir = app.store.upload_dir(&key);
    let _ = tokio::fs::remove_dir_all(dir).await;
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

/// Received part bytes are written in buffers of this size.
const RECV_BUF: usize = 1 << 20;

async fn object_put_inner(app: &Arc<App>, ctx: &Ctx, key: &str) -> SResult<Response> {
    app.faults.check("part", true)?;
    app.faults.delay("part").await;
    let part_number = ctx.query.get("partNumber").map(String::from);
    let upload_id = ctx.query.get("uploadId").map(String::from);
    app.stats.op(if part_number.is_some() {
        "part_put"
    } else {
        "object_put"
    });
    let key = key.to_string();
    let k2 = key.clone();
    let task = app
        .db(move |c| load_task(c, &k2))
        .await
        .map_err(ServerError::into_cos)?
        .filter(|t| !t.confirmed)
        .ok_or_else(|| ServerError::cos(404, "NoSuchUpload", "the upload does not exist"))?;
    let hdr = |k: &str| {
        ctx.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if hdr("authorization") != task.auth || hdr("x-cos-security-token") != task.sectoken {
        return Err(ServerError::cos(
            403,
            "AccessDenied",
            "the signature or security token is not valid for this upload",
        ));
    }
    if now_ms() > task.expiration {
        return Err(ServerError::cos(403, "AccessDenied", "Request has expired"));
    }
    let num: u32 = if task.multipart {
        let n: u32 = part_number
            .as_deref()
            .and_then(|p| p.parse().ok())
            .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
            .ok_or_else(|| {
                ServerError::cos(400, "InvalidArgument", "partNumber must be 1..10000")
            })?;
        if upload_id.as_deref() != task.upload_id.as_deref() {
            return Err(ServerError::cos(
                404,
                "NoSuchUpload",
                "uploadId does not match",
            ));
        }
        n
    } else {
        if part_number.is_some() {
            return Err(ServerError::cos(
                400,
                "InvalidArgument",
                "this is not a multipart upload",
            ));
        }
        1
    };
    let dir = app.store.upload_dir(&key);
    let tmp = dir.join(format!("{num}.tmp{}", random_hex(6)));
    let fin = dir.join(num.to_string());
    let body = ctx.take_body().unwrap_or_default();
    // The body is gathered in buffers of up to RECV_BUF and each buffer is
    // written with one blocking call (std::fs), so a small part costs one
    // hop to the blocking pool instead of one per file operation.
    let received = async {
        let mut stream = body.into_data_stream();
        let mut crc = Crc64::new();
        let mut n = 0u64;
        let mut buf: Vec<u8> = Vec::new();
        let mut file: Option<std::fs::File> = None;
        let mut done = false;
        while !done {
            match stream.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| {
                        ServerError::cos(400, "IncompleteBody", format!("reading the body: {e}"))
                    })?;
                    crc.update(&chunk);
                    n += chunk.len() as u64;
                    if buf.is_empty() && chunk.len() >= RECV_BUF {
                        buf = chunk.to_vec();
                    } else {
                        buf.extend_from_slice(&chunk);
                    }
                    if buf.len() < RECV_BUF {
                        continue;
                    }
                }
                None => done = true,
            }
            let data = std::mem::take(&mut buf);
            let (d, t, f) = (dir.clone(), tmp.clone(), file.take());
            // With the last buffer: rename into place and record the part.
            let last = done.then(|| (fin.clone(), key.clone(), n, etag_of(crc.value(), n)));
            let store = app.store.clone();
            file = tokio::task::spawn_blocking(move || -> SResult<Option<std::fs::File>> {
                use std::io::Write;
                let mut f = match f {
                    Some(f) => f,
                    None => {
                        std::fs::create_dir_all(&d)?;
                        std::fs::File::create(&t)?
                    }
                };
                f.write_all(&data)?;
                let Some((fin, key, n, etag)) = last else {
                    return Ok(Some(f));
                };
                drop(f);
                std::fs::rename(&t, &fin)?;
                store.tx(|c| {
                    c.execute(
                        "INSERT OR REPLACE INTO parts(key,num,size,etag,mtime) VALUES(?1,?2,?3,?4,?5)",
                        params![key, num as i64, n as i64, etag, now_iso()],
                    )?;
                    Ok(None)
                })
            })
            .await
            .map_err(std::io::Error::other)??;
        }
        Ok::<_, ServerError>((n, crc.value()))
    }
    .await;
    let (n, crc) = match received {
        Ok(x) => x,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into_cos());
        }
    };
    let etag = etag_of(crc, n);
    Stats::add(&app.stats.part_bytes, n);
    if task.multipart {
        let app2 = app.clone();
        let (k, e) = (task.key.clone(), etag.clone());
        // Not awaited: assembly runs behind the reply.
        tokio::task::spawn_blocking(move || app2.assemblies.part_stored(&app2.store, &k, num, &e));
    }
    let mut r = empty(StatusCode::OK);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("x-cos-hash-crc64ecma", HeaderValue::from(crc));
    Ok(r)
}
