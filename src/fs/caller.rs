//! Who is closing a file: the process behind a FUSE flush, looked up in
//! `/proc`, so the close rules (`openfile.rs`) can tell the opener's last
//! descriptor from a `dup2`ed original or a forked child's copy.

use std::ffi::{CString, OsStr};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{openat, readlinkat_raw, Dir, Mode, OFlags, CWD};

/// The thread-group id of `pid` (FUSE requests carry a thread's id).
fn tgid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether two request pids belong to the same process.
pub fn same_process(a: u32, b: u32) -> bool {
    a == b || matches!((tgid(a), tgid(b)), (Some(x), Some(y)) if x == y)
}

/// This mount as the kernel names it: its id (unique system-wide) and the
/// canonical mountpoint, which is how `/proc/PID/fd` links spell our files.
#[derive(Debug, Clone)]
pub struct MountRef {
    pub id: u64,
    pub path: PathBuf,
}

impl MountRef {
    /// The mount at `mountpoint` as `/proc/self/mountinfo` lists it (the
    /// last one: a mount stacked on top wins).
    pub fn find(mountpoint: &Path) -> Option<MountRef> {
        let path = std::fs::canonicalize(mountpoint).ok()?;
        // mountinfo escapes space, tab, newline and backslash as octal.
        let want = path
            .to_str()?
            .replace('\\', "\\134")
            .replace(' ', "\\040")
            .replace('\t', "\\011")
            .replace('\n', "\\012");
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let id = info
            .lines()
            .rev()
            .filter(|l| l.split(' ').nth(4) == Some(want.as_str()))
            .find_map(|l| l.split(' ').next()?.parse().ok())?;
        Some(MountRef { id, path })
    }
}

/// Whether process `pid` still has a descriptor on inode `ino` of the
/// mount. Unknown (no `/proc` access) counts as "still held": the upload
/// then happens at release, never twice.
///
/// Runs at every close of a written file, so it is kept cheap: one open
/// of `/proc/PID/fd`, read through the same descriptor, and one
/// `readlinkat` per descriptor relative to it (no path walk through `/proc`
/// per descriptor, and it never enters a filesystem); the exact `fdinfo`
/// check (mount id and inode) only for descriptors whose path lies under
/// the mountpoint. A descriptor opened through a bind mount of this mount
/// elsewhere is not seen.
pub fn holds_inode(pid: u32, mount: &MountRef, ino: u64) -> bool {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let Ok(mut dir) =
        openat(CWD, format!("/proc/{pid}/fd"), flags, Mode::empty()).and_then(Dir::new)
    else {
        return true;
    };
    // The names first: the listing borrows the directory mutably.
    let fds: Vec<CString> = dir
        .by_ref()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    let Ok(dirfd) = dir.fd() else {
        return true;
    };
    // Not zeroed: readlinkat says how much it filled.
    let mut target = [MaybeUninit::<u8>::uninit(); libc::PATH_MAX as usize];
    let root = mount.path.as_os_str().as_bytes();
    fds.iter().any(|fd| {
        // Unreadable or truncated: let fdinfo decide.
        let under = readlinkat_raw(dirfd, fd.as_c_str(), &mut target)
            .map_or(true, |(link, rest)| {
                rest.is_empty() || lies_under(link, root)
            });
        under && fdinfo_names(pid, OsStr::from_bytes(fd.as_bytes()), mount.id, ino)
    })
}

/// Whether the kernel's (normalised, absolute) `path` is `root` or below
/// it: `Path::starts_with` on bytes, without splitting into components.
fn lies_under(path: &[u8], root: &[u8]) -> bool {
    root == b"/" || (path.starts_with(root) && matches!(path.get(root.len()), None | Some(b'/')))
}

/// Whether `/proc/PID/fdinfo/FD` names inode `ino` on mount `mnt_id`.
fn fdinfo_names(pid: u32, fd: &std::ffi::OsStr, mnt_id: u64, ino: u64) -> bool {
    let path = Path::new("/proc")
        .join(pid.to_string())
        .join("fdinfo")
        .join(fd);
    let Ok(info) = std::fs::read_to_string(path) else {
        return false;
    };
    let field = |key: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    field("ino:") == Some(ino) && field("mnt_id:") == Some(mnt_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sees_own_descriptors() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let ino = f.as_file().metadata().unwrap().ino();
        let me = std::process::id();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        // Some mount's id; the temp file's own mount must be among them.
        let at = |id, path: &str| MountRef {
            id,
            path: PathBuf::from(path),
        };
        let held = info
            .lines()
            .filter_map(|l| l.split(' ').next()?.parse().ok())
            .any(|id| holds_inode(me, &at(id, "/"), ino));
        assert!(held);
        assert!(!holds_inode(me, &at(u64::MAX, "/"), ino));
        // Descriptors outside the mountpoint are not looked at.
        let dir = std::fs::canonicalize(f.path().parent().unwrap()).unwrap();
        let other = dir.join("elsewhere");
        let ids: Vec<u64> = info
            .lines()
            .filter_map(|l| l.split(' ').next()?.parse().ok())
            .collect();
        assert!(ids
            .iter()
            .all(|&id| !holds_inode(me, &at(id, other.to_str().unwrap()), ino)));
        let path = f.path().to_path_buf();
        drop(f);
        assert!(!path.exists());
        assert!(same_process(me, me));
    }

    #[test]
    fn paths_under_the_mountpoint() {
        for (path, root, want) in [
            ("/mnt/s/a.txt", "/mnt/s", true),
            ("/mnt/s", "/mnt/s", true),
            ("/mnt/s/d/a (deleted)", "/mnt/s", true),
            ("/mnt/sx/a.txt", "/mnt/s", false),
            ("/mnt", "/mnt/s", false),
            ("pipe:[42]", "/mnt/s", false),
            ("/anything", "/", true),
        ] {
            let by_components = Path::new(path).starts_with(root);
            assert_eq!(
                lies_under(path.as_bytes(), root.as_bytes()),
                want,
                "{path} under {root}"
            );
            assert_eq!(by_components, want, "{path} under {root} (Path)");
        }
    }
}
