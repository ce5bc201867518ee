//! The change feed (`fs-delta`, smh-api.md §4.15).
//!
//! Every change of a node is recorded in the table `delta` by the store
//! function that makes it ([`changes`](super::changes)), in the same
//! transaction, whichever route (or batch item) called it. Entries are
//! numbered by one sequence for the whole server; the history keeps the
//! last `--delta-history` of them. A cursor is `{epoch}-{seq}`: the epoch
//! changes whenever the log may have missed changes (first start, a start
//! after `--no-delta`), which makes every older cursor unknown.
//!
//! Why no triggers (as up to this log's second layout): a trigger makes
//! every write of `nodes` a multi-row statement that may abort, so SQLite
//! keeps a statement journal for it, copying each page it touches, and the
//! trigger's calls (time, user) ran for every row; that was two thirds of
//! what the feed cost an upload. An entry is now one single-row statement.
//!
//! `seq` is the table's rowid without AUTOINCREMENT (its sequence table is
//! one more B-tree write per change), so a new entry is numbered after the
//! newest one kept. That is why the newest entry is never deleted: the
//! trimming keeps it, and a deleted space's newest entry stays as a
//! [placeholder](PLACEHOLDER) of no space.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::error::{SResult, ServerError};
use super::http::{authenticate, json_response, not_found_route, Ctx};
use super::store::{self, file_etag, inode_of};
use super::App;
use crate::smh::codes;
use crate::smh::types::{DeltaCursor, DeltaEntry, DeltaPage, EntryType};

/// Entries per `delta` reply without `limit`, and the most one may ask for.
const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

/// The log. Its `delta_space` (space, seq) index is retired: a page is
/// read along `seq` from a recent cursor, skipping other spaces' few
/// entries, so one more B-tree written with every change did not pay.
const TABLE: &str = "
CREATE TABLE IF NOT EXISTS delta(seq INTEGER PRIMARY KEY, space TEXT NOT NULL, event TEXT NOT NULL,
  time TEXT NOT NULL, node INTEGER NOT NULL, parent INTEGER NOT NULL, name TEXT NOT NULL, is_dir INTEGER NOT NULL,
  location INTEGER NOT NULL, size INTEGER, blob TEXT, crc64 TEXT, ctype TEXT, ctime TEXT, mtime TEXT, lmtime TEXT,
  from_parent INTEGER, from_name TEXT, link INTEGER, lctime TEXT, rev INTEGER, user TEXT);
DROP INDEX IF EXISTS delta_space;
";

/// The columns an entry is written with.
const COLS: &str = "space,event,time,node,parent,name,is_dir,location,size,blob,crc64,ctype,ctime,mtime,lmtime,rev,from_parent,from_name,link,lctime,user";

/// The triggers of the earlier layouts, dropped on start.
const TRIGGERS: [&str; 4] = ["delta_insert", "delta_update", "delta_delete", "delta_trim"];

/// The `meta` key present while the log records (a start with
/// `--no-delta` removes it, and the next start with the feed begins a
/// new epoch).
const RECORDING_KEY: &str = "delta_recording";

/// What a deleted space's newest entry becomes: it holds the sequence
/// (see the module doc) and belongs to no space, so no page shows it.
const PLACEHOLDER: &str =
    "space='',event='',name='',node=0,parent=0,size=NULL,blob=NULL,crc64=NULL,ctype=NULL,
  from_parent=NULL,from_name=NULL,link=NULL,user=NULL";

/// Creates the log table, or upgrades an earlier one: `history` entries
/// kept from now on, or no recording at all (`None`, `--no-delta`).
pub fn install(c: &Connection, history: Option<u64>) -> rusqlite::Result<()> {
    let trigger_on = c
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type='trigger' AND name='delta_insert'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    let recorded = c
        .query_row("SELECT 1 FROM meta WHERE k=?1", [RECORDING_KEY], |_| Ok(()))
        .optional()?
        .is_some();
    let was_on = trigger_on || recorded;
    for t in TRIGGERS {
        c.execute_batch(&format!("DROP TRIGGER IF EXISTS {t}"))?;
    }
    c.execute_batch(TABLE)?;
    // Columns added after the first logs were written.
    for (col, ty) in [
        ("link", "INTEGER"),
        ("lctime", "TEXT"),
        ("rev", "INTEGER"),
        ("user", "TEXT"),
    ] {
        let has = c
            .prepare("SELECT 1 FROM pragma_table_info('delta') WHERE name=?1")?
            .exists([col])?;
        if !has {
            c.execute_batch(&format!("ALTER TABLE delta ADD COLUMN {col} {ty}"))?;
        }
    }
    drop_autoincrement(c)?;
    if history.is_none() {
        c.execute("DELETE FROM meta WHERE k=?1", [RECORDING_KEY])?;
        return Ok(());
    }
    c.execute(
        "INSERT OR REPLACE INTO meta(k,v) VALUES(?1,'1')",
        [RECORDING_KEY],
    )?;
    if !was_on {
        // Changes made while nothing recorded them: no old cursor may
        // claim to have seen everything.
        c.execute(
            "INSERT OR REPLACE INTO meta(k,v) VALUES('delta_epoch',?1)",
            [store::random_hex(4)],
        )?;
    }
    Ok(())
}

/// Rewrites a log made with AUTOINCREMENT (before the module doc's rule)
/// as a plain rowid table, keeping its entries, and its sequence as a
/// placeholder where a deleted space had held the newest numbers, so
/// every cursor stays valid.
fn drop_autoincrement(c: &Connection) -> rusqlite::Result<()> {
    let sql: String = c.query_row(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='delta'",
        [],
        |r| r.get(0),
    )?;
    if !sql.contains("AUTOINCREMENT") {
        return Ok(());
    }
    let all = format!("seq,{COLS}");
    c.execute_batch(&format!(
        "ALTER TABLE delta RENAME TO delta_autoincrement;
         {TABLE}
         INSERT INTO delta({all}) SELECT {all} FROM delta_autoincrement;
         INSERT INTO delta(seq,space,event,time,node,parent,name,is_dir,location)
           SELECT seq,'','','',0,0,'',0,0 FROM sqlite_sequence
           WHERE name='delta_autoincrement' AND seq > (SELECT COALESCE(max(seq),0) FROM delta);
         DROP TABLE delta_autoincrement;"
    ))
}

/// Forgets the log of a deleted space (its nodes' deletes are not
/// recorded: nobody could read them).
pub fn forget_space(c: &Connection, space: &str) -> SResult<()> {
    c.execute(
        "DELETE FROM delta WHERE space=?1 AND seq < (SELECT max(seq) FROM delta)",
        [space],
    )?;
    c.execute(
        &format!("UPDATE delta SET {PLACEHOLDER} WHERE space=?1"),
        [space],
    )?;
    Ok(())
}

/// The epoch and the last sequence number handed out.
fn position(c: &Connection) -> SResult<(String, i64)> {
    let epoch: String = c
        .query_row("SELECT v FROM meta WHERE k='delta_epoch'", [], |r| r.get(0))
        .optional()?
        .unwrap_or_default();
    let seq: i64 = c.query_row("SELECT COALESCE(max(seq),0) FROM delta", [], |r| r.get(0))?;
    Ok((epoch, seq))
}

fn cursor_of(epoch: &str, seq: i64) -> String {
    format!("{epoch}-{seq}")
}

/// The error of a cursor this log cannot continue from.
fn cursor_lost(why: &str) -> ServerError {
    ServerError::api(
        404,
        codes::DELTA_CURSOR_LOST,
        format!("{why}: get a new cursor and revalidate what you cache"),
    )
}

/// `GET /api/v1/fs-delta/{lib}/{space}/cursor` and `.../delta`.
pub async fn delta_route(
    app: &Arc<App>,
    ctx: &Ctx,
    space: String,
    tail: Option<String>,
) -> SResult<Response> {
    if ctx.method != axum::http::Method::GET {
        return Err(not_found_route());
    }
    authenticate(app, ctx, Some(&space))?;
    app.faults.check("delta", false)?;
    if app.args.no_delta {
        return Err(ServerError::api(
            400,
            codes::FUNCTION_NOT_ENABLED,
            "this server keeps no change feed",
        ));
    }
    let history = app.args.delta_history as i64;
    match tail.as_deref() {
        Some("cursor") => {
            app.stats.op("delta_cursor");
            let (epoch, seq) = app.db_small(position).await?;
            Ok(json_response(
                StatusCode::OK,
                &DeltaCursor {
                    cursor: cursor_of(&epoch, seq),
                },
            ))
        }
        Some("delta") => {
            app.stats.op("delta");
            let given = ctx
                .query
                .get("cursor")
                .ok_or_else(|| ServerError::api(400, codes::PARAM_INVALID, "`cursor` is missing"))?
                .to_string();
            let limit = match ctx.query.get("limit") {
                None => DEFAULT_LIMIT,
                Some(l) => l
                    .parse::<u64>()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| {
                        ServerError::api(
                            400,
                            codes::PARAM_INVALID,
                            format!("`limit` must be 1..={MAX_LIMIT}"),
                        )
                    })?,
            };
            let page = app
                .db_small(move |c| read_page(c, &space, &given, limit, history))
                .await?;
            Ok(json_response(StatusCode::OK, &page))
        }
        _ => Err(not_found_route()),
    }
}

/// The entries of `space` after `given`, at most `limit`.
fn read_page(
    c: &Connection,
    space: &str,
    given: &str,
    limit: u64,
    history: i64,
) -> SResult<DeltaPage> {
    let (epoch, now) = position(c)?;
    let from = given
        .split_once('-')
        .filter(|(e, _)| *e == epoch)
        .and_then(|(_, s)| s.parse::<i64>().ok())
        .filter(|s| (0..=now).contains(s))
        .ok_or_else(|| cursor_lost("unknown cursor"))?;
    if from < now - history {
        return Err(cursor_lost("the cursor has expired"));
    }
    let mut stmt = c.prepare_cached(
        "SELECT seq,event,time,node,parent,name,is_dir,location,size,blob,crc64,ctype,ctime,mtime,lmtime,
                from_parent,from_name,link,lctime,rev,user
         FROM delta WHERE space=?1 AND seq>?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![space, from, limit as i64 + 1], row_entry)?
        .collect::<Result<Vec<_>, _>>()?;
    let has_more = rows.len() as u64 > limit;
    let contents: Vec<(i64, DeltaEntry)> = rows.into_iter().take(limit as usize).collect();
    let last = if has_more {
        contents.last().map_or(now, |(s, _)| *s)
    } else {
        now
    };
    Ok(DeltaPage {
        cursor: cursor_of(&epoch, last),
        has_more,
        contents: contents.into_iter().map(|(_, e)| e).collect(),
    })
}

fn row_entry(r: &Row) -> rusqlite::Result<(i64, DeltaEntry)> {
    let is_dir = r.get::<_, i64>(6)? != 0;
    let file = |v: Option<String>| if is_dir { None } else { v };
    let blob: Option<String> = r.get(9)?;
    let link: Option<i64> = r.get(17)?;
    let mut extra = std::collections::BTreeMap::new();
    if let Some(p) = r.get::<_, Option<i64>>(15)? {
        extra.insert("fromParentInode".into(), inode_of(p).into());
        extra.insert(
            "fromName".into(),
            r.get::<_, Option<String>>(16)?.unwrap_or_default().into(),
        );
    }
    let entry = DeltaEntry {
        event_type: r.get(1)?,
        event_time: r.get(2)?,
        inode: inode_of(r.get(3)?),
        parent_inode: inode_of(r.get(4)?),
        name: r.get(5)?,
        kind: if is_dir {
            EntryType::Dir
        } else if link.is_some() {
            EntryType::Symlink
        } else {
            EntryType::File
        },
        size: file(r.get::<_, Option<i64>>(8)?.map(|s| s.to_string())),
        e_tag: file(blob.as_deref().map(file_etag)),
        crc64: file(r.get(10)?),
        content_type: file(r.get(11)?),
        creation_time: r.get(12)?,
        modification_time: r.get(13)?,
        local_creation_time: r.get(18)?,
        local_modification_time: r.get(14)?,
        // Versions of a file count from 1; each new content is the next.
        version_id: if is_dir {
            None
        } else {
            r.get::<_, Option<i64>>(19)?.map(|v| v as u64 + 1)
        },
        user_id: r.get(20)?,
        location: r.get::<_, i64>(7)? as u8,
        link_to: link.map(inode_of),
        extra_info: extra,
    };
    Ok((r.get(0)?, entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::changes;

    fn names(p: &DeltaPage) -> Vec<&str> {
        p.contents.iter().map(|e| e.name.as_str()).collect()
    }

    /// The trigger layout's log (AUTOINCREMENT, without the later columns)
    /// whose sequence a deleted space left above the newest entry: its
    /// entries, epoch and sequence survive the rewrite, so cursors do.
    #[test]
    fn an_autoincrement_log_is_rewritten_keeping_its_cursors() {
        let c = Connection::open_in_memory().unwrap();
        crate::server::schema::create(&c).unwrap();
        c.execute_batch(
            "CREATE TABLE delta(seq INTEGER PRIMARY KEY AUTOINCREMENT, space TEXT NOT NULL, event TEXT NOT NULL,
               time TEXT NOT NULL, node INTEGER NOT NULL, parent INTEGER NOT NULL, name TEXT NOT NULL,
               is_dir INTEGER NOT NULL, location INTEGER NOT NULL, size INTEGER, blob TEXT, crc64 TEXT, ctype TEXT,
               ctime TEXT, mtime TEXT, lmtime TEXT, from_parent INTEGER, from_name TEXT);
             CREATE TRIGGER delta_insert AFTER INSERT ON nodes BEGIN SELECT 1; END;
             INSERT INTO delta(space,event,time,node,parent,name,is_dir,location) VALUES
               ('-','DIR.CREATE','t',1,0,'a',1,0), ('-','DIR.CREATE','t',2,0,'b',1,0), ('x','DIR.CREATE','t',3,0,'c',1,0);
             DELETE FROM delta WHERE space='x';
             INSERT INTO meta(k,v) VALUES('delta_epoch','e0');",
        )
        .unwrap();
        install(&c, Some(100)).unwrap();
        let sql: String = c
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name='delta'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("AUTOINCREMENT"), "{sql}");
        assert_eq!(position(&c).unwrap(), ("e0".to_string(), 3));
        let page = read_page(&c, "-", "e0-0", 10, 100).unwrap();
        assert_eq!(
            (names(&page), page.cursor.as_str()),
            (vec!["a", "b"], "e0-3")
        );
        // The next change is numbered after the sequence, not reusing 3.
        changes::recording(Some(100), || {
            store::ensure_space(&c, "-")?;
            store::insert_dir(&c, "-", store::ROOT, "d")
        })
        .unwrap();
        let page = read_page(&c, "-", "e0-3", 10, 100).unwrap();
        assert_eq!((names(&page), page.cursor.as_str()), (vec!["d"], "e0-4"));
    }

    /// The log keeps its last `history` entries (and fewer than
    /// `TRIM_EVERY` more), while the cursor's expiry counts exactly.
    #[test]
    fn the_log_is_trimmed_to_its_history() {
        let c = Connection::open_in_memory().unwrap();
        crate::server::schema::create(&c).unwrap();
        install(&c, Some(10)).unwrap();
        let (epoch, _) = position(&c).unwrap();
        changes::recording(Some(10), || {
            store::ensure_space(&c, "-")?;
            for i in 0..300 {
                store::insert_dir(&c, "-", store::ROOT, &format!("d{i}"))?;
            }
            Ok::<_, ServerError>(())
        })
        .unwrap();
        let rows: i64 = c
            .query_row("SELECT count(*) FROM delta", [], |r| r.get(0))
            .unwrap();
        assert!((10..10 + 64).contains(&rows), "{rows} rows");
        let page = read_page(&c, "-", &format!("{epoch}-290"), 100, 10).unwrap();
        assert_eq!(page.contents.len(), 10);
        assert_eq!(page.contents[0].name, "d290");
        assert!(read_page(&c, "-", &format!("{epoch}-289"), 100, 10).is_err());
    }
}
