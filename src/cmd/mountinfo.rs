//! Mount points: what `/proc/self/mountinfo` says is mounted where, dead
//! smhfs mounts left by a killed daemon, and mount(8)'s `-N NAMESPACE`.

use std::path::{Path, PathBuf};

/// The mount point must exist, be a directory and not be mounted on yet. A
/// dead smhfs mount left by a killed daemon (ENOTCONN) is detached first.
pub fn check_mountpoint(dir: &Path) -> Result<PathBuf, String> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("mount point {shown} is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("mount point {shown} does not exist"))
        }
        // ENOTCONN; ECONNABORTED right after the daemon died.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTCONN | libc::ECONNABORTED)) => {
            // The path cannot be canonicalized through a dead mount: use it
            // as given, made absolute.
            let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            let fstype = mount_at(&abs).unwrap_or_default();
            if fstype != "fuse.smhfs" {
                return Err(format!(
                    "mount point {shown} is a dead FUSE mount ({fstype}: transport endpoint is \
                     not connected); run: fusermount3 -u {shown}"
                ));
            }
            crate::fs::mountsys::lazy_detach(&abs).map_err(|e| {
                format!(
                    "mount point {shown} is a dead smhfs mount (its daemon died) and detaching \
                     it failed ({e}); run: fusermount3 -u {shown}"
                )
            })?;
            eprintln!("smhfs: {shown} was a dead smhfs mount (its daemon died); detached it");
            return check_mountpoint(dir);
        }
        Err(e) => return Err(format!("mount point {shown}: {e}")),
    }
    // Absolute, so unmounting works whatever the working directory becomes.
    let abs = std::fs::canonicalize(dir).map_err(|e| format!("mount point {shown}: {e}"))?;
    if let Some(t) = mount_at(&abs) {
        return Err(format!(
            "mount point {shown} is busy: already mounted ({t}); unmount it first"
        ));
    }
    Ok(abs)
}

/// The type of the topmost mount whose mount point is exactly `dir`.
pub fn mount_at(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = dir.to_str()?;
    let mut found = None;
    for l in info.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.len() > 4 && unescape_mountinfo(f[4]) == want {
            found = f.get(sep + 1).map(|t| t.to_string());
        }
    }
    found
}

/// mountinfo writes space, tab, newline and backslash as `\\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// mount(8)'s `-N NS`: a pid or a path to a mount namespace file.
pub fn enter_mount_namespace(ns: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let path = if ns.chars().all(|c| c.is_ascii_digit()) {
        format!("/proc/{ns}/ns/mnt")
    } else {
        ns.to_string()
    };
    let f = std::fs::File::open(&path).map_err(|e| format!("namespace {path}: {e}"))?;
    // SAFETY: setns takes an fd we own (open for the call) and no pointers;
    // still single-threaded here, as a mount namespace switch requires.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "cannot enter namespace {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo(r"/mnt/x\134y"), r"/mnt/x\y");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(mount_at(Path::new("/proc")).as_deref(), Some("proc"));
    }
}
