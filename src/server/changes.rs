//! Recording the change feed's entries (the log and its pages are
//! [`delta`](super::delta)): the store's writes call [`record`] or
//! [`modify`] for each node they change, in their transaction, while a
//! store that keeps a feed runs it ([`recording`]). A new statement that
//! writes `nodes` (its place, name, content, local times, metadata or link)
//! must do the same; `server_feed::each_change_is_one_entry_with_a_stable_inode`
//! lists every kind of change a route makes.

use std::cell::Cell;

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use super::actor;
use super::error::SResult;
use crate::smh::time;

/// The log is trimmed every this many entries, to the last `history`
/// (a few more rows kept, one statement less per change).
const TRIM_EVERY: i64 = 64;

thread_local! {
    /// The history of the store whose transaction runs on this thread
    /// (None: it keeps no feed); set by [`recording`].
    static HISTORY: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` (a transaction of a store keeping `history` entries, or none)
/// so that [`record`] writes to its log.
pub fn recording<T>(history: Option<u64>, f: impl FnOnce() -> T) -> T {
    let prev = HISTORY.replace(history);
    let out = f();
    HISTORY.set(prev);
    out
}

/// A change of one node, as its entry names it.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// After the insert.
    Create,
    /// After an update of content, local times, metadata or link target
    /// (see [`modify`], which records it only if one of them changed).
    Modify,
    /// After a rename or move from `from` (nothing if it stayed put).
    Move { from: (i64, &'a str) },
    /// After its way back from the recycle bin.
    Restore,
    /// Before it goes to the recycle bin, so that it is named where it was.
    ToBin,
    /// Before its row is deleted; nothing for an item that is in the bin,
    /// which was reported when it went there.
    Gone,
}

/// The entry of `change` to node `id`, attributes as the row has them now.
/// One single-row `INSERT ... SELECT` that cannot abort half-way (`OR
/// FAIL`, no function calls), so SQLite keeps no statement journal.
pub fn record(c: &Connection, id: i64, change: Change) -> SResult<()> {
    let Some(history) = HISTORY.get() else {
        return Ok(());
    };
    let (event, location, from) = match change {
        Change::Create => ("CREATE", 0, None),
        Change::Modify => ("MODIFY", 0, None),
        Change::Move { from } => ("MOVE", 0, Some(from)),
        Change::Restore => ("RESTORE", 0, None),
        Change::ToBin => ("DELETE", 1, None),
        Change::Gone => ("DELETE", 3, None),
    };
    let added = c
        .prepare_cached(concat!(
            "INSERT OR FAIL INTO delta(space,event,time,node,parent,name,is_dir,location,size,blob,crc64,ctype,",
            "ctime,mtime,lmtime,rev,from_parent,from_name,link,lctime,user) ",
            "SELECT space, CASE is_dir WHEN 1 THEN 'DIR.' ELSE 'FILE.' END || ?2, ?3, id, parent, name, is_dir, ?4, ",
            "size, blob, crc64, ctype, ctime, mtime, lmtime, rev, ?5, ?6, link, lctime, ?7 FROM nodes ",
            "WHERE id=?1 AND (?4 <> 3 OR parent >= 0) AND (?5 IS NULL OR parent <> ?5 OR name <> ?6)"
        ))?
        .execute(params![
            id,
            event,
            time::now(),
            location,
            from.map(|f| f.0),
            from.map(|f| f.1),
            actor::current().as_deref()
        ])?;
    let seq = c.last_insert_rowid();
    if added == 1 && seq % TRIM_EVERY == 0 {
        c.prepare_cached("DELETE FROM delta WHERE seq <= ?1")?
            .execute([seq - history.max(1) as i64])?;
    }
    Ok(())
}

/// What an entry shows of a node that a [`Change::Modify`] is about.
const SHOWN: &str = "SELECT blob,size,crc64,lmtime,meta,link,lctime FROM nodes WHERE id=?1";

fn shown(c: &Connection, id: i64) -> SResult<Vec<Value>> {
    let mut stmt = c.prepare_cached(SHOWN)?;
    let row = stmt
        .query_row([id], |r| (0..7).map(|i| r.get::<_, Value>(i)).collect())
        .optional()?;
    Ok(row.unwrap_or_default())
}

/// Runs `update` of node `id` and records a MODIFY if it changed what an
/// entry shows (an overwrite with the same content and times is none).
pub fn modify<T>(c: &Connection, id: i64, update: impl FnOnce() -> SResult<T>) -> SResult<T> {
    if HISTORY.get().is_none() {
        return update();
    }
    let before = shown(c, id)?;
    let out = update()?;
    if shown(c, id)? != before {
        record(c, id, Change::Modify)?;
    }
    Ok(out)
}
