//! Following the server's change feed (`-o poll_interval=SECS`, smh-api.md
//! §4.15): one `delta` request per interval; each change another client
//! made drops what the caches (and the kernel, through the notifier) know
//! about the names it touched, so `ls`, `stat` and `cat` see it at once
//! instead of after a timeout.
//!
//! Entries name items by server inode; the mount learns inode → path from
//! listings (`with_inode=1`) and `?info`. A change below a directory the
//! mount never looked at has nothing cached to drop. Without a feed (404,
//! `FunctionNotEnabled`) the mount lives on its timeouts; when the cursor
//! is lost (expired), everything cached is dropped and a new cursor taken.
//!
//! Each poll tells [`Freshness`](super::freshness::Freshness) whether the
//! feed is followed: the cache lifetimes depend on it (the one rule lives
//! there).

use std::sync::Arc;

use super::core::SmhFs;
use super::own::Change;
use super::packmeta::{PackedMeta, PathKey};
use crate::smh::delta::DELTA_PAGE;
use crate::smh::types::{delta_location, DeltaEntry};
use crate::smh::{DeltaPoll, SmhPath};

/// Where the mount is with the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Feed {
    /// No cursor yet (first poll, or after a lost cursor / failed start).
    Starting,
    /// Reading on from this cursor.
    Following(String),
    /// The server keeps no feed: timeouts only.
    Absent,
}

/// Polls until the server turns out to have no feed (or forever).
pub async fn run(fs: Arc<SmhFs>) {
    let mut tick = tokio::time::interval(fs.cfg.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut feed = Feed::Starting;
    loop {
        tick.tick().await;
        let (next, polled) = step(&fs, feed).await;
        feed = next;
        fs.freshness.following(polled);
        if feed == Feed::Absent {
            tracing::info!("the server has no change feed; changes made elsewhere show after attr_timeout/dir_timeout");
            return;
        }
    }
}

/// A cursor for the current position.
async fn start(fs: &SmhFs) -> Feed {
    match fs.client.delta_cursor().await {
        Ok(Some(c)) => {
            learn_root(fs).await;
            tracing::debug!("following the change feed");
            Feed::Following(c)
        }
        Ok(None) => Feed::Absent,
        Err(e) => {
            tracing::warn!("change feed: {e}; retrying");
            Feed::Starting
        }
    }
}

/// One poll: where the mount is next, and whether this poll read the feed
/// to its end (the feed is followed).
async fn step(fs: &SmhFs, feed: Feed) -> (Feed, bool) {
    match feed {
        Feed::Absent => (Feed::Absent, false),
        Feed::Starting => (start(fs).await, false),
        Feed::Following(mut cursor) => {
            loop {
                match fs.client.delta(&cursor, DELTA_PAGE).await {
                    Ok(DeltaPoll::Changes(page)) => {
                        for e in &page.contents {
                            fs.apply_change(e);
                        }
                        cursor = page.cursor;
                        if !page.has_more {
                            return (Feed::Following(cursor), true);
                        }
                    }
                    Ok(DeltaPoll::CursorLost(e)) => {
                        tracing::warn!("change feed cursor lost ({e}); dropping cached attributes and listings");
                        // The new position first: what changes after it is
                        // reported, what changed before is no longer cached.
                        fs.freshness.following(false);
                        let next = start(fs).await;
                        fs.forget_remote();
                        return (next, false);
                    }
                    Err(e) => {
                        tracing::debug!("change feed poll failed: {e}");
                        return (Feed::Following(cursor), false);
                    }
                }
            }
        }
    }
}

/// The mounted directory's own inode (its children name it as parent).
async fn learn_root(fs: &SmhFs) {
    match fs.client.stat(&fs.cfg.root).await {
        Ok(Some(info)) => {
            if let Some(i) = info.inode {
                fs.remote_inodes.lock().insert(i, fs.cfg.root.clone(), true);
            }
        }
        Ok(None) => tracing::warn!(root = %fs.cfg.root, "the mounted directory is gone"),
        Err(e) => tracing::debug!("stat of the mounted directory: {e}"),
    }
}

/// A server change the mount is making (an upload, a mkdir): feed entries
/// of changes in place of its path wait until this is dropped, after the
/// reply is applied (`own.rs`).
pub(crate) struct OwnChange<'a> {
    fs: &'a SmhFs,
    path: SmhPath,
}

impl Drop for OwnChange<'_> {
    fn drop(&mut self) {
        for c in self.fs.own.end(&self.path) {
            self.fs.drop_changed(&c);
        }
    }
}

impl SmhFs {
    /// Taken before a change to `path` is sent, dropped once its reply is
    /// in the caches (or it failed).
    pub(crate) fn own_change(&self, path: &SmhPath) -> OwnChange<'_> {
        self.own.begin(path);
        OwnChange {
            fs: self,
            path: path.clone(),
        }
    }

    /// Places one feed entry (the inode map learns where the item is now)
    /// and drops what is cached about the names it touched: at once, or,
    /// for a change in place of a path this mount is changing, once the
    /// reply is applied.
    pub(crate) fn apply_change(&self, e: &DeltaEntry) {
        let is_dir = e.kind.is_dir();
        let in_tree = e.location == delta_location::NORMAL;
        let c = {
            let mut map = self.remote_inodes.lock();
            let at = |parent: &str, name: &str| map.get(parent).and_then(|p| p.join(name).ok());
            let c = Change {
                is_dir,
                in_tree,
                create: e.action() == "CREATE",
                e_tag: e.e_tag.clone(),
                known: map.get(&e.inode),
                from: e.moved_from().and_then(|(p, n)| at(p, n)),
                now: at(&e.parent_inode, &e.name),
            };
            if is_dir {
                for old in [&c.known, &c.from].into_iter().flatten() {
                    if c.now.as_ref() != Some(old) {
                        let old = PathKey::of(old);
                        map.retain(|p| !p.within(&old));
                    }
                }
            }
            match &c.now {
                Some(p) if in_tree => map.insert(e.inode.clone(), p.clone(), is_dir),
                _ => map.remove(&e.inode),
            }
            c
        };
        tracing::debug!(event = %e.event_type, name = %e.name, known = ?c.known, from = ?c.from, now = ?c.now, "change from the feed");
        let c = if c.in_place_now() {
            self.own.defer(c)
        } else {
            Some(c)
        };
        if let Some(c) = c {
            self.drop_changed(&c);
        }
    }

    /// Drops what the caches and the kernel know about the names `c`
    /// touched.
    fn drop_changed(&self, c: &Change) {
        // A file version the caches already show where it now is (most
        // often the mount's own upload coming back) changes nothing here,
        // even where that cache entry has expired: it is still this version.
        let shown = |p: &SmhPath| {
            !c.is_dir
                && c.in_place(p)
                && c.e_tag.is_some()
                && self.cached_as(p, |m| m.etag() == c.e_tag.as_deref())
        };
        for p in c.touched() {
            if shown(p) {
                continue;
            }
            if c.is_dir && c.in_place(p) && self.inodes.lock().ino_of(p).is_some() {
                // A directory the kernel holds, changed in place: its name
                // still means it, and invalidating the entry would unhash
                // it under whoever has it as working directory (`getcwd`
                // then fails with ENOENT). Its listing stays: changes to
                // its children are entries of their own, mapped through
                // this directory's inode, known from here on. A creation
                // the caches already show is the mount's own
                // `mkdir` coming back and changes nothing (otherwise every
                // later lookup inside would go to the server); any other
                // change drops its attributes and the parent's listing
                // (which keeps the child's times).
                let own = c.create && self.cached_as(p, |m| m.kind().is_dir());
                if !own {
                    self.attrs.remove(p);
                    if let Some(parent) = p.parent() {
                        self.dirs.invalidate(&parent);
                    }
                    self.invalidate_inode(p);
                }
                continue;
            }
            self.drop_remote(p, c.is_dir);
        }
    }

    /// Whether the caches (attributes, else the parent's listing; fresh or
    /// expired) hold `path` as an entry meeting `f`.
    fn cached_as(&self, path: &SmhPath, f: impl Fn(&PackedMeta) -> bool) -> bool {
        self.attrs.shows(path, &f)
            || path
                .parent()
                .zip(path.name())
                .is_some_and(|(dir, name)| self.dirs.shows(&dir, name, &f))
    }

    /// Forgets `path` (and, for a directory, what is below it) in the
    /// caches and the kernel, and the listing of its parent.
    fn drop_remote(&self, path: &SmhPath, tree: bool) {
        self.urls.invalidate(path);
        if tree {
            self.attrs.remove_tree(path);
            self.dirs.remove_tree(path);
        } else {
            self.attrs.remove(path);
        }
        if let Some(parent) = path.parent() {
            self.dirs.invalidate(&parent);
        }
        self.invalidate_entry(path);
        self.invalidate_inode(path);
    }

    /// After a lost cursor: nothing cached about the server is trusted,
    /// here or in the kernel (for every name the mount has learned).
    fn forget_remote(&self) {
        let root = self.cfg.root.clone();
        self.attrs.remove_tree(&root);
        self.dirs.remove_tree(&root);
        let known: Vec<SmhPath> = {
            let mut map = self.remote_inodes.lock();
            let known = map.paths();
            // The mounted directory stays where it is.
            let root = PathKey::of(&root);
            map.retain(|p| *p == root);
            known
        };
        for p in &known {
            self.urls.invalidate(p);
            self.invalidate_entry(p);
            self.invalidate_inode(p);
        }
    }
}
