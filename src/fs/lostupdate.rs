//! No silent lost update (`-o update_conflict=`): a file opened for
//! modification remembers the server version its content started from
//! ([`OpenFile::base`]); before its upload begins, the server's version is
//! checked again. If another client replaced it meanwhile, the default
//! keeps both: the other version stays under the name, ours is stored next
//! to it as `name (conflict YYYY-MM-DD HHMM).ext` (logged at WARN).
//!
//! The same check runs again once the data is sent, just before the
//! confirm ([`before_confirm`], the `smh` confirm hook): a change made while
//! the parts were on their way is caught too.
//!
//! A leaf: the first check is `SmhFs::check_base` in `upload.rs`.
//!
//! Remaining race: SMH's confirm takes no precondition, so a change made
//! between the second check and the confirm (one round trip) is still
//! overwritten.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::read::Version;
use crate::smh::path::MAX_NAME_BYTES;
use crate::smh::{ConfirmAs, ConfirmHook, ConflictStrategy, SmhClient, SmhError, SmhPath};

/// What an upload does when the server's version changed since the file
/// was opened here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateConflict {
    /// Keep both: ours goes to a conflict copy next to the file.
    #[default]
    Copy,
    /// Do not upload: the close (fsync) fails with ESTALE, the data stays
    /// in `cache_dir` (journaled as failed, shown by `smhfs status`).
    Fail,
    /// Last writer wins (no check).
    Overwrite,
}

impl std::str::FromStr for UpdateConflict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "copy" => Ok(Self::Copy),
            "fail" => Ok(Self::Fail),
            "overwrite" => Ok(Self::Overwrite),
            other => Err(format!(
                "invalid update_conflict {other:?} (expected copy, fail or overwrite)"
            )),
        }
    }
}

/// Where an upload goes after the check.
pub(crate) enum Target {
    /// The file's own path, with the usual strategy.
    Same,
    /// A conflict copy (uploaded with `rename`, in case it exists).
    Copy(SmhPath),
}

/// `stem (conflict 2026-12-01 1530).ext` next to `path`.
pub(crate) fn conflict_name(path: &SmhPath, now: chrono::DateTime<chrono::Utc>) -> Option<SmhPath> {
    let name = path.name()?;
    let tag = format!(" (conflict {})", now.format("%Y-%m-%d %H%M"));
    let (stem, ext) = match name.rfind('.') {
        Some(d) if d > 0 => name.split_at(d),
        _ => (name, ""),
    };
    let mut stem = stem.to_string();
    while stem.len() + tag.len() + ext.len() > MAX_NAME_BYTES && stem.pop().is_some() {}
    path.parent()?.join(&format!("{stem}{tag}{ext}")).ok()
}

/// True when the server holds another version of `path` than `base`. A
/// deleted file or a directory there is no conflict: ours goes there.
pub(crate) async fn changed_since(
    client: &SmhClient,
    path: &SmhPath,
    base: &Version,
) -> Result<bool, SmhError> {
    let Some(info) = client.stat(path).await? else {
        return Ok(false);
    };
    if info.kind.is_dir() {
        return Ok(false);
    }
    let now = Version {
        etag: info.e_tag.clone(),
        crc64: info.crc64.clone(),
        size: info
            .size
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    };
    Ok(!now.same(base))
}

/// The second check, run by the upload just before its confirm (one
/// `?info`): `None` when there is nothing to check (no base version,
/// `overwrite`, or the upload already goes to a conflict copy). `switched`
/// is set when it sends the upload to a conflict copy.
pub(crate) fn before_confirm(
    client: &SmhClient,
    target: &Target,
    base: Option<&Version>,
    mode: UpdateConflict,
    switched: &Arc<AtomicBool>,
) -> Option<ConfirmHook> {
    let base = base?.clone();
    if mode == UpdateConflict::Overwrite || matches!(target, Target::Copy(_)) {
        return None;
    }
    let client = client.clone();
    let switched = switched.clone();
    let hook: ConfirmHook = Arc::new(move |plan: crate::smh::UploadPlan| {
        let client = client.clone();
        let base = base.clone();
        let switched = switched.clone();
        Box::pin(async move {
            let path = plan.path;
            if !changed_since(&client, &path, &base).await? {
                return Ok(ConfirmAs::Planned);
            }
            if mode == UpdateConflict::Fail {
                tracing::warn!(%path, "changed on the server while it was being uploaded; not overwriting it (update_conflict=fail): ESTALE, the data stays in cache_dir");
                return Ok(ConfirmAs::Refused(format!(
                    "{path} changed on the server while it was being uploaded"
                )));
            }
            let copy = conflict_name(&path, chrono::Utc::now())
                .ok_or_else(|| SmhError::InvalidPath(format!("no conflict name for {path}")))?;
            tracing::warn!(%path, conflict_copy = %copy, "changed on the server while it was being uploaded; keeping both: ours is stored as the conflict copy");
            switched.store(true, Ordering::Relaxed);
            Ok(ConfirmAs::Elsewhere(copy))
        })
    });
    Some(hook)
}

/// Upload strategy for a target.
pub(crate) fn strategy_for(target: &Target, usual: ConflictStrategy) -> ConflictStrategy {
    match target {
        Target::Same => usual,
        Target::Copy(_) => ConflictStrategy::Rename,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_copies_are_named_like_cloud_drives_do() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-01T15:30:09Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let p = |s: &str| SmhPath::parse(s).unwrap();
        assert_eq!(
            conflict_name(&p("d/shared.txt"), t).unwrap(),
            p("d/shared (conflict 2026-12-01 1530).txt")
        );
        assert_eq!(
            conflict_name(&p("Makefile"), t).unwrap(),
            p("Makefile (conflict 2026-12-01 1530)")
        );
        let long = "x".repeat(250) + ".txt";
        let c = conflict_name(&p(&long), t).unwrap();
        assert!(c.name().unwrap().len() <= MAX_NAME_BYTES);
        assert!(c.name().unwrap().ends_with("1530).txt"));
        assert!("fail".parse::<UpdateConflict>().is_ok());
        assert!("nope".parse::<UpdateConflict>().is_err());
    }
}
