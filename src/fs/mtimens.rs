//! The exact mtime: SMH keeps `localModificationTime` in milliseconds,
//! `rsync` compares nanoseconds, so the mount also stores the nanoseconds
//! as custom metadata (`x-smh-meta-mtime`), trusted only while it agrees
//! with `localModificationTime` (another client may change that).

use std::time::{Duration, SystemTime};

use crate::smh::types::MetaData;

/// Metadata name of the exact mtime in nanoseconds since the epoch
/// (`localModificationTime` has milliseconds; `rsync` compares nanoseconds).
const MTIME_NS: &str = "mtime";

/// The metadata that records `t` exactly.
pub(crate) fn mtime_meta(t: SystemTime, m: &mut MetaData) {
    if let Ok(d) = t.duration_since(SystemTime::UNIX_EPOCH) {
        m.insert(MTIME_NS.into(), d.as_nanos().to_string());
    }
}

/// The stored exact mtime if it agrees with `coarse` (the server's
/// `localModificationTime`, which another client may have changed since:
/// then `coarse` wins).
pub(crate) fn precise_mtime(m: Option<&MetaData>, coarse: SystemTime) -> SystemTime {
    let exact = m
        .and_then(|m| m.get(MTIME_NS))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|ns| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns));
    match exact {
        Some(t) if within_ms(t, coarse) => t,
        _ => coarse,
    }
}

fn within_ms(a: SystemTime, b: SystemTime) -> bool {
    let d = a
        .duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or_default();
    d < Duration::from_millis(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_mtime_only_when_it_agrees() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(978_307_200, 123_456_789);
        let mut m = MetaData::new();
        mtime_meta(t, &mut m);
        let coarse = SystemTime::UNIX_EPOCH + Duration::from_millis(978_307_200_123);
        assert_eq!(precise_mtime(Some(&m), coarse), t);
        let other = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        assert_eq!(precise_mtime(Some(&m), other), other);
        assert_eq!(precise_mtime(None, coarse), coarse);
    }
}
