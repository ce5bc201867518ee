//! Symlink strings and special files as SMH holds them: the pure rules
//! (no I/O), used by the caches (`cache.rs`) and the operations
//! (`links.rs`).
//!
//! * An **encoded symlink** is an SMH file whose content is exactly the
//!   link string (its bytes) and whose metadata `mode` is
//!   `S_IFLNK | 0777` (s3fs stores its links the same way, so other
//!   clients see a small file holding the target).
//! * A **native symlink** is an SMH item of `type: symlink`; smhfs makes
//!   one only for a string it can give back exactly: relative, canonical,
//!   naming an existing regular file inside the mounted directory
//!   ([`canonical_target`]). Its string is then computed from the target's
//!   current path ([`relative`]).
//! * A **special file** (FIFO, socket, character or block device) is an
//!   empty SMH file whose `mode` has that type and whose `rdev` is the
//!   device number (the FUSE/Linux `new_encode_dev` form).

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use lru::LruCache;
use parking_lot::Mutex;

use crate::smh::SmhPath;

/// Longest link string: `PATH_MAX` (4096) with its terminating NUL.
pub const MAX_LINK_BYTES: usize = 4095;

/// The stored mode of an encoded symlink.
pub const LINK_MODE: u32 = libc::S_IFLNK | 0o777;

/// Whether `t` (`S_IFMT` bits) is a type kept as an empty marked file.
pub fn is_special_type(t: u32) -> bool {
    matches!(
        t,
        libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK
    )
}

/// Why a link string cannot be stored at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLink {
    /// Empty (POSIX: ENOENT).
    Empty,
    /// Longer than a path may be (ENAMETOOLONG).
    TooLong,
}

/// Checks a string given to symlink(2).
pub fn check_link(target: &[u8]) -> Result<(), BadLink> {
    if target.is_empty() {
        Err(BadLink::Empty)
    } else if target.len() > MAX_LINK_BYTES {
        Err(BadLink::TooLong)
    } else {
        Ok(())
    }
}

/// The canonical relative string from directory `from` to `to` (both
/// paths in the space): `../` once per level up to the common ancestor,
/// then the rest of `to`. `None` when `to` is `from` or above it (no
/// file can be there).
pub fn relative(from: &SmhPath, to: &SmhPath) -> Option<String> {
    let (f, t) = (from.segments(), to.segments());
    let common = f.iter().zip(t).take_while(|(a, b)| a == b).count();
    if common == t.len() {
        return None;
    }
    let mut out = "../".repeat(f.len() - common);
    out.push_str(&t[common..].join("/"));
    Some(out)
}

/// The file a link string in directory `dir` names, if the string is
/// exactly the canonical relative form ([`relative`]) of a path inside
/// `root`: only then can a native link give it back unchanged. Absolute
/// strings, `.`, inner `..`, `//`, a trailing `/`, or a path leaving
/// `root` give `None` (the link is encoded).
pub fn canonical_target(dir: &SmhPath, target: &str, root: &SmhPath) -> Option<SmhPath> {
    if target.starts_with('/') || target.ends_with('/') {
        return None;
    }
    let mut segs: Vec<String> = dir.segments().to_vec();
    for part in target.split('/') {
        match part {
            ".." => {
                segs.pop()?;
            }
            name => segs.push(name.to_string()),
        }
    }
    let path = SmhPath::from_segments(segs).ok()?;
    if !path.starts_with(root) || path == *root {
        return None;
    }
    (relative(dir, &path)? == target).then_some(path)
}

/// Link strings this mount read or wrote, by the link's path, with what
/// they are valid for: the encoded link's eTag (content never changes
/// under one), or an expiry for a native link (its target may move).
pub struct LinkCache {
    map: Mutex<LruCache<SmhPath, (Validity, Vec<u8>)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Validity {
    ETag(String),
    Until(Instant),
}

impl Default for LinkCache {
    fn default() -> Self {
        Self {
            map: Mutex::new(LruCache::new(
                NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl LinkCache {
    /// The string of an encoded link at `path` whose content has `etag`.
    pub fn encoded(&self, path: &SmhPath, etag: &str) -> Option<Vec<u8>> {
        match self.map.lock().get(path) {
            Some((Validity::ETag(e), s)) if e == etag => Some(s.clone()),
            _ => None,
        }
    }

    pub fn put_encoded(&self, path: SmhPath, etag: String, s: Vec<u8>) {
        self.map.lock().put(path, (Validity::ETag(etag), s));
    }

    /// The string of a native link at `path`, if still fresh.
    pub fn native(&self, path: &SmhPath) -> Option<Vec<u8>> {
        match self.map.lock().get(path) {
            Some((Validity::Until(t), s)) if *t > Instant::now() => Some(s.clone()),
            _ => None,
        }
    }

    pub fn put_native(&self, path: SmhPath, s: Vec<u8>, ttl: Duration) {
        self.map
            .lock()
            .put(path, (Validity::Until(Instant::now() + ttl), s));
    }

    /// The last string of a native link this mount knew, however old
    /// (for a link whose target is gone).
    pub fn last_native(&self, path: &SmhPath) -> Option<Vec<u8>> {
        match self.map.lock().get(path) {
            Some((Validity::Until(_), s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// `path` is gone (unlinked, renamed away): its string is forgotten,
    /// and those of native links are stale (their target may have been
    /// it, or below it).
    pub fn gone(&self, path: &SmhPath) {
        let mut m = self.map.lock();
        m.pop(path);
        let now = Instant::now();
        for (_, (v, _)) in m.iter_mut() {
            if let Validity::Until(t) = v {
                *t = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SmhPath {
        SmhPath::parse(s).unwrap()
    }

    #[test]
    fn link_strings() {
        assert_eq!(check_link(b""), Err(BadLink::Empty));
        assert_eq!(check_link(&[b'a'; 4096]), Err(BadLink::TooLong));
        assert_eq!(check_link(&[b'a'; 4095]), Ok(()));
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(&p("a/b"), &p("a/c/d")).unwrap(), "../c/d");
        assert_eq!(relative(&p("a"), &p("a/x")).unwrap(), "x");
        assert_eq!(relative(&p(""), &p("x/y")).unwrap(), "x/y");
        assert_eq!(relative(&p("a/b/c"), &p("z")).unwrap(), "../../../z");
        assert_eq!(relative(&p("a/b"), &p("a")), None);
    }

    #[test]
    fn only_canonical_strings_are_native() {
        let root = p("m");
        let dir = p("m/d");
        assert_eq!(canonical_target(&dir, "x.txt", &root), Some(p("m/d/x.txt")));
        assert_eq!(canonical_target(&dir, "../e/y", &root), Some(p("m/e/y")));
        assert_eq!(
            canonical_target(&p("m/d/e"), "../../y", &root),
            Some(p("m/y"))
        );
        for s in [
            "/etc/passwd",
            "./x.txt",
            "a//b",
            "a/",
            "../d/x.txt",
            "a/../b",
            "../../outside",
            "..",
            ".",
            "",
            "a/./b",
        ] {
            assert_eq!(canonical_target(&dir, s, &root), None, "{s:?}");
        }
        // Leaving the mounted directory, even to come back, is not native.
        assert_eq!(canonical_target(&p("m"), "../m/x", &root), None);
    }

    #[test]
    fn cache_validity() {
        let c = LinkCache::default();
        c.put_encoded(p("l"), "e1".into(), b"t".to_vec());
        assert_eq!(c.encoded(&p("l"), "e1").unwrap(), b"t");
        assert!(c.encoded(&p("l"), "e2").is_none());
        c.put_native(p("n"), b"x".to_vec(), Duration::from_secs(60));
        assert_eq!(c.native(&p("n")).unwrap(), b"x");
        c.gone(&p("other"));
        assert!(c.native(&p("n")).is_none());
        assert_eq!(c.last_native(&p("n")).unwrap(), b"x");
        c.gone(&p("n"));
        assert!(c.last_native(&p("n")).is_none());
        assert!(c.encoded(&p("l"), "e1").is_some());
        c.put_native(p("n"), b"x".to_vec(), Duration::ZERO);
        assert!(c.native(&p("n")).is_none());
    }
}
