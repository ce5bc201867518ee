//! When a cache directory, its journal entries and staged files are
//! trusted. Whatever lies in `cache_dir` is uploaded (and deleted once
//! confirmed), so another local user must not be able to plant or swap
//! anything there:
//!
//! * the directory is created 0700 by the mounting user if missing; an
//!   existing one must be a real directory (not a symlink), owned by the
//!   mounting user and not writable by group or others, else it is refused
//!   (and left as it is: no chmod);
//! * journal entries are opened with `O_NOFOLLOW` and must be regular files
//!   owned by the mounting user;
//! * the staged file an entry names must lie directly inside `cache_dir` and
//!   be a regular file (not a symlink) owned by the mounting user.
//!
//! An entry failing a check is logged and skipped: never uploaded, never
//! deleted.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Largest journal entry read (an entry is a few hundred bytes).
const MAX_ENTRY_BYTES: u64 = 1 << 20;

/// Why a cache directory or an entry in it is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum Untrusted {
    #[error("is a symbolic link")]
    Symlink,
    #[error("is not a directory")]
    NotDirectory,
    #[error("is not a regular file")]
    NotRegular,
    #[error("is owned by uid {owner}, not by the mounting user (uid {me})")]
    Owner { owner: u32, me: u32 },
    #[error("is writable by group or others (mode {0:04o})")]
    Writable(u32),
    #[error("does not name a file directly inside the cache directory")]
    Outside,
    #[error("is larger than {MAX_ENTRY_BYTES} bytes")]
    TooLarge,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn me() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// `open(path, O_NOFOLLOW | extra)`, a symlink reported as [`Untrusted::Symlink`].
fn open_nofollow(path: &Path, extra: i32) -> Result<File, Untrusted> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | extra)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Untrusted::Symlink,
            // With O_DIRECTORY a symlink is reported as "not a directory".
            Some(libc::ENOTDIR) if is_symlink(path) => Untrusted::Symlink,
            Some(libc::ENOTDIR) => Untrusted::NotDirectory,
            _ => Untrusted::Io(e),
        })
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn check_owner(meta: &std::fs::Metadata) -> Result<(), Untrusted> {
    if meta.uid() != me() {
        return Err(Untrusted::Owner {
            owner: meta.uid(),
            me: me(),
        });
    }
    Ok(())
}

/// Opens an existing cache directory and checks that it is ours; the
/// returned descriptor is the checked directory itself.
pub fn open_trusted_dir(dir: &Path) -> Result<File, Untrusted> {
    let f = open_nofollow(dir, libc::O_DIRECTORY)?;
    let meta = f.metadata()?;
    if !meta.is_dir() {
        return Err(Untrusted::NotDirectory);
    }
    check_owner(&meta)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Untrusted::Writable(mode));
    }
    Ok(f)
}

/// One line for the user: `cache_dir DIR REASON; ...`.
pub fn refusal(dir: &Path, why: &Untrusted) -> String {
    format!(
        "cache_dir {} {why}; refusing to use it (give a directory of your own, \
         mode 0700, or a path that does not exist yet)",
        dir.display()
    )
}

/// For a mount: creates `dir` (mode 0700) if missing, else checks that it
/// is ours (see the module doc); then makes it private (0700).
pub fn prepare(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cache_dir {}: {e}", dir.display()))?,
        Err(e) => return Err(format!("cache_dir {}: {e}", dir.display())),
        Ok(_) => {}
    }
    let f = open_trusted_dir(dir).map_err(|e| refusal(dir, &e))?;
    // SAFETY: fchmod on a descriptor we own (the checked directory, not
    // whatever the path may point at by now).
    if unsafe { libc::fchmod(f.as_raw_fd(), 0o700) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("cache_dir {}: {e}", dir.display()));
    }
    Ok(())
}

/// For `smhfs resume` and `smhfs status --cache-dir`: the directory must
/// exist and be ours.
pub fn verify(dir: &Path) -> Result<(), String> {
    open_trusted_dir(dir).map(drop).map_err(|e| match e {
        Untrusted::Io(io) => format!("cannot open cache_dir {}: {io}", dir.display()),
        e => refusal(dir, &e),
    })
}

/// For `smhfs status --cache-dir`: like [`verify`], but a directory that
/// does not exist (nothing was ever staged) is fine.
pub fn verify_if_present(dir: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        _ => verify(dir),
    }
}

/// Reads a journal entry file: not through a symlink, a regular file of
/// ours, of a sane size.
pub fn read_entry(path: &Path) -> Result<Vec<u8>, Untrusted> {
    let f = open_nofollow(path, libc::O_NONBLOCK)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(Untrusted::NotRegular);
    }
    check_owner(&meta)?;
    if meta.len() > MAX_ENTRY_BYTES {
        return Err(Untrusted::TooLarge);
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_ENTRY_BYTES).read_to_end(&mut out)?;
    Ok(out)
}

/// The staged file a journal entry names, as a path inside `cache_dir`:
/// a plain file name, or a path whose directory is `cache_dir` itself
/// (entries record the full path). Anything else (`..`, another
/// directory, a symlink, a file of another user) is refused. A missing
/// file is not refused here: the caller reports it.
pub fn staged_in(cache_dir: &Path, staged: &Path) -> Result<PathBuf, Untrusted> {
    let name = match staged.parent() {
        Some(p) if p.as_os_str().is_empty() => staged.file_name(),
        Some(p) => {
            let same = match (std::fs::canonicalize(p), std::fs::canonicalize(cache_dir)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            same.then(|| staged.file_name()).flatten()
        }
        None => None,
    };
    let name = name.ok_or(Untrusted::Outside)?;
    let plain = Path::new(name).components().count() == 1
        && matches!(
            Path::new(name).components().next(),
            Some(Component::Normal(_))
        );
    if !plain {
        return Err(Untrusted::Outside);
    }
    let path = cache_dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => Err(Untrusted::Symlink),
        Ok(m) if !m.is_file() => Err(Untrusted::NotRegular),
        Ok(m) => check_owner(&m).map(|()| path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn dir_rules() {
        let t = tempfile::tempdir().unwrap();
        let fresh = t.path().join("a/b");
        prepare(&fresh).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o700);
        // Ours and 0755: accepted and made private.
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o755);
        prepare(&open).unwrap();
        assert_eq!(std::fs::metadata(&open).unwrap().mode() & 0o777, 0o700);
        // World-writable: refused, left as it is.
        chmod(&open, 0o777);
        let e = prepare(&open).unwrap_err();
        assert!(e.contains("writable by group or others"), "{e}");
        assert_eq!(std::fs::metadata(&open).unwrap().mode() & 0o777, 0o777);
        // A symlink to a directory of ours: refused, target untouched.
        let target = t.path().join("target");
        std::fs::create_dir(&target).unwrap();
        chmod(&target, 0o755);
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(prepare(&link).unwrap_err().contains("symbolic link"));
        assert!(verify(&link).unwrap_err().contains("symbolic link"));
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o755);
        let file = t.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(prepare(&file).unwrap_err().contains("not a directory"));
        assert!(verify(&t.path().join("missing"))
            .unwrap_err()
            .contains("cannot open"));
        verify_if_present(&t.path().join("missing")).unwrap();
        assert!(verify_if_present(&link).is_err());
    }

    #[test]
    fn staged_paths() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        std::fs::write(dir.join("staged-1"), b"x").unwrap();
        assert_eq!(
            staged_in(dir, Path::new("staged-1")).unwrap(),
            dir.join("staged-1")
        );
        assert_eq!(
            staged_in(dir, &dir.join("staged-1")).unwrap(),
            dir.join("staged-1")
        );
        assert_eq!(
            staged_in(dir, Path::new("staged-new")).unwrap(),
            dir.join("staged-new")
        );
        for bad in ["/etc/passwd", "../x", "sub/x", "..", "/", ""] {
            assert!(
                matches!(staged_in(dir, Path::new(bad)), Err(Untrusted::Outside)),
                "{bad}"
            );
        }
        assert!(matches!(
            staged_in(dir, &dir.join("sub/../staged-1")),
            Err(Untrusted::Outside)
        ));
        std::os::unix::fs::symlink("/etc/passwd", dir.join("staged-l")).unwrap();
        assert!(matches!(
            staged_in(dir, Path::new("staged-l")),
            Err(Untrusted::Symlink)
        ));
        std::fs::create_dir(dir.join("staged-d")).unwrap();
        assert!(matches!(
            staged_in(dir, Path::new("staged-d")),
            Err(Untrusted::NotRegular)
        ));
    }

    #[test]
    fn entries_not_through_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real.journal");
        std::fs::write(&real, b"{}").unwrap();
        assert_eq!(read_entry(&real).unwrap(), b"{}");
        let link = t.path().join("link.journal");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(matches!(read_entry(&link), Err(Untrusted::Symlink)));
        assert!(matches!(
            read_entry(t.path()),
            Err(Untrusted::NotRegular) | Err(Untrusted::Io(_))
        ));
    }
}
