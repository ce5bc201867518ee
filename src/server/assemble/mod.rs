//! Where upload bytes land, the background hasher, and the blob a confirm
//! produces — written once, never copied when the client behaves.
//!
//! Every task has one sparse *task blob* (`uploads/{key}.blob`): part n of a
//! multipart upload goes to offset `(n-1) x G`, G being the part size (the
//! length of the first part received; clients use uniform parts, the last
//! one may be shorter). A simple upload is part 1 at offset 0. A part that
//! does not fit (longer than G, unknown length, a re-upload of a part already
//! stored in the task blob, a second concurrent writer) goes to a *fallback
//! file* instead. Locations are recorded in SQLite (`parts.off` /
//! `parts.file`) so that status, resume and restarts keep working.
//!
//! At confirm, when parts 1..N-1 have length G and part N at most G, the
//! fallback parts are copied into their slots and the task blob, truncated to
//! the total, is renamed into `blobs/` (no copy). Otherwise a new blob is
//! assembled by copying. Hashes ([`ContentHasher`]) are computed in the
//! background over the contiguous completed prefix (read back from the page
//! cache) so that confirm only hashes what is left; simple uploads are hashed
//! while they are received.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use parking_lot::Mutex;
use rusqlite::Connection;

use super::error::{SResult, ServerError};
use super::store::{random_hex, Store};
use crate::smh::codes;

mod registry;
use crate::smh::hash::{ContentHasher, ContentHashes};
pub use registry::{clean_staging, remove_task_files, Tasks};

/// Read buffer of the hasher and of copies.
const BUF: usize = 1 << 20;

/// Simple uploads up to this size are stored in the database.
pub const DB_BLOB_MAX: u64 = 64 << 10;

/// Where the bytes of a stored part are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    /// At this offset of the task blob.
    Blob(u64),
    /// In this fallback file under `uploads/`.
    File(String),
    /// `uploads/{key}/{n}` (layout before task blobs).
    Legacy,
    /// A row of `blobdata` (small simple uploads), which becomes the file's
    /// blob as is.
    Db(String),
}

impl Loc {
    /// From the `parts.off` / `parts.file` / `parts.dbblob` columns.
    pub fn from_cols(off: Option<i64>, file: Option<String>, db: Option<String>) -> Loc {
        match (off, file, db) {
            (_, _, Some(d)) => Loc::Db(d),
            (_, Some(f), None) => Loc::File(f),
            (Some(o), None, None) => Loc::Blob(o as u64),
            (None, None, None) => Loc::Legacy,
        }
    }

    /// To the `parts.off` / `parts.file` / `parts.dbblob` columns.
    pub fn cols(&self) -> (Option<i64>, Option<&str>, Option<&str>) {
        match self {
            Loc::Blob(o) => (Some(*o as i64), None, None),
            Loc::File(f) => (None, Some(f), None),
            Loc::Legacy => (None, None, None),
            Loc::Db(d) => (None, None, Some(d)),
        }
    }
}

/// A stored part.
#[derive(Debug, Clone)]
pub struct PartRec {
    pub num: u32,
    pub size: u64,
    pub etag: String,
    pub loc: Loc,
}

/// Parts of a task as recorded in the database, by number.
pub fn load_part_recs(c: &Connection, key: &str) -> SResult<Vec<PartRec>> {
    let mut stmt = c.prepare_cached(
        "SELECT num,size,etag,off,file,dbblob FROM parts WHERE key=?1 ORDER BY num",
    )?;
    let rows = stmt
        .query_map([key], |r| {
            Ok(PartRec {
                num: r.get::<_, i64>(0)? as u32,
                size: r.get::<_, i64>(1)? as u64,
                etag: r.get(2)?,
                loc: Loc::from_cols(r.get(3)?, r.get(4)?, r.get(5)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// What the task knows when its files are first needed.
#[derive(Debug, Clone, Copy)]
pub struct TaskShape {
    pub multipart: bool,
    /// Part size of the task blob, once decided and recorded.
    pub psize: Option<u64>,
    /// Total size announced at begin (a hint for the part size).
    pub total: Option<u64>,
}

struct Inner {
    multipart: bool,
    psize: Option<u64>,
    /// Whether `psize` is in the database.
    psize_saved: bool,
    total: Option<u64>,
    /// Mirror of the recorded parts.
    parts: BTreeMap<u32, PartRec>,
    /// Parts being written into their task blob slot.
    writing: HashSet<u32>,
    /// A confirm owns the task blob: writers go to fallback files.
    sealed: bool,
    /// The task is gone (confirmed, aborted, expired).
    dead: bool,
    hashing: bool,
    /// Lowest part whose content changed after it may have been hashed.
    invalid: Option<u32>,
}

struct HashState {
    hasher: ContentHasher,
    /// (part, eTag) fed to `hasher`, in order.
    done: Vec<(u32, String)>,
    buf: Vec<u8>,
}

impl HashState {
    fn reset(&mut self) {
        self.hasher = ContentHasher::new();
        self.done.clear();
    }
}

/// Files of one upload task (in memory while the task lives).
pub struct TaskFiles {
    pub key: String,
    /// Held while writing a batch into the task blob: parallel parts would
    /// otherwise spin in the kernel on the file's lock (writes to one file
    /// are serialized anyway); here waiters sleep.
    pub write_lock: Mutex<()>,
    inner: Mutex<Inner>,
    hash: Mutex<HashState>,
}

/// Where a part being received is written.
pub struct Placement {
    pub loc: Loc,
    /// The part has the task blob slot (released by [`TaskFiles::recorded`]
    /// or [`TaskFiles::release`]).
    pub slot: bool,
    pub path: PathBuf,
}

/// A blob produced by confirm, not yet committed.
pub struct Finished {
    pub blob: String,
    pub hashes: ContentHashes,
    /// The blob was renamed from this file (undo renames it back).
    renamed_from: Option<PathBuf>,
    /// The blob is the part's `blobdata` row (nothing to undo).
    in_db: bool,
}

impl TaskFiles {
    fn new(key: &str, shape: TaskShape, parts: Vec<PartRec>) -> TaskFiles {
        TaskFiles {
            key: key.to_string(),
            write_lock: Mutex::new(()),
            inner: Mutex::new(Inner {
                multipart: shape.multipart,
                psize: shape.psize,
                psize_saved: shape.psize.is_some(),
                total: shape.total,
                parts: parts.into_iter().map(|p| (p.num, p)).collect(),
                writing: HashSet::new(),
                sealed: false,
                dead: false,
                hashing: false,
                invalid: None,
            }),
            hash: Mutex::new(HashState {
                hasher: ContentHasher::new(),
                done: Vec::new(),
                buf: Vec::new(),
            }),
        }
    }

    /// Chooses where part `n` of `len` bytes (None: unknown) goes.
    pub fn place(&self, store: &Store, n: u32, len: Option<u64>) -> Placement {
        let mut g = self.inner.lock();
        if !g.multipart && n == 1 && !g.sealed && len.is_some_and(|l| l <= DB_BLOB_MAX) {
            return Placement {
                loc: Loc::Db(random_hex(16)),
                slot: false,
                path: PathBuf::new(),
            };
        }
        let slot = (|| {
            let taken = g.writing.contains(&n)
                || g.parts
                    .get(&n)
                    .is_some_and(|p| matches!(p.loc, Loc::Blob(_)));
            if g.sealed || g.dead || taken {
                return None;
            }
            let len = len?;
            if !g.multipart {
                return (n == 1).then_some(0);
            }
            let psize = match g.psize {
                Some(p) => p,
                None => {
                    let p = part_size_guess(n, len, g.total)?;
                    g.psize = Some(p);
                    p
                }
            };
            if len > psize {
                return None;
            }
            (n as u64 - 1).checked_mul(psize)
        })();
        match slot {
            Some(off) => {
                g.writing.insert(n);
                Placement {
                    loc: Loc::Blob(off),
                    slot: true,
                    path: store.task_blob(&self.key),
                }
            }
            None => {
                let name = format!("{}.{n}.{}", self.key, random_hex(6));
                Placement {
                    path: store.part_file(&name),
                    loc: Loc::File(name),
                    slot: false,
                }
            }
        }
    }

    /// Gives up the slot of a part whose upload failed.
    pub fn release(&self, n: u32, p: &Placement) {
        if p.slot {
            self.inner.lock().writing.remove(&n);
        }
    }

    /// Part size to record with a part stored in its slot (once).
    pub fn psize_to_save(&self) -> Option<u64> {
        let g = self.inner.lock();
        (g.multipart && !g.psize_saved).then_some(g.psize).flatten()
    }

    /// Mirrors a part committed to the database. Returns whether the
    /// background hasher should be started.
    pub fn recorded(&self, rec: PartRec, slot: bool, psize_saved: bool) -> bool {
        let mut g = self.inner.lock();
        if slot {
            g.writing.remove(&rec.num);
        }
        if psize_saved {
            g.psize_saved = true;
        }
        let n = rec.num;
        let changed = g.parts.get(&n).is_some_and(|old| old.etag != rec.etag);
        if changed {
            g.invalid = Some(g.invalid.map_or(n, |i| i.min(n)));
        }
        g.parts.insert(n, rec);
        if g.multipart && !g.hashing && !g.sealed && !g.dead {
            g.hashing = true;
            return true;
        }
        false
    }

    /// Installs the hashes of part 1 computed while it was received (simple
    /// uploads), unless something was hashed already.
    pub fn hashed_inline(&self, etag: &str, hasher: ContentHasher) {
        if let Some(mut hs) = self.hash.try_lock() {
            if hs.done.len() <= 1 {
                hs.hasher = hasher;
                hs.done.push((1, etag.to_string()));
            }
        }
    }

    /// Background hasher: feeds the contiguous prefix of stored parts to the
    /// [`ContentHasher`] until a part is missing or a confirm takes over.
    pub fn run_hasher(&self, store: &Store) {
        let mut blob: Option<File> = None;
        loop {
            let mut hs = self.hash.lock();
            let next = {
                let mut g = self.inner.lock();
                if let Some(i) = g.invalid.take() {
                    if (i as usize) <= hs.done.len() {
                        hs.reset();
                    }
                }
                let want = hs.done.len() as u32 + 1;
                match g.parts.get(&want) {
                    Some(p) if !g.sealed && !g.dead => p.clone(),
                    _ => {
                        g.hashing = false;
                        return;
                    }
                }
            };
            let HashState { hasher, buf, .. } = &mut *hs;
            let fed = hash_part(store, &self.key, &next, &mut blob, buf, hasher);
            match fed {
                Ok(()) => hs.done.push((next.num, next.etag)),
                Err(_) => {
                    // Replaced under our feet; confirm starts over if needed.
                    hs.reset();
                    self.inner.lock().hashing = false;
                    return;
                }
            }
        }
    }

    /// Confirm: checks the crc64 the client sent and produces the blob,
    /// renaming the task blob when the layout allows. `parts` are the
    /// recorded parts (validated: 1..N, contiguous). On error the task is
    /// left as it was (the client may fix parts and confirm again).
    pub fn finish(
        &self,
        store: &Store,
        parts: &[PartRec],
        want_crc: Option<&str>,
    ) -> SResult<Finished> {
        let (psize, writers) = {
            let mut g = self.inner.lock();
            g.sealed = true;
            (g.psize, !g.writing.is_empty())
        };
        let r = self.finish_sealed(store, parts, want_crc, psize, writers);
        if let Err(e) = &r {
            if e.code() != codes::BAD_CRC64 {
                // A read or write failed, maybe in the middle of a part the
                // hasher was fed: start over next time.
                self.hash.lock().reset();
            }
            self.inner.lock().sealed = false;
        }
        r
    }

    fn finish_sealed(
        &self,
        store: &Store,
        parts: &[PartRec],
        want_crc: Option<&str>,
        psize: Option<u64>,
        writers: bool,
    ) -> SResult<Finished> {
        let total: u64 = parts.iter().map(|p| p.size).sum();
        // Waits for the background hasher to finish its current part.
        let mut hs = self.hash.lock();
        let prefix_ok = hs.done.len() <= parts.len()
            && hs
                .done
                .iter()
                .zip(parts)
                .all(|((n, e), p)| *n == p.num && *e == p.etag);
        if !prefix_ok {
            hs.reset();
        }
        let start = hs.done.len();
        let blob = random_hex(16);
        let out = store.blob_path(&blob);
        let HashState { hasher, buf, done } = &mut *hs;
        let check = |hasher: &ContentHasher| check_crc(hasher, want_crc);
        let mut blob_file: Option<File> = None;

        // One part in the database: its row becomes the blob.
        if let [p @ PartRec {
            loc: Loc::Db(id), ..
        }] = parts
        {
            if start == 0 {
                hash_part(store, &self.key, p, &mut blob_file, buf, hasher).map_err(missing)?;
                done.push((p.num, p.etag.clone()));
            }
            return Ok(Finished {
                blob: id.clone(),
                hashes: check(hasher)?,
                renamed_from: None,
                in_db: true,
            });
        }
        // One part: its file becomes the blob.
        let single = match parts {
            [p] if !writers => match &p.loc {
                Loc::Blob(0) => Some(store.task_blob(&self.key)),
                Loc::File(f) => Some(store.part_file(f)),
                Loc::Legacy => Some(store.upload_dir(&self.key).join(p.num.to_string())),
                Loc::Blob(_) | Loc::Db(_) => None,
            },
            _ => None,
        };
        if let Some(src) = single {
            let p = &parts[0];
            if start == 0 {
                hash_part(store, &self.key, p, &mut blob_file, buf, hasher).map_err(missing)?;
                done.push((p.num, p.etag.clone()));
            }
            let hashes = check(hasher)?;
            if matches!(p.loc, Loc::Blob(_)) {
                truncate_to(&src, p.size)?;
            }
            std::fs::rename(&src, &out).map_err(missing)?;
            return Ok(Finished {
                blob,
                hashes,
                renamed_from: Some(src),
                in_db: false,
            });
        }

        // Uniform parts: fill the slots of fallback parts, then rename.
        let uniform = !writers
            && parts.len() > 1
            && psize.is_some_and(|g| {
                let (last, rest) = parts.split_last().expect("parts is not empty");
                rest.iter().all(|p| p.size == g)
                    && last.size <= g
                    && parts.iter().all(|p| match p.loc {
                        Loc::Blob(o) => o == (p.num as u64 - 1) * g,
                        _ => true,
                    })
            });
        if !uniform {
            drop(blob_file);
            return self.copy_out(store, parts, hs, want_crc);
        }
        let g = psize.unwrap_or(0);
        let tb = store.task_blob(&self.key);
        let w = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&tb)?;
        for p in parts {
            let off = (p.num as u64 - 1) * g;
            if p.loc == Loc::Blob(off) {
                continue;
            }
            let mut pos = off;
            read_part(store, &self.key, p, &mut blob_file, buf, |d| {
                w.write_all_at(d, pos)?;
                pos += d.len() as u64;
                Ok(())
            })
            .map_err(missing)?;
        }
        drop(w);
        truncate_to(&tb, total)?;
        let mut rd = Some(File::open(&tb)?);
        for p in &parts[start..] {
            let slot = PartRec {
                loc: Loc::Blob((p.num as u64 - 1) * g),
                ..p.clone()
            };
            hash_part(store, &self.key, &slot, &mut rd, buf, hasher).map_err(missing)?;
            done.push((p.num, p.etag.clone()));
        }
        let hashes = check(hasher)?;
        std::fs::rename(&tb, &out)?;
        Ok(Finished {
            blob,
            hashes,
            renamed_from: Some(tb),
            in_db: false,
        })
    }

    /// Assembles a new blob by copying every part (the layout does not
    /// allow a rename).
    fn copy_out(
        &self,
        store: &Store,
        parts: &[PartRec],
        mut hs: parking_lot::MutexGuard<'_, HashState>,
        want_crc: Option<&str>,
    ) -> SResult<Finished> {
        let blob = random_hex(16);
        let out = store.blob_path(&blob);
        let tmp = store.dir.join("blobs").join(format!("{blob}.tmp"));
        let start = hs.done.len();
        let r = (|| -> SResult<ContentHashes> {
            let mut w = File::create(&tmp)?;
            let mut src: Option<File> = None;
            let HashState { hasher, buf, done } = &mut *hs;
            for (i, p) in parts.iter().enumerate() {
                let feed = i >= start;
                read_part(store, &self.key, p, &mut src, buf, |d| {
                    if feed {
                        hasher.update(d);
                    }
                    std::io::Write::write_all(&mut w, d)
                })
                .map_err(missing)?;
                if feed {
                    done.push((p.num, p.etag.clone()));
                }
            }
            check_crc(hasher, want_crc)
        })();
        match r {
            Ok(hashes) => {
                std::fs::rename(&tmp, &out)?;
                Ok(Finished {
                    blob,
                    hashes,
                    renamed_from: None,
                    in_db: false,
                })
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// The confirm's commit failed: puts the files back as they were.
    pub fn undo(&self, store: &Store, f: &Finished) {
        let out = store.blob_path(&f.blob);
        match &f.renamed_from {
            Some(src) => {
                let _ = std::fs::rename(&out, src);
            }
            None if f.in_db => {}
            None => {
                let _ = std::fs::remove_file(&out);
            }
        }
        self.inner.lock().sealed = false;
    }

    fn kill(&self) {
        let mut g = self.inner.lock();
        g.dead = true;
    }
}

/// Part size for the task blob from the first part received (None: park
/// this part in a fallback file and let the next part decide). Part 1 tells
/// it; part n > 1 of length L does when it cannot be a shorter last part,
/// judged by the total announced at begin.
fn part_size_guess(n: u32, len: u64, total: Option<u64>) -> Option<u64> {
    if len == 0 {
        return None;
    }
    let Some(total) = total.filter(|_| n > 1) else {
        return Some(len);
    };
    let n = n as u64;
    let full = n.checked_mul(len).is_some_and(|end| end <= total);
    let tail = total
        .checked_sub(len)
        .is_some_and(|rest| rest % (n - 1) == 0 && rest / (n - 1) > len);
    (full && !tail).then_some(len)
}

fn missing(e: std::io::Error) -> ServerError {
    ServerError::api(
        404,
        codes::UPLOAD_INCOMPLETE,
        format!("part data missing: {e}"),
    )
}

fn truncate_to(path: &std::path::Path, size: u64) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    if f.metadata()?.len() != size {
        f.set_len(size)?;
    }
    Ok(())
}

/// Reads the bytes of a stored part in chunks. `blob` caches the open task
/// blob across calls.
/// Feeds one whole part to `hasher`.
fn hash_part(
    store: &Store,
    key: &str,
    p: &PartRec,
    blob: &mut Option<File>,
    buf: &mut Vec<u8>,
    hasher: &mut ContentHasher,
) -> std::io::Result<()> {
    read_part(store, key, p, blob, buf, |d| {
        hasher.update(d);
        Ok(())
    })
}

fn read_part(
    store: &Store,
    key: &str,
    p: &PartRec,
    blob: &mut Option<File>,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    // No 1 MiB buffer to zero for a 4 KiB file.
    let need = (p.size as usize).clamp(1, BUF);
    if buf.len() < need {
        buf.resize(need, 0);
    }
    let own;
    let (file, mut off) = match &p.loc {
        Loc::Db(id) => {
            let data = store
                .small_blob(id)
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
            if data.len() as u64 != p.size {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("part {} is not as recorded", p.num),
                ));
            }
            return f(&data);
        }
        Loc::Blob(o) => {
            if blob.is_none() {
                *blob = Some(File::open(store.task_blob(key))?);
            }
            (blob.as_ref().expect("opened above"), *o)
        }
        Loc::File(name) => {
            own = File::open(store.part_file(name))?;
            (&own, 0)
        }
        Loc::Legacy => {
            own = File::open(store.upload_dir(key).join(p.num.to_string()))?;
            (&own, 0)
        }
    };
    let mut left = p.size;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = file.read_at(&mut buf[..want], off)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("part {} is shorter than recorded", p.num),
            ));
        }
        f(&buf[..n])?;
        off += n as u64;
        left -= n as u64;
    }
    Ok(())
}

/// The hashes of what was received, or `BadCrc64` when confirm named
/// another CRC-64 (the task stays as it is, so the client can fix it).
fn check_crc(hasher: &ContentHasher, want_crc: Option<&str>) -> SResult<ContentHashes> {
    let h = hasher.clone().finish();
    if let Some(want) = want_crc.filter(|c| !c.is_empty()) {
        if want.trim() != h.crc64_string() {
            return Err(ServerError::api(
                400,
                codes::BAD_CRC64,
                format!("crc64 mismatch: expected {want}, got {}", h.crc64_string()),
            ));
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::part_size_guess;

    const M: u64 = 1 << 20;

    #[test]
    fn part_size_from_the_first_part() {
        assert_eq!(part_size_guess(1, 8 * M, Some(100 * M)), Some(8 * M));
        assert_eq!(part_size_guess(1, 8 * M, None), Some(8 * M));
        assert_eq!(part_size_guess(3, 8 * M, None), Some(8 * M));
        // Part 3 of 8 MiB in 100 MiB + 1 byte: no whole number of larger
        // parts fits before it as a tail, so it is a full part.
        assert_eq!(part_size_guess(3, 8 * M, Some(100 * M + 1)), Some(8 * M));
        // In 100 MiB it could also be the tail after two 46 MiB parts.
        assert_eq!(part_size_guess(3, 8 * M, Some(100 * M)), None);
        // 9 MiB: part 2 of 1 MiB could be a full part or the tail.
        assert_eq!(part_size_guess(2, M, Some(9 * M)), None);
        assert_eq!(part_size_guess(2, 0, Some(9 * M)), None);
        // Past the announced total: not this layout.
        assert_eq!(part_size_guess(3, 8 * M, Some(9 * M)), None);
    }
}
