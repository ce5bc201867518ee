//! Metadata in SQLite (WAL) and file bodies as blob files under the data dir.
//!
//! Layout: `DATA/smh.db`, `DATA/blobs/<id>` (immutable file bodies, shared by
//! copies and instant uploads; bodies of small simple uploads are rows of
//! `blobdata` instead: a file each would cost more to create than to write),
//! `DATA/uploads/<confirmKey>.blob` and `.<n>.<random>` (received parts of
//! upload tasks, see [`super::assemble`]). The tree is a `nodes` table keyed by
//! `(space, parent, name)`; the root of a space is the virtual node 0; items
//! in the recycle bin hang under the negative parent `-recycledItemId`.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::changes::{self, Change};
use super::error::{SResult, ServerError};
use super::meta;
use crate::smh::codes;
use crate::smh::time;
use crate::smh::types::MetaData;

pub const ROOT: i64 = 0;

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

/// One file or directory.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: i64,
    pub parent: i64,
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
    pub blob: Option<String>,
    pub crc64: Option<String>,
    pub bhash: Option<String>,
    pub fhash: Option<String>,
    pub ctype: Option<String>,
    pub ctime: String,
    pub mtime: String,
    pub lmtime: Option<String>,
    /// `localCreationTime` (the client's birth time of the file).
    pub lctime: Option<String>,
    pub rev: i64,
    /// Custom metadata (`x-smh-meta-*`), never an empty map.
    pub meta: Option<MetaData>,
    /// Symlinks: the node id of the target (see [`super::links`]).
    pub link: Option<i64>,
}

impl Node {
    /// eTag of a file (content) or directory (children version).
    pub fn etag(&self) -> String {
        if self.is_dir {
            format!("\"{:x}-{:x}\"", self.id, self.rev)
        } else {
            file_etag(self.blob.as_deref().unwrap_or(""))
        }
    }

    /// The `inode` clients see (stable for the node's life: moves and
    /// overwrites keep it).
    pub fn inode(&self) -> String {
        inode_of(self.id)
    }
}

/// eTag of a file: its content (blob) id.
pub fn file_etag(blob: &str) -> String {
    let tag = blob.get(..32).unwrap_or(blob);
    let mut s = String::with_capacity(tag.len() + 2);
    s.push('"');
    s.push_str(tag);
    s.push('"');
    s
}

/// `inode` of a node id (the root is 0): 32 lowercase hex digits, the id's
/// two's complement in the last 16. Not `format!("{id:032x}")`: every
/// listing item and feed entry carries one or two, and padded formatting
/// costs ten times as much.
pub fn inode_of(id: i64) -> String {
    let mut digits = [b'0'; 32];
    // 8 bytes always fill 16 digits, so this cannot fail.
    let _ = hex::encode_to_slice(id.to_be_bytes(), &mut digits[16..]);
    digits.iter().map(|&d| d as char).collect()
}

/// The content of a stored file.
#[derive(Debug, Clone)]
pub struct FileData {
    pub size: u64,
    pub blob: String,
    pub crc64: String,
    pub bhash: String,
    pub fhash: String,
    pub ctype: String,
    pub lmtime: Option<String>,
    pub lctime: Option<String>,
    /// Custom metadata of this version (None: none).
    pub meta: Option<MetaData>,
}

/// Node columns, as a literal so that statements are `concat!`ed constants
/// (prepared once, then served from the statement cache).
macro_rules! node_cols {
    () => {
        "id,parent,name,is_dir,size,blob,crc64,bhash,fhash,ctype,ctime,mtime,lmtime,rev,meta,link,lctime"
    };
}

const NODE_COLS: &str = node_cols!();

fn row_node(r: &Row) -> rusqlite::Result<Node> {
    Ok(Node {
        id: r.get(0)?,
        parent: r.get(1)?,
        name: r.get(2)?,
        is_dir: r.get::<_, i64>(3)? != 0,
        size: r.get::<_, i64>(4)? as u64,
        blob: r.get(5)?,
        crc64: r.get(6)?,
        bhash: r.get(7)?,
        fhash: r.get(8)?,
        ctype: r.get(9)?,
        ctime: r.get(10)?,
        mtime: r.get(11)?,
        lmtime: r.get(12)?,
        rev: r.get(13)?,
        meta: meta::from_db(r.get(14)?),
        link: r.get(15)?,
        lctime: r.get(16)?,
    })
}

pub struct Store {
    conn: Mutex<Connection>,
    /// Entries the change feed keeps (None: `--no-delta`); the store's
    /// writes record their changes while it is set.
    feed: Option<u64>,
    pub dir: PathBuf,
}

impl Store {
    /// The store in `dir`, recording changes in a feed of `feed` entries.
    pub fn open(dir: &Path, feed: Option<u64>) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir.join("blobs"))?;
        std::fs::create_dir_all(dir.join("uploads"))?;
        let conn = Connection::open(dir.join("smh.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // One connection, one process: no file locks and no shared-memory
        // index to maintain on every transaction (a second server on the
        // same data directory gets "database is locked").
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        // Bursts of small uploads rewrite the same few pages: checkpoint
        // every ~40 MB of WAL instead of 4 MB (fewer page copies), and keep
        // 32 MiB of pages cached instead of 2.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        conn.pragma_update(None, "cache_size", -32_768)?;
        // Statement journals (of the few statements that write several
        // rows) in memory, not spilled to a temp file; they live only
        // within a transaction, so durability is unchanged.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        super::schema::create(&conn)?;
        conn.set_prepared_statement_cache_capacity(128);
        Ok(Store {
            conn: Mutex::new(conn),
            feed,
            dir: dir.to_path_buf(),
        })
    }

    /// Runs `f` in a transaction (committed if it returns Ok). BEGIN and
    /// COMMIT are cached statements: `execute_batch` would parse them on
    /// every request.
    pub fn tx<T>(&self, f: impl FnOnce(&Connection) -> SResult<T>) -> SResult<T> {
        let c = self.conn.lock();
        if !c.is_autocommit() {
            // A previous closure panicked inside its transaction.
            c.prepare_cached("ROLLBACK")?.execute([])?;
        }
        c.prepare_cached("BEGIN")?.execute([])?;
        let out = super::changes::recording(self.feed, || f(&c)).and_then(|v| {
            c.prepare_cached("COMMIT")?.execute([])?;
            Ok(v)
        });
        if out.is_err() && !c.is_autocommit() {
            let _ = c.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
        }
        out
    }

    /// The body of a blob stored in the database (None: it is a file).
    pub fn small_blob(&self, id: &str) -> SResult<Option<Vec<u8>>> {
        let c = self.conn.lock();
        let data = c
            .prepare_cached("SELECT data FROM blobdata WHERE id=?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        Ok(data)
    }

    /// Whether a transaction is running (callers on the async runtime then
    /// go to the blocking pool instead of waiting for it).
    pub fn busy(&self) -> bool {
        self.conn.is_locked()
    }

    /// Runs `f` on the connection without a transaction (single statements).
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> SResult<T>) -> SResult<T> {
        let c = self.conn.lock();
        super::changes::recording(self.feed, || f(&c))
    }

    pub fn blob_path(&self, blob: &str) -> PathBuf {
        self.dir.join("blobs").join(blob)
    }

    /// Per-task part directory of the previous layout (still read, so that
    /// tasks begun before an upgrade complete).
    pub fn upload_dir(&self, key: &str) -> PathBuf {
        self.dir.join("uploads").join(key)
    }

    /// The task blob of an upload: parts at `(n-1) x part size`, renamed
    /// into `blobs/` at confirm.
    pub fn task_blob(&self, key: &str) -> PathBuf {
        self.dir.join("uploads").join(format!("{key}.blob"))
    }

    /// A part that does not fit the task blob layout (`{key}.{n}.{random}`).
    pub fn part_file(&self, name: &str) -> PathBuf {
        self.dir.join("uploads").join(name)
    }

    /// Removes blob files no node references any more.
    pub fn remove_orphans(&self, blobs: Vec<String>) {
        if blobs.is_empty() {
            return;
        }
        let orphans: Vec<String> = {
            let c = self.conn.lock();
            blobs
                .into_iter()
                .filter(|b| {
                    c.prepare_cached("SELECT 1 FROM nodes WHERE blob=?1 LIMIT 1")
                        .and_then(|mut s| s.query_row([b], |_| Ok(())).optional())
                        .map(|r| r.is_none())
                        .unwrap_or(false)
                })
                // A small blob lives in the database: no file to remove.
                .filter(|b| {
                    c.prepare_cached("DELETE FROM blobdata WHERE id=?1")
                        .and_then(|mut s| s.execute([b]))
                        .map(|n| n == 0)
                        .unwrap_or(true)
                })
                .collect()
        };
        for b in orphans {
            let _ = std::fs::remove_file(self.blob_path(&b));
        }
    }
}

pub fn meta_get_or_init(c: &Connection, k: &str, init: impl FnOnce() -> String) -> SResult<String> {
    if let Some(v) = c
        .query_row("SELECT v FROM meta WHERE k=?1", [k], |r| r.get(0))
        .optional()?
    {
        return Ok(v);
    }
    let v = init();
    c.execute("INSERT INTO meta(k,v) VALUES(?1,?2)", params![k, v])?;
    Ok(v)
}

pub fn ensure_space(c: &Connection, space: &str) -> SResult<()> {
    let now = time::now();
    c.prepare_cached("INSERT OR IGNORE INTO spaces(id,ctime,mtime,rev) VALUES(?1,?2,?2,0)")?
        .execute(params![space, now])?;
    Ok(())
}

pub fn root(c: &Connection, space: &str) -> SResult<Node> {
    let r = c
        .prepare_cached("SELECT ctime,mtime,rev FROM spaces WHERE id=?1")?
        .query_row([space], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })
        .optional()?;
    let (ctime, mtime, rev) =
        r.ok_or_else(|| ServerError::api(404, codes::SPACE_NOT_FOUND, "space not found"))?;
    Ok(Node {
        id: ROOT,
        parent: ROOT,
        name: String::new(),
        is_dir: true,
        size: 0,
        blob: None,
        crc64: None,
        bhash: None,
        fhash: None,
        ctype: None,
        ctime,
        mtime,
        lmtime: None,
        lctime: None,
        rev,
        meta: None,
        link: None,
    })
}

pub fn child(c: &Connection, space: &str, parent: i64, name: &str) -> SResult<Option<Node>> {
    Ok(c.prepare_cached(concat!(
        "SELECT ",
        node_cols!(),
        " FROM nodes WHERE space=?1 AND parent=?2 AND name=?3"
    ))?
    .query_row(params![space, parent, name], row_node)
    .optional()?)
}

pub fn node(c: &Connection, id: i64) -> SResult<Option<Node>> {
    Ok(
        c.prepare_cached(concat!("SELECT ", node_cols!(), " FROM nodes WHERE id=?1"))?
            .query_row([id], row_node)
            .optional()?,
    )
}

/// The node at `segs`, or None (also when a middle segment is a file).
pub fn resolve(c: &Connection, space: &str, segs: &[String]) -> SResult<Option<Node>> {
    let mut cur = root(c, space)?;
    for s in segs {
        if !cur.is_dir {
            return Ok(None);
        }
        match child(c, space, cur.id, s)? {
            Some(n) => cur = n,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// The last name of `segs`, the path above it and the directory there, as
/// the API reports them missing (an empty path, or no such directory).
pub fn name_in_parent<'a>(
    c: &Connection,
    space: &str,
    segs: &'a [String],
) -> SResult<(&'a String, &'a [String], Node)> {
    let (name, parents) = segs
        .split_last()
        .ok_or_else(|| ServerError::api(400, codes::EMPTY_FILE_NAME, "empty file name"))?;
    let parent = resolve_dir(c, space, parents)?.ok_or_else(|| {
        ServerError::api(
            404,
            codes::DIRECTORY_NOT_FOUND,
            "the parent directory does not exist",
        )
    })?;
    Ok((name, parents, parent))
}

/// The directory at `segs` (None if missing or not a directory).
pub fn resolve_dir(c: &Connection, space: &str, segs: &[String]) -> SResult<Option<Node>> {
    Ok(resolve(c, space, segs)?.filter(|n| n.is_dir))
}

/// Path of a node from the root; None when it sits in the recycle bin.
pub fn path_of(c: &Connection, id: i64) -> SResult<Option<Vec<String>>> {
    let mut out = Vec::new();
    let mut cur = id;
    while cur != ROOT {
        if cur < 0 {
            return Ok(None);
        }
        let Some(n) = node(c, cur)? else {
            return Ok(None);
        };
        out.push(n.name);
        cur = n.parent;
    }
    out.reverse();
    Ok(Some(out))
}

/// Bumps the version (eTag) and modification time of a directory, and the
/// version of each one above it: a listing shows its child directories'
/// eTags and times, so its own eTag (`If-None-Match`) changes with them.
pub fn touch(c: &Connection, space: &str, dir: i64) -> SResult<()> {
    let now = time::now();
    let (mut cur, mut first) = (dir, true);
    while cur > ROOT {
        c.prepare_cached("UPDATE nodes SET rev=rev+1, mtime=IIF(?3, ?2, mtime) WHERE id=?1")?
            .execute(params![cur, now, first])?;
        let mut up = c.prepare_cached("SELECT parent FROM nodes WHERE id=?1")?;
        (cur, first) = (
            up.query_row([cur], |r| r.get(0)).optional()?.unwrap_or(-1),
            false,
        );
    }
    if cur == ROOT {
        c.prepare_cached("UPDATE spaces SET rev=rev+1, mtime=IIF(?3, ?2, mtime) WHERE id=?1")?
            .execute(params![space, now, first])?;
    }
    Ok(())
}

/// What a directory create body may set (§3.4).
#[derive(Debug, Clone, Default)]
pub struct DirAttrs {
    pub meta: Option<MetaData>,
    pub lmtime: Option<String>,
    pub lctime: Option<String>,
}

pub fn insert_dir(c: &Connection, space: &str, parent: i64, name: &str) -> SResult<i64> {
    insert_dir_with(c, space, parent, name, &DirAttrs::default())
}

/// A new directory with its attributes in the same row (one change-feed
/// `CREATE`, no `MODIFY` after it).
pub fn insert_dir_with(
    c: &Connection,
    space: &str,
    parent: i64,
    name: &str,
    a: &DirAttrs,
) -> SResult<i64> {
    let now = time::now();
    c.prepare_cached(
        "INSERT INTO nodes(space,parent,name,is_dir,ctime,mtime,meta,lmtime,lctime)
         VALUES(?1,?2,?3,1,?4,?4,?5,?6,?7)",
    )?
    .execute(params![
        space,
        parent,
        name,
        now,
        meta::to_db(a.meta.as_ref()),
        a.lmtime,
        a.lctime
    ])?;
    let id = c.last_insert_rowid();
    changes::record(c, id, Change::Create)?;
    touch(c, space, parent)?;
    Ok(id)
}

pub fn insert_file(
    c: &Connection,
    space: &str,
    parent: i64,
    name: &str,
    f: &FileData,
    ctime: Option<&str>,
) -> SResult<i64> {
    let now = time::now();
    c.prepare_cached(
        "INSERT INTO nodes(space,parent,name,is_dir,size,blob,crc64,bhash,fhash,ctype,ctime,mtime,lmtime,meta,lctime)
         VALUES(?1,?2,?3,0,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)",
    )?
    .execute(params![
            space,
            parent,
            name,
            f.size as i64,
            f.blob,
            f.crc64,
            f.bhash,
            f.fhash,
            f.ctype,
            ctime.unwrap_or(&now),
            now,
            f.lmtime,
            meta::to_db(f.meta.as_ref()),
            f.lctime
        ])?;
    let id = c.last_insert_rowid();
    changes::record(c, id, Change::Create)?;
    touch(c, space, parent)?;
    Ok(id)
}

/// New content for the file `id` (an overwrite: the node, its inode and
/// creation time stay; its `rev`, the delta's `versionId`, grows).
pub fn replace_content(
    c: &Connection,
    space: &str,
    id: i64,
    parent: i64,
    f: &FileData,
) -> SResult<()> {
    changes::modify(c, id, || {
        let sql = concat!(
            "UPDATE nodes SET size=?2,blob=?3,crc64=?4,bhash=?5,fhash=?6,ctype=?7,mtime=?8,lmtime=?9,",
            "meta=?10,link=NULL,lctime=?11,rev=rev+1 WHERE id=?1"
        );
        Ok(c.prepare_cached(sql)?.execute(params![
            id,
            f.size as i64,
            f.blob,
            f.crc64,
            f.bhash,
            f.fhash,
            f.ctype,
            time::now(),
            f.lmtime,
            meta::to_db(f.meta.as_ref()),
            f.lctime
        ])?)
    })?;
    touch(c, space, parent)
}

pub fn file_data(n: &Node) -> FileData {
    FileData {
        size: n.size,
        blob: n.blob.clone().unwrap_or_default(),
        crc64: n.crc64.clone().unwrap_or_default(),
        bhash: n.bhash.clone().unwrap_or_default(),
        fhash: n.fhash.clone().unwrap_or_default(),
        ctype: n
            .ctype
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into()),
        lmtime: n.lmtime.clone(),
        lctime: n.lctime.clone(),
        meta: n.meta.clone(),
    }
}

/// `name (k)` / `stem (k).ext` candidates for the rename strategy.
pub fn renamed(name: &str, k: u32, is_dir: bool) -> String {
    if !is_dir {
        if let Some(dot) = name.rfind('.') {
            if dot > 0 {
                return format!("{} ({k}){}", &name[..dot], &name[dot..]);
            }
        }
    }
    format!("{name} ({k})")
}

/// The first free `name (k)` in `parent`.
pub fn free_name(
    c: &Connection,
    space: &str,
    parent: i64,
    name: &str,
    is_dir: bool,
) -> SResult<String> {
    if child(c, space, parent, name)?.is_none() {
        return Ok(name.to_string());
    }
    for k in 1..10_000 {
        let cand = renamed(name, k, is_dir);
        if cand.len() > 255 {
            break;
        }
        if child(c, space, parent, &cand)?.is_none() {
            return Ok(cand);
        }
    }
    Err(ServerError::api(
        409,
        codes::RENAME_TOO_MANY_TIMES,
        "no free name found",
    ))
}

/// Node plus every descendant, parents before children.
pub fn subtree(c: &Connection, id: i64) -> SResult<Vec<Node>> {
    let mut stmt = c.prepare_cached(&format!(
        "WITH RECURSIVE t(id, depth) AS (SELECT ?1, 0 UNION ALL SELECT n.id, t.depth+1 FROM nodes n JOIN t ON n.parent=t.id)
         SELECT {} FROM nodes JOIN t ON nodes.id=t.id ORDER BY t.depth",
        NODE_COLS
            .split(',')
            .map(|c| format!("nodes.{c}"))
            .collect::<Vec<_>>()
            .join(",")
    ))?;
    let rows = stmt.query_map([id], row_node)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Deletes a node and its subtree; returns the blobs they used.
pub fn delete_tree(c: &Connection, id: i64) -> SResult<Vec<String>> {
    let nodes = subtree(c, id)?;
    let mut blobs = Vec::new();
    for n in nodes.iter().rev() {
        changes::record(c, n.id, Change::Gone)?;
        c.prepare_cached("DELETE FROM nodes WHERE id=?1")?
            .execute([n.id])?;
        if let Some(b) = &n.blob {
            blobs.push(b.clone());
        }
    }
    Ok(blobs)
}

/// Bytes used by the files of a space (recycle bin included).
pub fn usage(c: &Connection, space: &str) -> SResult<u64> {
    let s: i64 = c
        .prepare_cached("SELECT COALESCE(SUM(size),0) FROM nodes WHERE space=?1 AND is_dir=0")?
        .query_row([space], |r| r.get(0))?;
    Ok(s as u64)
}

/// Children counts: (files, dirs).
pub fn counts(c: &Connection, space: &str, parent: i64) -> SResult<(u64, u64)> {
    let (f, d): (i64, i64) = c
        .prepare_cached(
            "SELECT COALESCE(SUM(is_dir=0),0), COALESCE(SUM(is_dir=1),0) FROM nodes WHERE space=?1 AND parent=?2",
        )?
        .query_row(params![space, parent], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((f as u64, d as u64))
}

/// Listing order and filter.
pub struct ListSpec {
    /// SQL ORDER BY expression (whitelisted by the caller).
    pub order: String,
    /// `is_dir=1`, `is_dir=0` or empty.
    pub filter: &'static str,
    pub limit: u64,
    pub offset: u64,
}

pub fn list(c: &Connection, space: &str, parent: i64, spec: &ListSpec) -> SResult<Vec<Node>> {
    let filter = if spec.filter.is_empty() {
        String::new()
    } else {
        format!(" AND {}", spec.filter)
    };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {NODE_COLS} FROM nodes WHERE space=?1 AND parent=?2{filter} ORDER BY {} LIMIT ?3 OFFSET ?4",
        spec.order
    ))?;
    let rows = stmt.query_map(
        params![space, parent, spec.limit as i64, spec.offset as i64],
        row_node,
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// `mkdir -p`: creates missing parents; the last segment follows the
/// strategy (ask → 409, rename → `name (k)`) and gets `attrs`. Returns the
/// final path.
pub fn mkdirs(
    c: &Connection,
    space: &str,
    segs: &[String],
    rename_last: bool,
    attrs: &DirAttrs,
) -> SResult<(Vec<String>, i64)> {
    let mut cur = ROOT;
    let mut out = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        match child(c, space, cur, s)? {
            Some(n) if !last => {
                if !n.is_dir {
                    return Err(ServerError::conflict());
                }
                cur = n.id;
                out.push(s.clone());
            }
            Some(_) => {
                if !rename_last {
                    return Err(ServerError::conflict());
                }
                let name = free_name(c, space, cur, s, true)?;
                cur = insert_dir_with(c, space, cur, &name, attrs)?;
                out.push(name);
            }
            None if last => {
                cur = insert_dir_with(c, space, cur, s, attrs)?;
                out.push(s.clone());
            }
            None => {
                cur = insert_dir(c, space, cur, s)?;
                out.push(s.clone());
            }
        }
    }
    Ok((out, cur))
}

/// Parent directories for a dir move/copy destination: created when missing.
pub fn ensure_parents(c: &Connection, space: &str, segs: &[String]) -> SResult<i64> {
    let mut cur = ROOT;
    for s in segs {
        match child(c, space, cur, s)? {
            Some(n) if n.is_dir => cur = n.id,
            Some(_) => return Err(ServerError::conflict()),
            None => cur = insert_dir(c, space, cur, s)?,
        }
    }
    Ok(cur)
}

/// Instant-upload lookup: a stored file with this size and hash.
pub fn find_by_hash(c: &Connection, size: u64, full: bool, hash: &str) -> SResult<Option<Node>> {
    let sql = if full {
        concat!(
            "SELECT ",
            node_cols!(),
            " FROM nodes WHERE size=?1 AND fhash=?2 AND is_dir=0 LIMIT 1"
        )
    } else {
        concat!(
            "SELECT ",
            node_cols!(),
            " FROM nodes WHERE size=?1 AND bhash=?2 AND is_dir=0 LIMIT 1"
        )
    };
    Ok(c.prepare_cached(sql)?
        .query_row(params![size as i64, hash], row_node)
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_and_etags_are_written_as_before() {
        for id in [0, 1, 0xabc, i64::MAX, -1, -42] {
            assert_eq!(inode_of(id), format!("{id:032x}"));
        }
        let blob = "0123456789abcdef0123456789abcdef-tail";
        assert_eq!(file_etag(blob), format!("\"{}\"", &blob[..32]));
        assert_eq!(file_etag("short"), "\"short\"");
    }

    #[test]
    fn rename_candidates() {
        assert_eq!(renamed("a.txt", 1, false), "a (1).txt");
        assert_eq!(renamed("a.tar.gz", 2, false), "a.tar (2).gz");
        assert_eq!(renamed("noext", 1, false), "noext (1)");
        assert_eq!(renamed(".bashrc", 1, false), ".bashrc (1)");
        assert_eq!(renamed("dir.v2", 1, true), "dir.v2 (1)");
    }

    #[test]
    fn tree_operations() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), None).unwrap();
        s.tx(|c| {
            ensure_space(c, "-")?;
            let segs: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
            let (p, id) = mkdirs(c, "-", &segs, false, &DirAttrs::default())?;
            assert_eq!(p, segs);
            assert!(mkdirs(c, "-", &segs, false, &DirAttrs::default()).is_err());
            assert_eq!(
                mkdirs(c, "-", &segs, true, &DirAttrs::default())?.0,
                ["a", "b (1)"]
            );
            assert_eq!(path_of(c, id)?.unwrap(), segs);
            let a = resolve(c, "-", &segs[..1])?.unwrap();
            assert_eq!(counts(c, "-", a.id)?, (0, 2));
            let copy = super::super::tree::copy_tree(c, "-", a.id, ROOT, "a2")?;
            assert_eq!(subtree(c, copy)?.len(), 3);
            let rid = super::super::tree::recycle(c, "-", &a)?;
            assert!(rid > 0);
            assert!(resolve(c, "-", &segs)?.is_none());
            assert_eq!(path_of(c, id)?, None);
            delete_tree(c, copy)?;
            assert!(resolve(c, "-", &["a2".to_string()])?.is_none());
            Ok(())
        })
        .unwrap();
    }
}
