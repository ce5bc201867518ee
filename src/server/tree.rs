//! Tree operations over many nodes: deep copy, move to the recycle bin,
//! new eTags for the directories of links (see [`super::links`]).

use rusqlite::{params, Connection};

use super::changes::{self, Change};
use super::error::SResult;
use super::meta;
use super::store::{path_of, subtree, touch, Node, ROOT};
use crate::smh::time;

/// Deep copy of `src` as `name` under `parent` (blobs shared).
pub fn copy_tree(c: &Connection, space: &str, src: i64, parent: i64, name: &str) -> SResult<i64> {
    let nodes = subtree(c, src)?;
    let mut map = std::collections::HashMap::new();
    let now = time::now();
    let mut new_root = ROOT;
    for n in &nodes {
        let (p, nm) = if n.id == src {
            (parent, name.to_string())
        } else {
            match map.get(&n.parent) {
                Some(p) => (*p, n.name.clone()),
                None => continue,
            }
        };
        c.execute(
            "INSERT INTO nodes(space,parent,name,is_dir,size,blob,crc64,bhash,fhash,ctype,ctime,mtime,lmtime,meta,link,lctime)
             VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?11,?12,?13,?14,?15)",
            params![
                space,
                p,
                nm,
                n.is_dir as i64,
                n.size as i64,
                n.blob,
                n.crc64,
                n.bhash,
                n.fhash,
                n.ctype,
                now,
                n.lmtime,
                meta::to_db(n.meta.as_ref()),
                n.link,
                n.lctime
            ],
        )?;
        let id = c.last_insert_rowid();
        changes::record(c, id, Change::Create)?;
        if n.id == src {
            new_root = id;
        }
        map.insert(n.id, id);
    }
    touch(c, space, parent)?;
    Ok(new_root)
}

/// Moves `node` to the recycle bin; returns the recycled item id.
pub fn recycle(c: &Connection, space: &str, n: &Node) -> SResult<i64> {
    let orig = path_of(c, n.id)?.unwrap_or_default();
    let size: i64 = if n.is_dir {
        subtree(c, n.id)?.iter().map(|x| x.size as i64).sum()
    } else {
        n.size as i64
    };
    c.execute(
        "INSERT INTO recycled(space,node,orig,name,is_dir,size,ctime,mtime,rtime) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)",
        params![
            space,
            n.id,
            serde_json::to_string(&orig).unwrap_or_default(),
            n.name,
            n.is_dir as i64,
            size,
            n.ctime,
            n.mtime,
            time::now()
        ],
    )?;
    let rid = c.last_insert_rowid();
    changes::record(c, n.id, Change::ToBin)?;
    c.execute(
        "UPDATE nodes SET parent=?2 WHERE id=?1",
        params![n.id, -rid],
    )?;
    touch(c, space, n.parent)?;
    Ok(rid)
}

/// A listing shows a link with its target's size and eTag: when the
/// target's content changes or goes, the directories holding links to it
/// (through chains too) get a new eTag, so that `If-None-Match`
/// revalidation does not answer 304 with stale items. Only the version is
/// bumped: their `modificationTime` (children added/removed) stays.
pub fn touch_linkers(c: &Connection, space: &str, target: i64) -> SResult<()> {
    let parents = c
        .prepare_cached(
            "WITH RECURSIVE l(id) AS (SELECT id FROM nodes WHERE link=?1
               UNION SELECT n.id FROM nodes n JOIN l ON n.link=l.id)
             SELECT DISTINCT parent FROM nodes WHERE id IN (SELECT id FROM l) AND parent >= 0",
        )?
        .query_map([target], |r| r.get::<_, i64>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    for p in parents {
        if p == ROOT {
            c.prepare_cached("UPDATE spaces SET rev=rev+1 WHERE id=?1")?
                .execute([space])?;
        } else {
            c.prepare_cached("UPDATE nodes SET rev=rev+1 WHERE id=?1")?
                .execute([p])?;
        }
    }
    Ok(())
}
