//! Kernel mount calls shared by the FUSE adapter (unmount at a signal) and
//! the mount command (detaching a dead mount left by a killed daemon).

use std::path::Path;

/// Detaches the mount at `dir` lazily (`umount2(MNT_DETACH)`: open files
/// finish first); not root, `fusermount3 -uz` may still detach our own mount.
pub fn lazy_detach(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    let ok = std::process::Command::new("fusermount3")
        .arg("-uz")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(err)
    }
}
