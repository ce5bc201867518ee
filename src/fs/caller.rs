//! Who is closing a file: the process behind a FUSE flush, looked up in
//! `/proc`, so the close rules (`openfile.rs`) can tell the opener's last
//! descriptor from a `dup2`ed original or a forked child's copy.

use std::path::Path;

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

/// Whether process `pid` still has a descriptor on inode `ino` of the
/// mount `mnt_id` (mount ids are unique system-wide). Unknown (no `/proc`
/// access) counts as "still held": the upload then happens at release,
/// never twice.
pub fn holds_inode(pid: u32, mnt_id: u64, ino: u64) -> bool {
    let dir = format!("/proc/{pid}/fdinfo");
    let Ok(entries) = std::fs::read_dir(Path::new(&dir)) else {
        return true;
    };
    let field = |info: &str, key: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        std::fs::read_to_string(e.path()).is_ok_and(|info| {
            field(&info, "ino:") == Some(ino) && field(&info, "mnt_id:") == Some(mnt_id)
        })
    })
}

/// The id of the mount at `mountpoint` as `/proc/self/mountinfo` lists it
/// (the last one: a mount stacked on top wins).
pub fn mount_id(mountpoint: &Path) -> Option<u64> {
    let want = std::fs::canonicalize(mountpoint).ok()?;
    // mountinfo escapes space, tab, newline and backslash as octal.
    let want = want
        .to_str()?
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .rev()
        .filter(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .find_map(|l| l.split(' ').next()?.parse().ok())
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
        let held = info
            .lines()
            .filter_map(|l| l.split(' ').next()?.parse().ok())
            .any(|id| holds_inode(me, id, ino));
        assert!(held);
        assert!(!holds_inode(me, u64::MAX, ino));
        let path = f.path().to_path_buf();
        drop(f);
        assert!(!path.exists());
        assert!(same_process(me, me));
    }
}
