//! Local attacks on a mount (issue 12): a cache directory another user can
//! plant files in or point elsewhere, a staged path that leaves the cache
//! directory, SIGHUP, an endpoint answering with an endless reply, and a
//! cache bound below one part. Each test checks what the user would: what
//! the server stores (through the API), which files are still there with
//! which modes, the one line the command prints, the process's peak memory.

use crate::common;
use crate::common::mount;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use mount::*;

/// `nobody` on Debian (and most distributions).
const NOBODY: u32 = 65534;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Waits (bounded) until the mount's log holds `needle`.
fn wait_for_log(m: &MountGuard, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if m.log().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A journal entry as the mount writes one, with `staged` chosen by the attacker.
fn plant_entry(cache: &Path, id: &str, library: &str, remote: &str, staged: &Path) {
    let entry = serde_json::json!({
        "id": id,
        "library": library,
        "space": "-",
        "path": remote,
        "staged": staged,
        "strategy": "overwrite",
        "complete": true,
    });
    std::fs::write(
        cache.join(format!("{id}.journal")),
        serde_json::to_vec(&entry).unwrap(),
    )
    .unwrap();
}

/// A root-only secret outside the cache directory.
fn secret_file(dir: &Path) -> PathBuf {
    let d = dir.join("root-only");
    std::fs::create_dir(&d).unwrap();
    chmod(&d, 0o700);
    let f = d.join("secret.txt");
    std::fs::write(&f, b"top secret\n").unwrap();
    chmod(&f, 0o600);
    f
}

async fn names_on_server(server: &TestServer) -> Vec<String> {
    client_for(server)
        .list_all(&smhfs::smh::SmhPath::root())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn planted_journal_entries_pointing_outside_the_cache_are_skipped() {
    let server = TestServer::start();
    let base = tempfile::tempdir().unwrap();
    let secret = secret_file(base.path());
    let cache = base.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    chmod(&cache, 0o700);
    // An absolute path elsewhere, a `..` escape, and a symlink inside the
    // cache directory pointing at the secret.
    plant_entry(
        &cache,
        "staged-evil01",
        &server.library,
        "evil1.txt",
        &secret,
    );
    let dotdot = cache.join("..").join("root-only").join("secret.txt");
    plant_entry(
        &cache,
        "staged-evil02",
        &server.library,
        "evil2.txt",
        &dotdot,
    );
    let link = cache.join("staged-evil03");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    plant_entry(&cache, "staged-evil03", &server.library, "evil3.txt", &link);

    let m = MountGuard::new(&server, &format!("cache_dir={}", cache.display()));
    // Resume runs in the background: give a (wrong) upload time to happen.
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        let names = names_on_server(&server).await;
        assert!(
            !names.iter().any(|n| n.starts_with("evil")),
            "uploaded: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = client_for(&server);
    for n in ["evil1.txt", "evil2.txt", "evil3.txt"] {
        assert!(client.head_file(&p(n)).await.unwrap().is_none(), "{n}");
    }
    assert_eq!(std::fs::read(&secret).unwrap(), b"top secret\n");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    for id in ["staged-evil01", "staged-evil02", "staged-evil03"] {
        assert!(
            cache.join(format!("{id}.journal")).exists(),
            "{id} entry deleted"
        );
    }
    let log = m.log();
    for id in ["staged-evil01", "staged-evil02", "staged-evil03"] {
        assert!(
            log.lines()
                .any(|l| l.contains(id) && l.contains("not uploaded, not deleted")),
            "no log line for {id}: {log}"
        );
    }
    // The mount itself works as usual.
    std::fs::write(m.path("fine.txt"), b"ok").unwrap();
    assert!(names_on_server(&server)
        .await
        .contains(&"fine.txt".to_string()));
}

/// Runs `smhfs ARGS...`, returning (success, stderr).
fn smhfs(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A mount, `smhfs resume` and `smhfs status --cache-dir` on `cache` all
/// refuse it, saying `why`.
fn refused_everywhere(server: &TestServer, cache: &Path, why: &str) {
    let err = MountGuard::try_new(server, "", &format!("cache_dir={}", cache.display()))
        .err()
        .unwrap_or_else(|| panic!("mount with cache_dir={} succeeded", cache.display()));
    assert!(err.contains(why), "mount: {err}");
    let creds_dir = tempfile::tempdir().unwrap();
    let creds = creds_dir.path().join("cred");
    std::fs::write(&creds, format!("library_secret={}\n", server.secret)).unwrap();
    chmod(&creds, 0o600);
    let opts = format!(
        "endpoint={},credentials={},cache_dir={}",
        server.url,
        creds.display(),
        cache.display()
    );
    let (ok, err) = smhfs(&["resume", &server.library, "-o", &opts]);
    assert!(!ok && err.contains(why), "resume: {err}");
    let (ok, err) = smhfs(&["status", "--cache-dir", cache.to_str().unwrap()]);
    assert!(!ok && err.contains(why), "status: {err}");
}

#[test]
fn a_symlinked_cache_dir_is_refused_and_its_target_left_alone() {
    let server = TestServer::start();
    let base = tempfile::tempdir().unwrap();
    let target = base.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    chmod(&target, 0o755);
    let link = base.path().join("clink");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    refused_everywhere(&server, &link, "is a symbolic link");
    assert_eq!(mode(&target), 0o755, "target chmodded");
}

#[test]
fn a_cache_dir_of_another_user_or_open_to_all_is_refused_unchanged() {
    let server = TestServer::start();
    let base = tempfile::tempdir().unwrap();
    let foreign = base.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    chmod(&foreign, 0o700);
    std::os::unix::fs::chown(&foreign, Some(NOBODY), Some(NOBODY)).unwrap();
    refused_everywhere(&server, &foreign, &format!("owned by uid {NOBODY}"));
    let meta = std::fs::metadata(&foreign).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (NOBODY, 0o700));

    let open = base.path().join("open");
    std::fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    refused_everywhere(&server, &open, "writable by group or others");
    assert_eq!(mode(&open), 0o777, "chmodded");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_leaves_the_mount_working() {
    let server = TestServer::start();
    let base = tempfile::tempdir().unwrap();
    let pid_file = base.path().join("pid");
    let m = MountGuard::new(&server, &format!("pid_file={}", pid_file.display()));
    // Written just after the mount appears.
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "no pid_file: {}", m.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    for _ in 0..2 {
        // SAFETY: kill(2) on the mount daemon this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        std::thread::sleep(Duration::from_millis(200));
    }
    let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let alive = state
        .lines()
        .any(|l| l.starts_with("State:") && !l.contains("zombie"));
    assert!(alive, "SIGHUP ended the mount daemon: {}", m.log());
    assert!(m.is_mounted(), "SIGHUP ended the mount: {}", m.log());
    let data = random_bytes(300_000);
    std::fs::write(m.path("after-hup.bin"), &data).unwrap();
    assert_eq!(std::fs::read(m.path("after-hup.bin")).unwrap(), data);
    let client = client_for(&server);
    let head = client
        .head_file(&p("after-hup.bin"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.size, data.len() as u64);
    assert!(
        wait_for_log(&m, "SIGHUP", Duration::from_secs(5)),
        "no log line for SIGHUP: {}",
        m.log()
    );
}

/// An endpoint answering every request with an endless JSON body (no
/// Content-Length), up to `total` bytes per connection.
fn endless_endpoint(total: u64) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            std::thread::spawn(move || {
                conn.set_nonblocking(false).unwrap();
                conn.set_write_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let mut req = [0u8; 8192];
                let _ = conn.read(&mut req);
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"accessToken\":\"",
                );
                let chunk = vec![b'a'; 64 << 10];
                let mut sent = 0;
                while sent < total {
                    if conn.write_all(&chunk).is_err() {
                        return;
                    }
                    sent += chunk.len() as u64;
                }
                let _ = conn.write_all(b"\",\"expiresIn\":3600}");
            });
        }
    });
    (url, stop)
}

/// A pipe whose buffer is already full: a process writing to it blocks
/// until the read end is drained. Returns (read end, write end).
fn full_pipe() -> (std::fs::File, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array we own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and belong to nobody else.
    let (r, w) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let mut wf = std::fs::File::from(w);
    // SAFETY: fcntl flag changes on a descriptor we own.
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) };
    while wf.write(&[b'#'; 4096]).is_ok() {}
    // SAFETY: as above.
    unsafe { libc::fcntl(fds[1], libc::F_SETFL, 0) };
    (r, wf.into())
}

/// Peak RSS (VmHWM, KiB) of `pid` once it blocks writing to a full pipe,
/// i.e. with its work done and its error line not yet out (≤ `timeout`).
fn peak_rss_when_blocked_on_stderr(pid: u32, timeout: Duration) -> Option<u64> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let wchan = std::fs::read_to_string(format!("/proc/{pid}/wchan")).ok()?;
        if wchan.contains("pipe_write") {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            return status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn an_oversized_reply_is_refused_with_bounded_memory() {
    use std::sync::atomic::Ordering;
    let (url, stop) = endless_endpoint(200 << 20);
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let creds = base.path().join("cred");
    std::fs::write(&creds, "library_secret=s\n").unwrap();
    chmod(&creds, 0o600);
    // stderr is a full pipe: the process stops at its (only) error line, so
    // its peak RSS can be read while it is still alive.
    let (mut stderr, stderr_w) = full_pipe();
    let mut child = Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .arg("mount")
        .arg("lib")
        .arg(&mnt)
        .arg("-f")
        .arg("-o")
        .arg(format!(
            "endpoint={url},credentials={},cache_dir={}",
            creds.display(),
            base.path().join("cache").display()
        ))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr_w))
        .spawn()
        .unwrap();
    let peak = peak_rss_when_blocked_on_stderr(child.id(), Duration::from_secs(60));
    if peak.is_none() {
        let _ = child.kill();
    }
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let status = child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let out = reader.join().unwrap();
    let err = String::from_utf8_lossy(&out)
        .trim_start_matches('#')
        .to_string();
    let peak_kib = peak.unwrap_or_else(|| panic!("never saw the mount stop at its error: {err}"));
    eprintln!("oversized reply: peak RSS {} KiB; {err}", peak_kib);
    assert!(!status.success(), "{err}");
    assert!(err.contains("larger than 4 MiB"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        peak_kib < 100 << 10,
        "peak RSS {} MiB while refusing the reply",
        peak_kib >> 10
    );
}

#[test]
fn cache_size_below_one_part_is_refused() {
    let server = TestServer::start();
    for opts in ["cache_size=0", "cache_size=4M,part_size=8M"] {
        let err = MountGuard::try_new(&server, "", opts)
            .err()
            .unwrap_or_else(|| panic!("mount with {opts} succeeded"));
        assert!(
            err.contains("smaller than one upload part"),
            "{opts}: {err}"
        );
    }
    // One part exactly is fine.
    let m = MountGuard::new(&server, "cache_size=1M,part_size=1M");
    std::fs::write(m.path("one.bin"), random_bytes(100_000)).unwrap();
}
