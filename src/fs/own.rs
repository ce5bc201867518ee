//! Server changes this mount has sent whose replies it has not applied yet.
//!
//! The change feed can bring the mount's own upload back before the
//! confirm's reply reaches the caches (the server records the change when
//! it commits, the reply is still on its way). Applied then, the entry
//! looks like another client's version: it drops the parent's listing and
//! every later `create` in that directory costs a lookup on the server; and
//! another client's overwrite reported then would be undone by the reply,
//! cached after it. So a feed entry creating or modifying such a path waits
//! here and is applied once the reply has been (`follow.rs` defers and
//! replays them): an entry for the version the caches now show changes
//! nothing, another client's version drops what it must. Moves and deletes
//! are applied at once.
//!
//! A leaf: the registry, and [`Change`], a feed entry placed on the names
//! the mount knows.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::smh::SmhPath;

/// Paths with a change in flight, and the feed entries waiting on each.
#[derive(Default)]
pub struct OwnChanges {
    pending: Mutex<HashMap<SmhPath, Pending>>,
}

struct Pending {
    /// Changes in flight on the path (two handles may upload one file).
    holders: usize,
    deferred: Vec<Change>,
}

impl OwnChanges {
    /// A change to `path` is about to be sent.
    pub fn begin(&self, path: &SmhPath) {
        self.pending
            .lock()
            .entry(path.clone())
            .or_insert_with(|| Pending {
                holders: 0,
                deferred: Vec::new(),
            })
            .holders += 1;
    }

    /// The reply of a change to `path` has been applied (or it failed):
    /// the entries that waited for the last one, to apply now.
    pub fn end(&self, path: &SmhPath) -> Vec<Change> {
        let mut map = self.pending.lock();
        let Some(p) = map.get_mut(path) else {
            return Vec::new();
        };
        p.holders -= 1;
        if p.holders > 0 {
            return Vec::new();
        }
        map.remove(path).map(|p| p.deferred).unwrap_or_default()
    }

    /// Keeps `c` until the change in flight where it now is ends; gives
    /// it back when there is none (apply it now).
    pub fn defer(&self, c: Change) -> Option<Change> {
        let mut map = self.pending.lock();
        match c.now.as_ref().and_then(|p| map.get_mut(p)) {
            Some(pending) => {
                pending.deferred.push(c);
                None
            }
            None => Some(c),
        }
    }
}

/// A feed entry placed on the names the mount knows.
pub(crate) struct Change {
    pub is_dir: bool,
    /// The item is in the tree (not moved to the recycle bin).
    pub in_tree: bool,
    /// A creation (a `mkdir` coming back is told by it).
    pub create: bool,
    /// The version it reports (files).
    pub e_tag: Option<String>,
    /// Where the mount knew the item, where a move says it was, where it is.
    pub known: Option<SmhPath>,
    pub from: Option<SmhPath>,
    pub now: Option<SmhPath>,
}

impl Change {
    /// The names the entry touched, each once.
    pub fn touched(&self) -> Vec<&SmhPath> {
        let mut touched: Vec<&SmhPath> = Vec::new();
        for p in [&self.known, &self.from, &self.now].into_iter().flatten() {
            if !touched.contains(&p) {
                touched.push(p);
            }
        }
        touched
    }

    /// Changed where it now is: the only kind that waits (a move or a
    /// delete drops its names whoever made it).
    pub fn in_place_now(&self) -> bool {
        self.now.as_ref().is_some_and(|p| self.in_place(p))
    }

    /// Changed where it is (created or modified, not moved or deleted).
    pub fn in_place(&self, p: &SmhPath) -> bool {
        self.in_tree
            && self.now.as_ref() == Some(p)
            && [&self.known, &self.from]
                .iter()
                .all(|o| o.is_none() || o.as_ref() == Some(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SmhPath {
        SmhPath::parse(s).unwrap()
    }

    /// A creation of `path`, told apart by its eTag.
    fn created(path: &str, tag: &str) -> Change {
        Change {
            is_dir: false,
            in_tree: true,
            create: true,
            e_tag: Some(tag.into()),
            known: None,
            from: None,
            now: Some(p(path)),
        }
    }

    fn tags(v: Vec<Change>) -> Vec<String> {
        v.into_iter().filter_map(|c| c.e_tag).collect()
    }

    #[test]
    fn entries_wait_for_the_last_change_in_flight() {
        let own = OwnChanges::default();
        let tag = |c: Option<Change>| c.and_then(|c| c.e_tag);
        assert_eq!(
            tag(own.defer(created("a", "1"))).as_deref(),
            Some("1"),
            "nothing in flight"
        );
        own.begin(&p("a"));
        own.begin(&p("a"));
        assert!(own.defer(created("a", "2")).is_none());
        assert_eq!(
            tags(own.end(&p("a"))),
            Vec::<String>::new(),
            "one still in flight"
        );
        assert!(own.defer(created("a", "3")).is_none());
        assert_eq!(
            tag(own.defer(created("b", "4"))).as_deref(),
            Some("4"),
            "another path"
        );
        assert_eq!(tags(own.end(&p("a"))), vec!["2", "3"]);
        assert_eq!(
            tag(own.defer(created("a", "5"))).as_deref(),
            Some("5"),
            "ended"
        );
        assert!(own.end(&p("a")).is_empty(), "an unmatched end is harmless");
    }

    #[test]
    fn only_a_change_where_the_item_stays_is_in_place() {
        let c = |known: Option<&str>, from: Option<&str>, in_tree| Change {
            is_dir: false,
            in_tree,
            create: false,
            e_tag: None,
            known: known.map(p),
            from: from.map(p),
            now: Some(p("d/x")),
        };
        assert!(c(None, None, true).in_place(&p("d/x")), "a creation");
        assert!(
            c(Some("d/x"), None, true).in_place(&p("d/x")),
            "a modification"
        );
        assert!(
            !c(Some("d/y"), None, true).in_place(&p("d/x")),
            "known elsewhere"
        );
        assert!(!c(None, Some("d/y"), true).in_place(&p("d/x")), "a move");
        assert!(
            !c(None, None, false).in_place(&p("d/x")),
            "to the recycle bin"
        );
        assert_eq!(c(Some("d/y"), Some("d/y"), true).touched().len(), 2);
    }
}
