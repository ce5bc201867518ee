//! Compact forms of what the caches hold per entry (issue 15, W8): a
//! listing of 200,000 entries fills the attribute cache, the listing cache
//! and the server-inode map, so bytes per entry are the mount's memory.
//!
//! * [`PathKey`]: a path as one string (`dir/name`), one allocation where
//!   an [`SmhPath`] (a vector of strings) makes one per segment and more.
//! * [`Name`]: one name in 24 bytes, inline up to 22 bytes (no allocation
//!   per inode-table node for most names).
//! * [`PackedMeta`]: a [`Meta`] in 64 bytes (times as seconds and
//!   nanoseconds, strings boxed, the rarely set mode/owner and link target
//!   behind one optional box) where `Meta` takes 128.
//!
//! The rest of the crate works with `SmhPath` and `Meta`; only the caches
//! convert, at their edges.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::meta::{Kind, Meta};
use super::posix::PosixMeta;
use crate::smh::SmhPath;

/// A path's segments joined by `/` (names never hold one, see
/// `validate_name`); the root is the empty key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathKey(Box<str>);

impl PathKey {
    pub fn of(p: &SmhPath) -> Self {
        PathKey(p.segments().join("/").into())
    }

    pub fn path(&self) -> SmhPath {
        if self.0.is_empty() {
            return SmhPath::root();
        }
        SmhPath::from_segments(self.0.split('/').map(str::to_string).collect()).unwrap_or_default()
    }

    /// This path and its ancestors below the root, shortest first
    /// (`a`, `a/b`, `a/b/c`).
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        let s = &*self.0;
        s.match_indices('/')
            .map(move |(i, _)| &s[..i])
            .chain((!s.is_empty()).then_some(s))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_inner(self) -> Box<str> {
        self.0
    }

    /// Whether this is `dir` or below it (as `SmhPath::starts_with`).
    pub fn within(&self, dir: &PathKey) -> bool {
        let (me, d) = (&*self.0, &*dir.0);
        d.is_empty() || me == d || (me.starts_with(d) && me.as_bytes().get(d.len()) == Some(&b'/'))
    }
}

/// Bytes a [`Name`] keeps inline.
const INLINE: usize = 22;

/// A name, inline when short (as most are), else boxed; reads as `&str`.
#[derive(Debug, Clone)]
pub enum Name {
    Inline { len: u8, bytes: [u8; INLINE] },
    Boxed(Box<str>),
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Name::Boxed(s.into())
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            // Copied from a `&str` whole: a valid UTF-8 prefix.
            Name::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            Name::Boxed(s) => s,
        }
    }
}

/// A time as whole seconds since the epoch (negative before it, floored)
/// and the nanoseconds after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    secs: i64,
    nanos: u32,
}

fn pack_time(t: SystemTime) -> Stamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Stamp {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        },
        Err(e) => {
            let d = e.duration();
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            match n {
                0 => Stamp { secs: -s, nanos: 0 },
                n => Stamp {
                    secs: -s - 1,
                    nanos: 1_000_000_000 - n,
                },
            }
        }
    }
}

fn unpack_time(secs: i64, nanos: u32) -> SystemTime {
    let n = Duration::from_nanos(nanos as u64);
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64) + n
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + n
    }
}

/// What few entries have: stored mode/owner, a native link's target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rare {
    posix: PosixMeta,
    link_to: Option<Box<str>>,
}

/// A [`Meta`] as the caches keep it; [`PackedMeta::meta`] gives it back
/// unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedMeta {
    size: u64,
    mtime_secs: i64,
    ctime_secs: i64,
    mtime_nanos: u32,
    ctime_nanos: u32,
    etag: Option<Box<str>>,
    rare: Option<Box<Rare>>,
    kind: Kind,
}

impl PackedMeta {
    pub fn new(m: &Meta) -> Self {
        let (mt, ct) = (pack_time(m.mtime), pack_time(m.ctime));
        let rare = (!m.posix.is_empty() || m.link_to.is_some()).then(|| {
            Box::new(Rare {
                posix: m.posix,
                link_to: m.link_to.as_deref().map(Into::into),
            })
        });
        PackedMeta {
            size: m.size,
            mtime_secs: mt.secs,
            ctime_secs: ct.secs,
            mtime_nanos: mt.nanos,
            ctime_nanos: ct.nanos,
            etag: m.etag.as_deref().map(Into::into),
            rare,
            kind: m.kind,
        }
    }

    pub fn meta(&self) -> Meta {
        Meta {
            kind: self.kind,
            size: self.size,
            mtime: unpack_time(self.mtime_secs, self.mtime_nanos),
            ctime: unpack_time(self.ctime_secs, self.ctime_nanos),
            etag: self.etag.as_deref().map(str::to_string),
            posix: self.rare.as_ref().map(|r| r.posix).unwrap_or_default(),
            link_to: self
                .rare
                .as_ref()
                .and_then(|r| r.link_to.as_deref())
                .map(str::to_string),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
}

impl From<&Meta> for PackedMeta {
    fn from(m: &Meta) -> Self {
        PackedMeta::new(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert!(std::mem::size_of::<PackedMeta>() <= 64);
        assert_eq!(std::mem::size_of::<Option<PackedMeta>>(), 64);
        assert_eq!(std::mem::size_of::<PathKey>(), 16);
        assert_eq!(std::mem::size_of::<Name>(), 24);
    }

    #[test]
    fn names() {
        for s in [
            "",
            "e00001.bin",
            "exactly-22-bytes-name!",
            "a name of more than twenty-two bytes",
            "ünïcødé",
        ] {
            assert_eq!(&*Name::from(s), s);
        }
        assert!(matches!(
            Name::from("exactly-22-bytes-name!"),
            Name::Inline { .. }
        ));
    }

    #[test]
    fn meta_round_trips() {
        let mut m = Meta::new_file(42);
        m.etag = Some("\"abc\"".into());
        assert_eq!(PackedMeta::new(&m).meta(), m);
        m.posix.mode = Some(0o100600);
        m.link_to = Some("1234".into());
        m.kind = Kind::Symlink;
        assert_eq!(PackedMeta::new(&m).meta(), m);
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::new(5, 250),
            UNIX_EPOCH - Duration::from_secs(7),
            UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_999),
        ] {
            let s = pack_time(t);
            assert_eq!(unpack_time(s.secs, s.nanos), t, "{t:?}");
        }
    }

    #[test]
    fn keys() {
        let p = |s: &str| SmhPath::parse(s).unwrap();
        let k = PathKey::of(&p("a/bc/d"));
        assert_eq!(k.path(), p("a/bc/d"));
        assert_eq!(PathKey::of(&SmhPath::root()).path(), SmhPath::root());
        assert_eq!(k.prefixes().collect::<Vec<_>>(), ["a", "a/bc", "a/bc/d"]);
        assert_eq!(PathKey::of(&SmhPath::root()).prefixes().count(), 0);
        assert!(k.within(&PathKey::of(&p("a/bc"))));
        assert!(k.within(&PathKey::of(&p("a/bc/d"))));
        assert!(k.within(&PathKey::of(&SmhPath::root())));
        assert!(!k.within(&PathKey::of(&p("a/b"))));
        assert!(!PathKey::of(&p("a")).within(&k));
    }
}
