//! The change feed (`fs-delta`, smh-api.md §4.15).
//!
//! Every change of the `nodes` table is recorded by SQLite triggers in the
//! table `delta`, so an entry is written in the same transaction as the
//! change itself, whichever route (or batch item) made it. Entries are
//! numbered by one sequence for the whole server; the history keeps the
//! last `--delta-history` of them. A cursor is `{epoch}-{seq}`: the epoch
//! changes whenever the log may have missed changes (first start, a start
//! after `--no-delta`), which makes every older cursor unknown.

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
CREATE TABLE IF NOT EXISTS delta(seq INTEGER PRIMARY KEY AUTOINCREMENT, space TEXT NOT NULL, event TEXT NOT NULL,
  time TEXT NOT NULL, node INTEGER NOT NULL, parent INTEGER NOT NULL, name TEXT NOT NULL, is_dir INTEGER NOT NULL,
  location INTEGER NOT NULL, size INTEGER, blob TEXT, crc64 TEXT, ctype TEXT, ctime TEXT, mtime TEXT, lmtime TEXT,
  from_parent INTEGER, from_name TEXT, link INTEGER, lctime TEXT, rev INTEGER, user TEXT);
DROP INDEX IF EXISTS delta_space;
";

/// The columns every trigger writes; in the statements below `$.` stands
/// for the row (NEW, or OLD for a delete).
const COLS: &str = "space,event,time,node,parent,name,is_dir,location,size,blob,crc64,ctype,ctime,mtime,lmtime,rev,from_parent,from_name,link,lctime,user";
const KIND: &str = "CASE $.is_dir WHEN 1 THEN 'DIR.' ELSE 'FILE.' END";
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";
/// The acting user (`actor.rs`).
const USER: &str = "smh_actor()";

fn triggers(history: u64) -> String {
    let file_cols = "$.size,$.blob,$.crc64,$.ctype,$.ctime,$.mtime,$.lmtime,$.rev";
    let insert = format!(
        "CREATE TRIGGER delta_insert AFTER INSERT ON nodes BEGIN
           INSERT INTO delta({COLS}) VALUES($.space, {KIND} || 'CREATE', {NOW}, $.id, $.parent, $.name, $.is_dir, 0,
             {file_cols}, NULL, NULL, $.link, $.lctime, {USER});
         END;"
    )
    .replace("$.", "NEW.");
    // A move to the bin (negative parent) is a delete at the old place, the
    // way back a restore; a changed parent or name a move, else a modify
    // (content, local time, metadata or link target).
    let update = format!(
        "CREATE TRIGGER delta_update AFTER UPDATE OF parent,name,blob,size,crc64,lmtime,meta,link,lctime ON nodes
         WHEN (OLD.parent IS NOT NEW.parent OR OLD.name IS NOT NEW.name OR OLD.blob IS NOT NEW.blob
               OR OLD.size IS NOT NEW.size OR OLD.crc64 IS NOT NEW.crc64 OR OLD.lmtime IS NOT NEW.lmtime
               OR OLD.meta IS NOT NEW.meta OR OLD.link IS NOT NEW.link OR OLD.lctime IS NOT NEW.lctime)
           AND NOT (OLD.parent < 0 AND NEW.parent < 0)
         BEGIN
           INSERT INTO delta({COLS}) SELECT $.space, {KIND} || ev, {NOW}, $.id,
             CASE ev WHEN 'DELETE' THEN OLD.parent ELSE $.parent END,
             CASE ev WHEN 'DELETE' THEN OLD.name ELSE $.name END,
             $.is_dir, CASE ev WHEN 'DELETE' THEN 1 ELSE 0 END, {file_cols},
             CASE ev WHEN 'MOVE' THEN OLD.parent END, CASE ev WHEN 'MOVE' THEN OLD.name END, $.link, $.lctime, {USER}
           FROM (SELECT CASE WHEN NEW.parent < 0 THEN 'DELETE' WHEN OLD.parent < 0 THEN 'RESTORE'
                 WHEN OLD.parent = NEW.parent AND OLD.name = NEW.name THEN 'MODIFY' ELSE 'MOVE' END AS ev);
         END;"
    )
    .replace("$.", "NEW.");
    // Items in the bin were reported when they went there.
    let delete = format!(
        "CREATE TRIGGER delta_delete AFTER DELETE ON nodes WHEN OLD.parent >= 0 BEGIN
           INSERT INTO delta({COLS}) VALUES($.space, {KIND} || 'DELETE', {NOW}, $.id, $.parent, $.name, $.is_dir, 3,
             {file_cols}, NULL, NULL, $.link, $.lctime, {USER});
         END;"
    )
    .replace("$.", "OLD.");
    let trim = format!(
        "CREATE TRIGGER delta_trim AFTER INSERT ON delta BEGIN
           DELETE FROM delta WHERE seq <= NEW.seq - {history};
         END;"
    );
    [insert, update, delete, trim].join("\n")
}

const TRIGGERS: [&str; 4] = ["delta_insert", "delta_update", "delta_delete", "delta_trim"];

/// Creates the log table and (re)creates its triggers: `history` entries
/// kept, or no recording at all (`None`, `--no-delta`).
pub fn install(c: &Connection, history: Option<u64>) -> rusqlite::Result<()> {
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
    let was_on = c
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type='trigger' AND name='delta_insert'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    for t in TRIGGERS {
        c.execute_batch(&format!("DROP TRIGGER IF EXISTS {t}"))?;
    }
    let Some(history) = history else {
        return Ok(());
    };
    c.execute_batch(&triggers(history.max(1)))?;
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

/// Forgets the log of a deleted space.
pub fn forget_space(c: &Connection, space: &str) -> SResult<()> {
    c.execute("DELETE FROM delta WHERE space=?1", [space])?;
    Ok(())
}

/// The epoch and the last sequence number handed out.
fn position(c: &Connection) -> SResult<(String, i64)> {
    let epoch: String = c
        .query_row("SELECT v FROM meta WHERE k='delta_epoch'", [], |r| r.get(0))
        .optional()?
        .unwrap_or_default();
    let seq: i64 = c
        .query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name='delta'),0)",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
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
