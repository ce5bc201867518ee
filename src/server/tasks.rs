//! Upload tasks as stored: the record, its parts, ticket credentials, and
//! expiry (tasks outlive tickets, but not forever).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};

use super::assemble::{self, TaskShape};
use super::error::SResult;
use super::store::{now_ms, random_hex, Store};
use super::App;
use crate::smh::time;
use crate::smh::types::{ConflictStrategy, PartInfo, UploadTicket};

/// Smallest non-last part of a multipart upload.
pub const MIN_PART: u64 = 1024 * 1024;
pub const MAX_PART_NUMBER: u32 = 10_000;

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
    /// `x-smh-meta-*` of the begin: the new version's metadata.
    pub meta: Option<crate::smh::types::MetaData>,
    /// `localCreationTime` of the begin.
    pub lctime: Option<String>,
    /// Part size of the task blob, once a part was stored in it.
    pub psize: Option<u64>,
    /// Total size announced at begin.
    pub total: Option<u64>,
    /// Who began the upload: the file it confirms is their change.
    pub user: Option<String>,
}

impl Task {
    pub fn shape(&self) -> TaskShape {
        TaskShape {
            multipart: self.multipart,
            psize: self.psize,
            total: self.total,
        }
    }
}

pub fn load_task(c: &Connection, key: &str) -> SResult<Option<Task>> {
    Ok(c
        .prepare_cached(
            "SELECT key,space,path,multipart,upload_id,strategy,force,auth,sectoken,expiration,ctime,confirmed,final_path,lmtime,psize,size,meta,lctime,user
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
                    meta: super::meta::from_db(r.get(16)?),
                    lctime: r.get(17)?,
                    psize: r.get::<_, Option<i64>>(14)?.map(|v| v as u64),
                    total: r.get::<_, Option<i64>>(15)?.map(|v| v as u64),
                    user: r.get(18)?,
                })
            },
        )
        .optional()?)
}

pub fn load_parts(c: &Connection, key: &str) -> SResult<Vec<PartInfo>> {
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

pub fn new_credentials(ttl: u64) -> (String, String, i64) {
    let now = chrono::Utc::now().timestamp();
    let end = now + ttl as i64;
    let auth = format!(
        "q-sign-algorithm=sha1&q-ak=AKIDsmhlocal{}&q-sign-time={now};{end}&q-key-time={now};{end}&q-header-list=&q-url-param-list=&q-signature={}",
        random_hex(8),
        random_hex(20)
    );
    (auth, random_hex(32), now_ms() + ttl as i64 * 1000)
}

pub fn ticket(t: &Task, host: &str, full: bool) -> UploadTicket {
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

/// When the credentials `auth` + `sectoken` of task `key` expire (Unix ms):
/// the current ones, or ones a renew replaced (they stay valid until their
/// own expiry, like temporary cloud credentials); `None` if neither.
pub fn credentials_expiry(
    c: &Connection,
    task: &Task,
    auth: &str,
    sectoken: &str,
) -> SResult<Option<i64>> {
    if auth == task.auth && sectoken == task.sectoken {
        return Ok(Some(task.expiration));
    }
    Ok(c.prepare_cached(
        "SELECT MAX(expiration) FROM earlier_creds WHERE key=?1 AND auth=?2 AND sectoken=?3",
    )?
    .query_row(rusqlite::params![task.key, auth, sectoken], |r| {
        r.get::<_, Option<i64>>(0)
    })?)
}

/// Replaces the credentials of `t` with new ones valid for `ttl` seconds;
/// the old ones stay valid until their own expiry.
pub fn renew_credentials(c: &Connection, t: &mut Task, ttl: u64) -> SResult<()> {
    c.execute(
        "INSERT INTO earlier_creds(key, auth, sectoken, expiration) VALUES(?1, ?2, ?3, ?4)",
        rusqlite::params![t.key, t.auth, t.sectoken, t.expiration],
    )?;
    let (a, s, e) = new_credentials(ttl);
    t.auth = a;
    t.sectoken = s;
    t.expiration = e;
    c.execute(
        "UPDATE uploads SET auth=?2, sectoken=?3, expiration=?4 WHERE key=?1",
        rusqlite::params![t.key, t.auth, t.sectoken, t.expiration],
    )?;
    Ok(())
}

/// Forgets the replaced credentials of a task that is done.
pub fn drop_earlier_credentials(c: &Connection, key: &str) -> SResult<()> {
    c.prepare_cached("DELETE FROM earlier_creds WHERE key=?1")?
        .execute([key])?;
    Ok(())
}

/// Upload tasks live this long (tickets expire much sooner).
pub const TASK_LIFETIME_MS: i64 = 24 * 3600 * 1000;

/// Tasks begun before this (Unix ms) have expired.
pub fn expiry_cutoff() -> i64 {
    now_ms() - TASK_LIFETIME_MS
}

/// Deletes the rows of tasks begun before `cutoff` (see [`expiry_cutoff`]):
/// their small parts, parts and tasks. Their files are the caller's to remove.
pub fn delete_expired(c: &Connection, cutoff: i64) -> SResult<()> {
    c.execute(
        "DELETE FROM blobdata WHERE id IN (SELECT dbblob FROM parts WHERE dbblob IS NOT NULL
         AND key IN (SELECT key FROM uploads WHERE created < ?1))",
        [cutoff],
    )?;
    c.execute(
        "DELETE FROM parts WHERE key IN (SELECT key FROM uploads WHERE created < ?1)",
        [cutoff],
    )?;
    c.execute(
        "DELETE FROM earlier_creds WHERE key IN (SELECT key FROM uploads WHERE created < ?1)",
        [cutoff],
    )?;
    c.execute("DELETE FROM uploads WHERE created < ?1", [cutoff])?;
    Ok(())
}

/// Drops upload tasks older than [`TASK_LIFETIME_MS`] (and their parts),
/// every ten minutes.
pub async fn expire_tasks(app: Arc<App>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let app2 = app.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let Ok(tasks) = app2.store.tx(|c| {
                let cutoff = expiry_cutoff();
                let mut stmt = c.prepare("SELECT key FROM uploads WHERE created < ?1")?;
                let keys = stmt
                    .query_map([cutoff], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                drop(stmt);
                let mut tasks = Vec::new();
                for k in keys {
                    let parts = assemble::load_part_recs(c, &k)?;
                    tasks.push((k, parts));
                }
                delete_expired(c, cutoff)?;
                Ok(tasks)
            }) else {
                return;
            };
            for (k, parts) in tasks {
                app2.tasks.remove(&k);
                assemble::remove_task_files(&app2.store, &k, &parts);
            }
        })
        .await;
    }
}

/// Removes upload files no live task uses: task blobs and fallback parts of
/// gone tasks (`{key}.blob`, `{key}.{n}.{random}`), unreferenced fallback
/// parts, and part directories of the previous layout.
pub fn clean_upload_dirs(store: &Store) {
    let Ok((keys, files)) = store.tx(|c| {
        let mut stmt = c.prepare("SELECT key FROM uploads WHERE confirmed=0")?;
        let keys = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<HashSet<_>, _>>()?;
        let mut stmt = c.prepare("SELECT file FROM parts WHERE file IS NOT NULL")?;
        let files = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<HashSet<_>, _>>()?;
        Ok((keys, files))
    }) else {
        return;
    };
    if let Ok(rd) = std::fs::read_dir(store.dir.join("uploads")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name.split('.').next().unwrap_or("");
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let live = keys.contains(key);
            if is_dir && !live {
                let _ = std::fs::remove_dir_all(e.path());
            } else if !is_dir && (!live || (!name.ends_with(".blob") && !files.contains(&name))) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
