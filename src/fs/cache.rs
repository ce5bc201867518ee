//! Attribute and listing caches: bounded (`lru`), with TTLs from the mount
//! options (lengthened while the change feed is followed: `freshness.rs`)
//! and short-lived negative entries.
//!
//! A listing fills the attribute cache with every entry it returns, so
//! `ls -l` after `readdir` costs no per-entry request.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use crate::smh::SmhPath;

use super::freshness::Freshness;
use super::packmeta::{PackedMeta, PathKey};

pub use super::meta::{Kind, Meta};
pub use crate::smh::time::{format_time, parse_time};

/// How long a "does not exist" answer is trusted.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// A cached value, when it was stored, and its lifetime if fixed.
type Stored<V> = (V, Instant, Option<Duration>);

/// A bounded LRU of paths to values that expire; the expiry logic both
/// caches share. Each value keeps when it was stored and, if its lifetime
/// is fixed, that lifetime; the others live as long as [`Freshness`] says.
/// Keys are [`PathKey`]s (one allocation per entry, not one per segment).
struct TtlMap<V> {
    map: Mutex<LruCache<PathKey, Stored<V>>>,
    ttl: Duration,
    fresh: Arc<Freshness>,
    /// Subtrees dropped since the last sweep, and when: an entry stored
    /// at or before a cut of its path or of an ancestor is gone. Why: a
    /// directory rename or `rm -rf` then costs one insert, not a walk of
    /// the whole bounded cache (up to 100,000 paths) per directory.
    cuts: Mutex<HashMap<Box<str>, Instant>>,
}

/// Cuts kept before one sweep of the cache drops what they cover.
const MAX_CUTS: usize = 64;

/// Whether an entry at `key` stored at `stored` is under a later cut.
fn cut_off(cuts: &HashMap<Box<str>, Instant>, key: &PathKey, stored: Instant) -> bool {
    !cuts.is_empty()
        && key
            .prefixes()
            .any(|p| cuts.get(p).is_some_and(|&at| stored <= at))
}

impl<V: Clone> TtlMap<V> {
    fn new(capacity: usize, ttl: Duration, fresh: Arc<Freshness>) -> Self {
        Self {
            map: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
            ttl,
            fresh,
            cuts: Mutex::new(HashMap::new()),
        }
    }

    /// The value if still fresh (an expired one stays until it is replaced
    /// or evicted: a listing is revalidated with its eTag).
    fn get(&self, path: &SmhPath) -> Option<V> {
        let key = PathKey::of(path);
        let mut m = self.map.lock();
        let (v, stored, fixed) = m.get(&key)?;
        if cut_off(&self.cuts.lock(), &key, *stored) {
            return None;
        }
        let life = fixed.unwrap_or_else(|| self.fresh.ttl(self.ttl, *stored));
        (stored.elapsed() < life).then(|| v.clone())
    }

    /// The value, fresh or not.
    fn peek(&self, path: &SmhPath) -> Option<V> {
        self.peek_with(path, V::clone)
    }

    /// `f` of the value, fresh or not, without copying it out.
    fn peek_with<R>(&self, path: &SmhPath, f: impl FnOnce(&V) -> R) -> Option<R> {
        let key = PathKey::of(path);
        let m = self.map.lock();
        let (v, stored, _) = m.peek(&key)?;
        (!cut_off(&self.cuts.lock(), &key, *stored)).then(|| f(v))
    }

    /// Stores `v` for the cache's timeout (or a `fixed` lifetime).
    fn put(&self, path: SmhPath, v: V, fixed: Option<Duration>) {
        if self.ttl.is_zero() && fixed.is_none() {
            return;
        }
        let key = PathKey::of(&path);
        self.map.lock().put(key, (v, Instant::now(), fixed));
    }

    /// Changes a cached value in place, keeping its expiry.
    fn update(&self, path: &SmhPath, f: impl FnOnce(&mut V)) {
        if let Some((v, _, _)) = self.map.lock().get_mut(&PathKey::of(path)) {
            f(v);
        }
    }

    fn remove(&self, path: &SmhPath) {
        self.map.lock().pop(&PathKey::of(path));
    }

    /// Drops `path` and everything below it (after a rename or rmdir): a
    /// cut now, the entries it covers at the next sweep.
    fn remove_tree(&self, path: &SmhPath) {
        let top = PathKey::of(path);
        let mut m = self.map.lock();
        let mut cuts = self.cuts.lock();
        if top.is_root() {
            m.clear();
            cuts.clear();
            return;
        }
        m.pop(&top);
        cuts.insert(top.into_inner(), Instant::now());
        if cuts.len() >= MAX_CUTS {
            let gone: Vec<PathKey> = m
                .iter()
                .filter(|(k, (_, stored, _))| cut_off(&cuts, k, *stored))
                .map(|(k, _)| k.clone())
                .collect();
            for k in gone {
                m.pop(&k);
            }
            cuts.clear();
        }
    }
}

/// path -> `Some(meta)` or `None` (known missing), each with an expiry;
/// kept packed (`packmeta.rs`).
pub struct AttrCache {
    ttl: Duration,
    map: TtlMap<Option<PackedMeta>>,
}

impl AttrCache {
    pub fn new(ttl: Duration, capacity: usize, fresh: Arc<Freshness>) -> Self {
        Self {
            ttl,
            map: TtlMap::new(capacity, ttl, fresh),
        }
    }

    /// `Some(Some(meta))` fresh hit, `Some(None)` fresh negative, `None` unknown.
    pub fn get(&self, path: &SmhPath) -> Option<Option<Meta>> {
        self.map.get(path).map(|m| m.as_ref().map(PackedMeta::meta))
    }

    /// Whether the cached answer, fresh or expired, is an entry meeting
    /// `f` (the feed asks whether a change is already shown).
    pub fn shows(&self, path: &SmhPath, f: impl FnOnce(&PackedMeta) -> bool) -> bool {
        self.map
            .peek_with(path, |m| m.as_ref().is_some_and(f))
            .unwrap_or(false)
    }

    pub fn put(&self, path: SmhPath, meta: Meta) {
        self.put_packed(path, PackedMeta::new(&meta));
    }

    pub fn put_packed(&self, path: SmhPath, meta: PackedMeta) {
        self.map.put(path, Some(meta), None);
    }

    pub fn put_missing(&self, path: SmhPath) {
        self.map.put(
            path,
            None,
            Some(NEGATIVE_TTL.min(self.ttl.max(NEGATIVE_TTL))),
        );
    }

    pub fn remove(&self, path: &SmhPath) {
        self.map.remove(path);
    }

    /// Drops `path` and everything below it (after a rename or rmdir).
    pub fn remove_tree(&self, path: &SmhPath) {
        self.map.remove_tree(path);
    }

    /// Entries held, fresh or not.
    pub fn len(&self) -> usize {
        self.map.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One directory's complete listing, in server order, indexed by name,
/// its entries packed (`packmeta.rs`).
pub type Listing = Arc<super::dirlist::DirList<PackedMeta>>;

/// Directory path -> complete listing, for `dir_timeout`, with the
/// directory's eTag when the listing is exactly what the server sent (an
/// expired one is then revalidated with `If-None-Match`; a listing changed
/// here by our own changes has none and is listed again).
///
/// Bounded in entries (`dir_cache_entries`), not only in directories: a
/// new listing pushes out the least recently used ones until the total
/// fits, and a listing longer than the bound is not kept at all (it is
/// streamed from the server at each `readdir`, see `dirs.rs`). Our own
/// creates may overshoot the bound by what they add until the next put.
pub struct DirCache {
    map: TtlMap<(Listing, Option<String>)>,
    max_entries: usize,
}

/// Directories kept at most, whatever their size.
const MAX_DIRS: usize = 4096;

impl DirCache {
    pub fn new(ttl: Duration, max_entries: usize, fresh: Arc<Freshness>) -> Self {
        Self {
            map: TtlMap::new(MAX_DIRS, ttl, fresh),
            max_entries,
        }
    }

    /// Whether a listing of `n` entries would be kept.
    pub fn fits(&self, n: usize) -> bool {
        n <= self.max_entries && !self.map.ttl.is_zero()
    }

    pub fn get(&self, dir: &SmhPath) -> Option<Listing> {
        self.map.get(dir).map(|(l, _)| l)
    }

    /// An expired (or fresh) listing the server sent as it is, and its eTag.
    pub fn revalidatable(&self, dir: &SmhPath) -> Option<(Listing, String)> {
        let (l, etag) = self.map.peek(dir)?;
        Some((l, etag?))
    }

    pub fn put(&self, dir: SmhPath, listing: Listing, etag: Option<String>) {
        if listing.len() > self.max_entries {
            self.map.remove(&dir);
            return;
        }
        let key = PathKey::of(&dir);
        self.map.put(dir, (listing, etag), None);
        let mut m = self.map.map.lock();
        let mut total: usize = m.iter().map(|(_, ((l, _), _, _))| l.len()).sum();
        while total > self.max_entries {
            match m.peek_lru() {
                Some((k, _)) if *k != key => {}
                _ => break,
            }
            match m.pop_lru() {
                Some((_, ((l, _), _, _))) => total -= l.len(),
                None => break,
            }
        }
    }

    /// Our own change: add or replace `name` in a cached listing.
    pub fn upsert(&self, dir: &SmhPath, name: &str, meta: Meta) {
        self.map.update(dir, |(l, etag)| {
            *etag = None;
            Arc::make_mut(l).upsert(name, PackedMeta::new(&meta));
        });
    }

    /// Our own change: `name` left the directory.
    pub fn remove_entry(&self, dir: &SmhPath, name: &str) {
        self.map.update(dir, |(l, etag)| {
            *etag = None;
            Arc::make_mut(l).remove(name)
        });
    }

    /// Whether the cached listing of `dir` (fresh or not) has `name`, as
    /// an entry meeting `f`.
    pub fn shows(&self, dir: &SmhPath, name: &str, f: impl FnOnce(&PackedMeta) -> bool) -> bool {
        self.map
            .peek_with(dir, |(l, _)| l.get(name).is_some_and(f))
            .unwrap_or(false)
    }

    /// Forgets the listing of `dir` (it changed on the server).
    pub fn invalidate(&self, dir: &SmhPath) {
        self.map.remove(dir);
    }

    pub fn remove_tree(&self, path: &SmhPath) {
        self.map.remove_tree(path);
    }

    /// (directories, entries) held, fresh or not.
    pub fn size(&self) -> (u64, u64) {
        let m = self.map.map.lock();
        let entries = m.iter().map(|(_, ((l, _), _, _))| l.len() as u64).sum();
        (m.len() as u64, entries)
    }
}

#[cfg(test)]
mod tests {
    use super::super::dirlist::DirList;
    use super::*;

    /// A subtree dropped is gone at once (not its look-alike sibling), a
    /// later put of a path under it counts, and the sweep after
    /// [`MAX_CUTS`] cuts frees the entries.
    #[test]
    fn remove_tree_cuts_then_sweeps() {
        let c = AttrCache::new(Duration::from_secs(60), 1000, Default::default());
        let p = |s: &str| SmhPath::parse(s).unwrap();
        for s in ["a", "a/b", "a/b/c", "a/bc", "x/y"] {
            c.put(p(s), Meta::new_file(1));
        }
        c.remove_tree(&p("a/b"));
        assert!(c.get(&p("a/b")).is_none() && c.get(&p("a/b/c")).is_none());
        assert!(!c.shows(&p("a/b/c"), |_| true));
        assert!(c.get(&p("a")).is_some() && c.get(&p("a/bc")).is_some());
        c.put(p("a/b/c"), Meta::new_file(2));
        assert_eq!(c.get(&p("a/b/c")).unwrap().unwrap().size, 2);
        for i in 0..MAX_CUTS {
            c.remove_tree(&p(&format!("x/y/{i}")));
        }
        assert!(c.get(&p("x/y")).is_some(), "a cut below an entry leaves it");
        c.remove_tree(&p("x"));
        assert!(c.get(&p("x/y")).is_none());
        assert_eq!(
            c.map.map.lock().len(),
            4,
            "a, a/bc, a/b/c, x/y until the next sweep"
        );
        for i in 0..MAX_CUTS {
            c.remove_tree(&p(&format!("z{i}")));
        }
        let left: Vec<String> = c
            .map
            .map
            .lock()
            .iter()
            .map(|(k, _)| format!("{k:?}"))
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
    }

    #[test]
    fn attr_cache_ttl_and_negative() {
        let c = AttrCache::new(Duration::from_secs(60), 10, Default::default());
        let p = SmhPath::parse("a").unwrap();
        assert!(c.get(&p).is_none());
        c.put_missing(p.clone());
        assert_eq!(c.get(&p), Some(None));
        c.put(p.clone(), Meta::new_file(3));
        assert_eq!(c.get(&p).unwrap().unwrap().size, 3);
        c.remove_tree(&SmhPath::root());
        assert!(c.get(&p).is_none());
        let z = AttrCache::new(Duration::ZERO, 10, Default::default());
        z.put(p.clone(), Meta::new_file(1));
        assert!(z.get(&p).is_none());
    }

    #[test]
    fn dir_cache_own_changes() {
        let c = DirCache::new(Duration::from_secs(60), 10, Default::default());
        let d = SmhPath::root();
        c.put(
            d.clone(),
            Arc::new(DirList::new(vec![(
                "a".into(),
                PackedMeta::new(&Meta::new_file(1)),
            )])),
            Some("\"e1\"".into()),
        );
        assert!(c.revalidatable(&d).is_some());
        c.upsert(&d, "b", Meta::new_dir());
        assert!(c.revalidatable(&d).is_none(), "changed here: list again");
        c.upsert(&d, "a", Meta::new_file(9));
        c.remove_entry(&d, "b");
        let l = c.get(&d).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l.get("a").unwrap().meta().size, 9);
    }

    #[test]
    fn dir_cache_bounded_in_entries() {
        let c = DirCache::new(Duration::from_secs(60), 10, Default::default());
        let list = |n: usize| {
            Arc::new(DirList::new(
                (0..n)
                    .map(|i| (format!("f{i}"), PackedMeta::new(&Meta::new_file(1))))
                    .collect(),
            ))
        };
        let dir = |s: &str| SmhPath::parse(s).unwrap();
        c.put(dir("a"), list(4), None);
        c.put(dir("b"), list(4), None);
        assert_eq!(c.size(), (2, 8));
        c.put(dir("c"), list(4), None);
        assert_eq!(c.size(), (2, 8), "the oldest listing went");
        assert!(c.get(&dir("a")).is_none());
        c.put(dir("big"), list(11), None);
        assert!(c.get(&dir("big")).is_none(), "longer than the bound");
        assert!(c.fits(10) && !c.fits(11));
    }
}
