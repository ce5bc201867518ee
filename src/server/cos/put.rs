//! `PUT /cos/up/{key}`: object and part bodies of upload tasks, written
//! where [`assemble`] places them.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use rusqlite::{params, OptionalExtension};

use crate::server::assemble::{self, Loc, PartRec};
use crate::server::error::{SResult, ServerError};
use crate::server::http::{body_error, empty, Ctx};
use crate::server::stats::Stats;
use crate::server::store::now_ms;
use crate::server::tasks::{self, load_task, MAX_PART_NUMBER};
use crate::server::App;
use crate::smh::codes;
use crate::smh::hash::{ContentHasher, Crc64};
use crate::smh::time;
use md5::{Digest, Md5};

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

/// The ETag COS gives a part or object: its MD5, quoted.
fn etag_of(md5: Md5) -> String {
    format!("\"{}\"", hex::encode(md5.finalize()))
}

/// The ETag under `--part-etag crc`.
fn crc_etag(crc: u64, n: u64) -> String {
    format!("\"{crc:016x}-{n}\"")
}

/// Received bytes are handed to the blocking pool in batches of this size
/// (one hop for a small body, file open, write and record included).
const RECV_BUF: usize = 1 << 20;

/// Bodies up to this size are stored without a trip to the blocking pool.
const SMALL_INLINE: u64 = 64 << 10;
/// Batches from this size on have their MD5 computed on a thread of its own.
const MD5_BESIDE: usize = 256 << 10;

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
    /// MD5 of the bytes written (the ETag); None under `--part-etag crc`.
    md5: Option<Md5>,
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
        let (expiry, task, tf) = store.with(|c| {
            let task = load_task(c, &req.key)?
                .filter(|t| !t.confirmed)
                .ok_or_else(|| {
                    ServerError::cos(404, codes::NO_SUCH_UPLOAD, "the upload does not exist")
                })?;
            let expiry = tasks::credentials_expiry(c, &task, &req.auth, &req.sectoken)?;
            let tf = app.tasks.get(c, &req.key, task.shape())?;
            Ok((expiry, task, tf))
        })?;
        let Some(expiry) = expiry else {
            return Err(ServerError::cos(
                403,
                codes::ACCESS_DENIED,
                "the signature or security token is not valid for this upload",
            ));
        };
        if now_ms() > expiry {
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
            md5: (app.args.part_etag == crate::server::PartEtag::Md5).then(Md5::new),
            recorded: false,
        })
    }

    fn write(&mut self, data: &[axum::body::Bytes]) -> SResult<()> {
        let len: usize = data.iter().map(|d| d.len()).sum();
        let Some(mut md5) = self.md5.take() else {
            return self.write_data(data);
        };
        if len < MD5_BESIDE {
            for d in data {
                md5.update(d);
            }
            self.md5 = Some(md5);
            return self.write_data(data);
        }
        // MD5 (the ETag) is the slowest hash here (~1.7 ms a MiB) and needs
        // nothing else, so it runs beside the write and the other hashes
        // rather than after them.
        let res = std::thread::scope(|s| {
            let h = s.spawn(|| {
                for d in data {
                    md5.update(d);
                }
            });
            let res = self.write_data(data);
            let _ = h.join();
            res
        });
        self.md5 = Some(md5);
        res
    }

    fn write_data(&mut self, data: &[axum::body::Bytes]) -> SResult<()> {
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

    /// Records the complete part (the task must still be open); returns
    /// its ETag.
    fn commit(mut self, app: &App, crc: u64) -> SResult<String> {
        let etag = match self.md5.take() {
            Some(md5) => etag_of(md5),
            None => crc_etag(crc, self.written),
        };
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
            etag: etag.clone(),
            loc: self.place.loc.clone(),
        };
        if self.tf.recorded(rec, slot, psize.is_some()) && self.multipart {
            let (tf, store) = (self.tf.clone(), app.store.clone());
            // Not awaited: hashing runs behind the reply.
            tokio::task::spawn_blocking(move || tf.run_hasher(&store));
        }
        Ok(etag)
    }
}

/// Where a part is after one batch of its body.
enum Received {
    More(Box<PartWriter>),
    /// Recorded, with its ETag.
    Recorded(String),
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
    let mut etag = String::new();
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
                    return Err(body_error(&e, codes::INCOMPLETE_BODY).into_cos());
                }
                None => {
                    done = true;
                    break;
                }
            }
        }
        let (app2, req2, w) = (app.clone(), req.clone(), writer.take());
        // The whole body's CRC-64, for a crc ETag (known once it is all here).
        let crc_done = done.then(|| crc.value());
        let step = move || -> SResult<Received> {
            let mut w = match w {
                Some(w) => w,
                None => PartWriter::open(&app2, &req2)?,
            };
            w.write(&batch)?;
            if done {
                w.commit(&app2, crc_done.unwrap_or_default())
                    .map(Received::Recorded)
            } else {
                Ok(Received::More(Box::new(w)))
            }
        };
        // A small body is stored right here (open, write, record: tens of
        // microseconds), larger ones on the blocking pool.
        let small = done && n <= SMALL_INLINE && !app.store.busy();
        let received = if small {
            step()
        } else {
            tokio::task::spawn_blocking(step)
                .await
                .map_err(ServerError::from)
                .and_then(|r| r)
        }
        .map_err(ServerError::into_cos)?;
        match received {
            Received::More(w) => writer = Some(*w),
            Received::Recorded(e) => etag = e,
        }
    }
    let crc = crc.value();
    Stats::add(&app.stats.part_bytes, n);
    let mut r = empty(StatusCode::OK);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("x-cos-hash-crc64ecma", HeaderValue::from(crc));
    Ok(r)
}
