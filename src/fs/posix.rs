//! POSIX attributes SMH has no fields for, kept as custom metadata
//! (`x-smh-meta-*`), the way s3fs keeps `x-amz-meta-mode`.
//!
//! Stored names (values are decimal strings): `mode` (the whole `st_mode`,
//! file type bits included, so a symlink or FIFO kept as a small file is
//! told apart from a regular one), `uid`, `gid`, `rdev`. A file another
//! client wrote has none of them: the mount's defaults apply (`umask`, the
//! mounting user). Unreadable values are ignored, never trusted.

use crate::smh::types::MetaData;

/// What the metadata says; `None` = not stored, use the mount's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PosixMeta {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub rdev: Option<u32>,
}

const MODE: &str = "mode";
const UID: &str = "uid";
const GID: &str = "gid";
const RDEV: &str = "rdev";

/// Bits a stored mode may carry: type, set-id, sticky and permissions.
const MODE_BITS: u32 = 0o177777;

impl PosixMeta {
    pub fn from_meta_data(m: Option<&MetaData>) -> Self {
        let Some(m) = m else {
            return Self::default();
        };
        let num = |k: &str| m.get(k).and_then(|v| v.trim().parse::<u32>().ok());
        PosixMeta {
            mode: num(MODE).filter(|v| v & !MODE_BITS == 0),
            uid: num(UID),
            gid: num(GID),
            rdev: num(RDEV),
        }
    }

    /// The metadata to send with an upload; names not set are left out.
    pub fn to_meta_data(&self) -> MetaData {
        let mut m = MetaData::new();
        for (k, v) in [
            (MODE, self.mode),
            (UID, self.uid),
            (GID, self.gid),
            (RDEV, self.rdev),
        ] {
            if let Some(v) = v {
                m.insert(k.to_string(), v.to_string());
            }
        }
        m
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The file type bits (`S_IFMT`) of a stored mode.
    pub fn file_type(&self) -> Option<u32> {
        self.mode.map(|m| m & libc::S_IFMT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_defaults() {
        let p = PosixMeta {
            mode: Some(libc::S_IFREG | 0o4755),
            uid: Some(1000),
            gid: Some(0),
            rdev: None,
        };
        let m = p.to_meta_data();
        assert_eq!(m.get("mode").map(String::as_str), Some("35309"));
        assert!(!m.contains_key("rdev"));
        assert_eq!(PosixMeta::from_meta_data(Some(&m)), p);
        assert!(PosixMeta::from_meta_data(None).is_empty());
    }

    #[test]
    fn garbage_is_ignored() {
        let mut m = MetaData::new();
        m.insert("mode".into(), "rwxr-xr-x".into());
        m.insert("uid".into(), "-1".into());
        m.insert("gid".into(), "4294967296".into());
        assert!(PosixMeta::from_meta_data(Some(&m)).is_empty());
        m.insert("mode".into(), "99999999".into());
        assert_eq!(PosixMeta::from_meta_data(Some(&m)).mode, None);
    }
}
