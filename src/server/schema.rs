//! The SQLite schema of [`super::store`] and its migrations.
//!
//! `nodes.meta` is the custom metadata of a file version or directory (a
//! JSON object, NULL when there is none); `nodes.link` the node id a symlink
//! points at (NULL for files and directories); `uploads.meta` the metadata
//! sent at upload begin, given to the version at confirm; `lctime` the
//! client's `localCreationTime` (nodes and upload tasks).

use rusqlite::Connection;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spaces(id TEXT PRIMARY KEY, ctime TEXT NOT NULL, mtime TEXT NOT NULL, rev INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS nodes(id INTEGER PRIMARY KEY AUTOINCREMENT, space TEXT NOT NULL, parent INTEGER NOT NULL,
  name TEXT NOT NULL, is_dir INTEGER NOT NULL, size INTEGER NOT NULL DEFAULT 0, blob TEXT, crc64 TEXT, bhash TEXT,
  fhash TEXT, ctype TEXT, ctime TEXT NOT NULL, mtime TEXT NOT NULL, lmtime TEXT, rev INTEGER NOT NULL DEFAULT 0,
  meta TEXT, link INTEGER, lctime TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS nodes_pn ON nodes(space, parent, name);
CREATE INDEX IF NOT EXISTS nodes_parent ON nodes(parent);
CREATE INDEX IF NOT EXISTS nodes_order ON nodes(space, parent, is_dir DESC, name);
CREATE INDEX IF NOT EXISTS nodes_bh ON nodes(size, bhash);
CREATE INDEX IF NOT EXISTS nodes_fh ON nodes(size, fhash);
CREATE INDEX IF NOT EXISTS nodes_blob ON nodes(blob);
CREATE TABLE IF NOT EXISTS tokens(token TEXT PRIMARY KEY, grants TEXT NOT NULL, period INTEGER NOT NULL,
  expires INTEGER NOT NULL, user_id TEXT, spaces TEXT, extend INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS uploads(key TEXT PRIMARY KEY, space TEXT NOT NULL, path TEXT NOT NULL,
  multipart INTEGER NOT NULL, upload_id TEXT, strategy TEXT NOT NULL, force INTEGER NOT NULL, auth TEXT NOT NULL,
  sectoken TEXT NOT NULL, expiration INTEGER NOT NULL, ctime TEXT NOT NULL, created INTEGER NOT NULL,
  confirmed INTEGER NOT NULL DEFAULT 0, final_path TEXT, lmtime TEXT, psize INTEGER, size INTEGER, meta TEXT, lctime TEXT);
CREATE TABLE IF NOT EXISTS parts(key TEXT NOT NULL, num INTEGER NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
  mtime TEXT NOT NULL, off INTEGER, file TEXT, dbblob TEXT, PRIMARY KEY(key, num));
CREATE TABLE IF NOT EXISTS blobdata(id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS recycled(id INTEGER PRIMARY KEY AUTOINCREMENT, space TEXT NOT NULL, node INTEGER NOT NULL,
  orig TEXT NOT NULL, name TEXT NOT NULL, is_dir INTEGER NOT NULL, size INTEGER NOT NULL, ctime TEXT, mtime TEXT,
  rtime TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS earlier_creds(key TEXT NOT NULL, auth TEXT NOT NULL, sectoken TEXT NOT NULL,
  expiration INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS earlier_creds_key ON earlier_creds(key);
";

/// Creates missing tables and adds missing columns.
pub fn create(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(SCHEMA)?;
    migrate(c)
}

/// Columns added since the first schema (`CREATE TABLE IF NOT EXISTS`
/// leaves existing tables alone).
pub fn migrate(c: &Connection) -> rusqlite::Result<()> {
    let cols = |t: &str| -> rusqlite::Result<Vec<String>> {
        let mut s = c.prepare(&format!("PRAGMA table_info({t})"))?;
        let v = s
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v)
    };
    for (t, col, ty) in [
        ("parts", "off", "INTEGER"),
        ("parts", "file", "TEXT"),
        ("parts", "dbblob", "TEXT"),
        ("uploads", "psize", "INTEGER"),
        ("uploads", "size", "INTEGER"),
        ("uploads", "meta", "TEXT"),
        ("nodes", "meta", "TEXT"),
        ("nodes", "link", "INTEGER"),
        ("nodes", "lctime", "TEXT"),
        ("uploads", "lctime", "TEXT"),
        ("uploads", "user", "TEXT"),
    ] {
        if !cols(t)?.iter().any(|c| c == col) {
            c.execute_batch(&format!("ALTER TABLE {t} ADD COLUMN {col} {ty}"))?;
        }
    }
    // The links pointing at a node (few: a partial index).
    c.execute_batch("CREATE INDEX IF NOT EXISTS nodes_link ON nodes(link) WHERE link IS NOT NULL")?;
    Ok(())
}
