//! Attribute and listing caches: bounded (`lru`), with TTLs from the mount
//! options and short-lived negative entries.
//!
//! A listing fills the attribute cache with every entry it returns, so
//! `ls -l` after `readdir` costs no per-entry request.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;
use parking_lot::Mutex;

use crate::smh::types::{DirEntry, EntryInfo, FileMeta};
use crate::smh::SmhPath;

use super::posix::PosixMeta;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// What we know about one entry; mode/uid/gid are synthesized later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub size: u64,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    /// The server's eTag: of the content for a file (which version a read
    /// gets, see `read.rs`), of the listing for a directory. `None` for
    /// what we made locally and have not heard back about.
    pub etag: Option<String>,
    /// Mode, owner and device number kept as custom metadata, if any.
    pub posix: PosixMeta,
}

pub use crate::smh::time::{format_time, parse_time};

fn kind_of(t: &crate::smh::types::EntryType) -> Kind {
    if t.is_dir() {
        Kind::Dir
    } else {
        Kind::File
    }
}

fn size_of(s: Option<&String>) -> u64 {
    s.and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Meta {
    fn build(
        kind: Kind,
        size: Option<&String>,
        local_mtime: Option<&str>,
        mtime: Option<&str>,
        ctime: Option<&str>,
        etag: Option<&String>,
        meta_data: Option<&crate::smh::types::MetaData>,
    ) -> Self {
        let m = parse_time(local_mtime)
            .or_else(|| parse_time(mtime))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let m = super::mtimens::precise_mtime(meta_data, m);
        Meta {
            kind,
            size: if kind == Kind::Dir { 0 } else { size_of(size) },
            mtime: m,
            ctime: parse_time(mtime).or_else(|| parse_time(ctime)).unwrap_or(m),
            etag: etag.cloned(),
            posix: PosixMeta::from_meta_data(meta_data),
        }
    }

    pub fn from_entry(e: &DirEntry) -> Self {
        Self::build(
            kind_of(&e.kind),
            e.size.as_ref(),
            e.local_modification_time.as_deref(),
            e.modification_time.as_deref(),
            e.creation_time.as_deref(),
            e.e_tag.as_ref(),
            e.meta_data.as_ref(),
        )
    }

    pub fn from_info(e: &EntryInfo) -> Self {
        Self::build(
            kind_of(&e.kind),
            e.size.as_ref(),
            e.local_modification_time.as_deref(),
            e.modification_time.as_deref(),
            e.creation_time.as_deref(),
            e.e_tag.as_ref(),
            e.meta_data.as_ref(),
        )
    }

    pub fn from_file_meta(e: &FileMeta, local_mtime: Option<SystemTime>) -> Self {
        let mut m = Self::build(
            Kind::File,
            Some(&e.size),
            None,
            e.modification_time.as_deref(),
            e.creation_time.as_deref(),
            e.e_tag.as_ref(),
            e.meta_data.as_ref(),
        );
        if let Some(t) = local_mtime {
            m.mtime = t;
        }
        if m.mtime == SystemTime::UNIX_EPOCH {
            m.mtime = SystemTime::now();
            m.ctime = m.mtime;
        }
        m
    }

    pub fn new_dir() -> Self {
        let now = SystemTime::now();
        Meta {
            kind: Kind::Dir,
            size: 0,
            mtime: now,
            ctime: now,
            etag: None,
            posix: PosixMeta::default(),
        }
    }

    pub fn new_file(size: u64) -> Self {
        let now = SystemTime::now();
        Meta {
            kind: Kind::File,
            size,
            mtime: now,
            ctime: now,
            etag: None,
            posix: PosixMeta::default(),
        }
    }
}

/// How long a "does not exist" answer is trusted.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(1);

/// A bounded LRU of paths to values that expire; the expiry logic both
/// caches share.
struct TtlMap<V> {
    map: Mutex<LruCache<SmhPath, (V, Instant)>>,
}

impl<V: Clone> TtlMap<V> {
    fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The value if still fresh; an expired one is dropped.
    fn get(&self, path: &SmhPath) -> Option<V> {
        let mut m = self.map.lock();
        match m.get(path) {
            Some((v, exp)) if *exp > Instant::now() => Some(v.clone()),
            Some(_) => {
                m.pop(path);
                None
            }
            None => None,
        }
    }

    fn put(&self, path: SmhPath, v: V, ttl: Duration) {
        self.map.lock().put(path, (v, Instant::now() + ttl));
    }

    /// Changes a cached value in place, keeping its expiry.
    fn update(&self, path: &SmhPath, f: impl FnOnce(&mut V)) {
        if let Some((v, _)) = self.map.lock().get_mut(path) {
            f(v);
        }
    }

    fn remove(&self, path: &SmhPath) {
        self.map.lock().pop(path);
    }

    /// Drops `path` and everything below it (after a rename or rmdir).
    fn remove_tree(&self, path: &SmhPath) {
        let mut m = self.map.lock();
        let keys: Vec<SmhPath> = m
            .iter()
            .filter(|(k, _)| k.starts_with(path))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            m.pop(&k);
        }
    }
}

/// path -> `Some(meta)` or `None` (known missing), each with an expiry.
pub struct AttrCache {
    ttl: Duration,
    map: TtlMap<Option<Meta>>,
}

impl AttrCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            map: TtlMap::new(capacity),
        }
    }

    /// `Some(Some(meta))` fresh hit, `Some(None)` fresh negative, `None` unknown.
    pub fn get(&self, path: &SmhPath) -> Option<Option<Meta>> {
        self.map.get(path)
    }

    pub fn put(&self, path: SmhPath, meta: Meta) {
        if self.ttl.is_zero() {
            return;
        }
        self.map.put(path, Some(meta), self.ttl);
    }

    pub fn put_missing(&self, path: SmhPath) {
        self.map
            .put(path, None, NEGATIVE_TTL.min(self.ttl.max(NEGATIVE_TTL)));
    }

    pub fn remove(&self, path: &SmhPath) {
        self.map.remove(path);
    }

    /// Drops `path` and everything below it (after a rename or rmdir).
    pub fn remove_tree(&self, path: &SmhPath) {
        self.map.remove_tree(path);
    }
}

/// One directory's complete listing, in server order.
pub type Listing = Arc<Vec<(String, Meta)>>;

/// Directory path -> complete listing, for `dir_timeout`.
pub struct DirCache {
    ttl: Duration,
    map: TtlMap<Listing>,
}

impl DirCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            map: TtlMap::new(capacity),
        }
    }

    pub fn get(&self, dir: &SmhPath) -> Option<Listing> {
        self.map.get(dir)
    }

    pub fn put(&self, dir: SmhPath, listing: Listing) {
        if self.ttl.is_zero() {
            return;
        }
        self.map.put(dir, listing, self.ttl);
    }

    /// Our own change: add or replace `name` in a cached listing.
    pub fn upsert(&self, dir: &SmhPath, name: &str, meta: Meta) {
        self.map.update(dir, |l| {
            let v = Arc::make_mut(l);
            match v.iter_mut().find(|(n, _)| n == name) {
                Some(e) => e.1 = meta,
                None => v.push((name.to_string(), meta)),
            }
        });
    }

    /// Our own change: `name` left the directory.
    pub fn remove_entry(&self, dir: &SmhPath, name: &str) {
        self.map
            .update(dir, |l| Arc::make_mut(l).retain(|(n, _)| n != name));
    }

    /// Forgets the listing of `dir` (it changed on the server).
    pub fn invalidate(&self, dir: &SmhPath) {
        self.map.remove(dir);
    }

    pub fn remove_tree(&self, path: &SmhPath) {
        self.map.remove_tree(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = parse_time(Some("2021-07-24T10:34:32.250Z")).unwrap();
        assert_eq!(format_time(t), "2021-07-24T10:34:32.250Z");
        assert!(parse_time(Some("yesterday")).is_none());
    }

    #[test]
    fn attr_cache_ttl_and_negative() {
        let c = AttrCache::new(Duration::from_secs(60), 10);
        let p = SmhPath::parse("a").unwrap();
        assert!(c.get(&p).is_none());
        c.put_missing(p.clone());
        assert_eq!(c.get(&p), Some(None));
        c.put(p.clone(), Meta::new_file(3));
        assert_eq!(c.get(&p).unwrap().unwrap().size, 3);
        c.remove_tree(&SmhPath::root());
        assert!(c.get(&p).is_none());
        let z = AttrCache::new(Duration::ZERO, 10);
        z.put(p.clone(), Meta::new_file(1));
        assert!(z.get(&p).is_none());
    }

    #[test]
    fn dir_cache_own_changes() {
        let c = DirCache::new(Duration::from_secs(60), 10);
        let d = SmhPath::root();
        c.put(d.clone(), Arc::new(vec![("a".into(), Meta::new_file(1))]));
        c.upsert(&d, "b", Meta::new_dir());
        c.upsert(&d, "a", Meta::new_file(9));
        c.remove_entry(&d, "b");
        let l = c.get(&d).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].1.size, 9);
    }
}
