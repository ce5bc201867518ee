//! `MountGuard`: a real `smhfs mount` process on a temp directory, against a
//! `TestServer`. Dropping it unmounts (fusermount3 -u, else umount -l) and
//! reaps the process, also when the test failed.
//!
//! Tests only touch the mount through std::fs / external tools: the mount is
//! served by another process, never by the test itself.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use smhfs::smh::SmhPath;

use crate::common::TestServer;

pub struct MountGuard {
    pub mnt: PathBuf,
    pub cache_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

fn is_mounted(mnt: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mnt.to_string_lossy().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4).map(|m| m == want).unwrap_or(false))
}

impl MountGuard {
    /// Mounts the server's library root with `extra` options appended
    /// (comma separated, may be empty). Panics with the mount's log if the
    /// mount does not appear within 20 s.
    pub fn new(server: &TestServer, extra: &str) -> Self {
        match Self::try_new(server, "", extra) {
            Ok(g) => g,
            Err(e) => panic!("mount failed: {e}"),
        }
    }

    /// Like `new`, with a `/sub/path` suffix for the source.
    pub fn try_new(server: &TestServer, subpath: &str, extra: &str) -> Result<Self, String> {
        Self::spawn(server, subpath, extra, false)
    }

    /// Mounts with the argv `mount -t fuse.smhfs` uses: `smhfs SOURCE MNT -o ...`.
    pub fn new_helper_form(server: &TestServer) -> Self {
        Self::spawn(server, "", "", true).unwrap_or_else(|e| panic!("mount failed: {e}"))
    }

    fn spawn(
        server: &TestServer,
        subpath: &str,
        extra: &str,
        helper: bool,
    ) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        let cache_dir = dir.path().join("cache");
        std::fs::create_dir(&mnt).unwrap();
        let creds = dir.path().join("credentials");
        std::fs::write(
            &creds,
            format!("# test\nlibrary_secret={}\n", server.secret),
        )
        .unwrap();
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log_path = dir.path().join("mount.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut opts = format!(
            "endpoint={},credentials={},cache_dir={}",
            server.url,
            creds.display(),
            cache_dir.display()
        );
        if !extra.is_empty() {
            opts.push(',');
            opts.push_str(extra);
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_smhfs"));
        if !helper {
            cmd.arg("mount");
        }
        let child = cmd
            .arg(format!("{}:-{subpath}", server.library))
            .arg(&mnt)
            .arg("-o")
            .arg(&opts)
            .arg("-f")
            .env("RUST_LOG", "smhfs=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start smhfs: {e}"))?;
        let mut g = MountGuard {
            mnt,
            cache_dir,
            log_path,
            child: Some(child),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if is_mounted(&g.mnt) {
                return Ok(g);
            }
            if let Some(c) = g.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    g.child = None;
                    return Err(format!("smhfs exited with {status}: {}", g.log()));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("mount did not appear in 20 s: {}", g.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Sends `sig` to the mount process and waits (≤ 10 s) for it to exit.
    pub fn signal_and_wait(&mut self, sig: i32) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: kill(2) takes no pointers; the pid is our own unreaped
        // child, so it names no other process.
        unsafe {
            libc::kill(c.id() as i32, sig);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                self.child = Some(c);
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_mounted(&self) -> bool {
        is_mounted(&self.mnt)
    }

    /// `fusermount3 -u` (else `umount -l`), e.g. of a mount whose daemon was killed.
    pub fn unmount(&self) {
        if is_mounted(&self.mnt) {
            let ok = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
    }

    /// Unmounts and waits (at most `timeout`) for the daemon to exit, which
    /// it does once its upload queue is drained.
    pub fn unmount_and_wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.unmount();
        let mut c = self.child.take()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                self.child = Some(c);
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The credentials file the mount was started with.
    pub fn credentials(&self) -> PathBuf {
        self._dir.path().join("credentials")
    }

    /// The mount process's stderr so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Files left in the cache directory (staged data).
    pub fn staged_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.cache_dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let ok = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        if std::thread::panicking() {
            eprintln!("---- smhfs mount log ----\n{}", self.log());
        }
    }
}

pub use crate::common::client_for;

pub fn p(s: &str) -> SmhPath {
    SmhPath::parse(s).unwrap()
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

pub fn stat_u64(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or(0)
}

pub fn op_count(stats: &serde_json::Value, op: &str) -> u64 {
    stats["requests"][op].as_u64().unwrap_or(0)
}

/// Runs a shell command, panicking with its output on failure.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
