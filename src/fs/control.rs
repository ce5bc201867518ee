//! The daemon's status socket: how `smhfs status MOUNTPOINT` asks a running
//! mount what it is uploading.
//!
//! Extended attributes were the first channel, but a filesystem that answers
//! `getxattr` at all is asked for `security.*` and ACL names on every entry
//! `ls -l` shows (two local round trips per file, most of a warm listing's
//! time). With the socket, getxattr answers ENOSYS once and the kernel stops
//! asking. The socket's name is derived from the mount point, so the client
//! needs nothing but the path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::SmhFs;

/// Where sockets may live, most preferred first: root's `/run/smhfs`, the
/// user's runtime directory, a per-user directory under the temp dir.
fn socket_dirs() -> Vec<PathBuf> {
    // SAFETY: geteuid takes no pointers and always succeeds.
    let uid = unsafe { libc::geteuid() };
    let mut dirs = Vec::new();
    if uid == 0 {
        dirs.push(PathBuf::from("/run/smhfs"));
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(x).join("smhfs"));
    }
    dirs.push(std::env::temp_dir().join(format!("smhfs-{uid}")));
    dirs
}

/// The socket file name for a mount point (a hash: paths can be long).
fn socket_name(mountpoint: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let h = Sha256::digest(mountpoint.as_os_str().as_bytes());
    format!("{}.sock", &hex::encode(h)[..24])
}

/// The mount point as both sides name it: canonical when reachable.
fn canonical(mountpoint: &Path) -> PathBuf {
    std::fs::canonicalize(mountpoint)
        .or_else(|_| std::path::absolute(mountpoint))
        .unwrap_or_else(|_| mountpoint.to_path_buf())
}

/// A bound status socket; the file is removed on drop.
pub struct ControlSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the status socket of `mountpoint` and answers each connection with
/// one JSON snapshot ([`SmhFs::status_report`]).
pub fn serve(
    fs: Arc<SmhFs>,
    mountpoint: &Path,
    rt: &tokio::runtime::Handle,
) -> std::io::Result<ControlSocket> {
    use std::os::unix::fs::PermissionsExt;
    let name = socket_name(&canonical(mountpoint));
    let mut last = std::io::Error::other("no directory for the status socket");
    for dir in socket_dirs() {
        if let Err(e) = std::fs::create_dir_all(&dir) {
            last = e;
            continue;
        }
        let path = dir.join(&name);
        // A socket left by a daemon that died: nobody answers on it.
        let _ = std::fs::remove_file(&path);
        let _guard = rt.enter();
        let listener = match tokio::net::UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                last = e;
                continue;
            }
        };
        // Upload paths are private: owner (and root) only.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let task = rt.spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    continue;
                };
                let mut report = fs.status_report();
                report.metrics = crate::obs::snapshot();
                let body = serde_json::to_string(&report).unwrap_or_default();
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        conn.write_all(body.as_bytes()).await?;
                        conn.shutdown().await
                    })
                    .await;
                });
            }
        });
        return Ok(ControlSocket { path, task });
    }
    Err(last)
}

/// Asks the daemon mounted at `mountpoint` for its status snapshot.
pub fn query(mountpoint: &Path) -> Result<serde_json::Value, String> {
    let name = socket_name(&canonical(mountpoint));
    let mut last = None;
    for dir in socket_dirs() {
        let path = dir.join(&name);
        match std::os::unix::net::UnixStream::connect(&path) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = s.shutdown(std::net::Shutdown::Write);
                let mut buf = Vec::new();
                s.read_to_end(&mut buf)
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                return serde_json::from_slice(&buf)
                    .map_err(|e| format!("bad status from {}: {e}", path.display()));
            }
            Err(e) => last = Some(e),
        }
    }
    let why = last.map(|e| e.to_string()).unwrap_or_default();
    Err(format!(
        "{} is not an smhfs mount, or its daemon is not running (no status socket: {why})",
        mountpoint.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn reply_once(listener: std::os::unix::net::UnixListener, v: &serde_json::Value) {
        let (mut c, _) = listener.accept().unwrap();
        c.write_all(v.to_string().as_bytes()).unwrap();
    }

    #[test]
    fn name_depends_on_the_path_only() {
        let a = socket_name(Path::new("/mnt/a"));
        assert_eq!(a, socket_name(Path::new("/mnt/a")));
        assert_ne!(a, socket_name(Path::new("/mnt/b")));
        assert!(a.len() < 40, "{a}");
    }

    #[test]
    fn query_reads_the_snapshot_and_reports_a_missing_daemon() {
        let mnt = tempfile::tempdir().unwrap();
        let err = query(mnt.path()).unwrap_err();
        assert!(err.contains("not an smhfs mount"), "{err}");
        let dir = socket_dirs().pop().unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(socket_name(&canonical(mnt.path())));
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let v = serde_json::json!({"pending": 3});
        let t = std::thread::spawn(move || reply_once(l, &v));
        // Earlier directories in the list hold no socket for this name.
        let got = query(mnt.path()).unwrap();
        t.join().unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(got["pending"], 3);
    }
}
