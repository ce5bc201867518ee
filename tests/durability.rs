//! Durable uploads under faults, against real `smhfs serve` processes and
//! real mounts: kill -9 of the daemon and restart of the server mid-upload
//! (resume sends only the missing parts), ticket expiry (renew), 503/429
//! storms, revoked tokens, write-back with unmount, and the cache bound
//! (ENOSPC, nothing partial on the server). Every byte is checked by content
//! hash against what the server serves; every wait is bounded.

use crate::common;
use crate::common::mount;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::content::{hash_file, server_hashes};
use common::wait_for;
use common::TestServer;
use mount::*;
use smhfs::smh::{ContentHashes, SmhClient};

const MIB: u64 = 1 << 20;

/// A file of `size` random bytes.
fn random_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let p = dir.join(name);
    sh(&format!(
        "head -c {size} /dev/urandom > {}",
        p.to_string_lossy()
    ));
    p
}

async fn part_bytes(server: &TestServer) -> u64 {
    stat_u64(&server.stats().await, "part_bytes")
}

/// Waits until the server holds `path` with `size` bytes.
async fn wait_on_server(client: &SmhClient, path: &str, size: u64, timeout: Duration) {
    wait_for(&format!("{path} on the server"), timeout, || async {
        matches!(client.head_file(&p(path)).await, Ok(Some(h)) if h.size == size)
    })
    .await;
}

fn spawn_cp(src: &Path, dst: &Path) -> Child {
    Command::new("cp")
        .arg(src)
        .arg(dst)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded) for a child; kills it at the deadline.
fn wait_child(c: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            return c.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn journal_entries(cache: &Path) -> Vec<serde_json::Value> {
    std::fs::read_dir(cache)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
                .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

fn leftovers(cache: &Path) -> Vec<String> {
    std::fs::read_dir(cache)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_mid_upload_then_remount_sends_only_missing_parts() {
    let server = TestServer::start();
    let client = client_for(&server);
    let work = tempfile::tempdir().unwrap();
    let size = 300 * MIB;
    let src = random_file(work.path(), "big.bin", size);
    let want = hash_file(&src);
    let opts = "part_size=8M,upload_concurrency=2";
    let mut m1 = MountGuard::new(&server, opts);
    server.admin("/__latency", "part:400").await;
    let mut cp = spawn_cp(&src, &m1.path("big.bin"));
    wait_for("a third of the parts", Duration::from_secs(90), || async {
        part_bytes(&server).await >= 96 * MIB
    })
    .await;
    m1.signal_and_wait(libc::SIGKILL).expect("daemon killed");
    m1.unmount();
    let st = wait_child(&mut cp, Duration::from_secs(30));
    assert!(!st.success(), "cp cannot have succeeded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = part_bytes(&server).await;
    assert!(stored < size, "killed before the end ({stored})");
    let entries = journal_entries(&m1.cache_dir);
    assert_eq!(entries.len(), 1, "one journal entry: {entries:?}");
    assert!(
        entries[0]["plan"]["confirm_key"].is_string(),
        "{}",
        entries[0]
    );
    // `smhfs status --cache-dir` reads the journal without a mount.
    let out = sh(&format!(
        "{} status --cache-dir {} || true",
        env!("CARGO_BIN_EXE_smhfs"),
        m1.cache_dir.display()
    ));
    assert!(out.contains("big.bin"), "{out}");
    server.admin("/__faults/clear", "").await;

    let m2 = MountGuard::new(
        &server,
        &format!("{opts},cache_dir={}", m1.cache_dir.display()),
    );
    // The pending file is visible with its full size at once.
    assert_eq!(std::fs::metadata(m2.path("big.bin")).unwrap().len(), size);
    wait_on_server(&client, "big.bin", size, Duration::from_secs(120)).await;
    let total = part_bytes(&server).await;
    let resent = total - stored;
    eprintln!(
        "kill -9: stored before the kill {} MiB, sent after remount {} MiB of {} MiB",
        stored / MIB,
        resent / MIB,
        size / MIB
    );
    // Only the missing parts: at most one part of slack (a part stored as
    // the daemon died but not yet counted), never the whole file.
    assert!(resent <= size - stored + 8 * MIB, "resent {resent}");
    assert!(resent < size - 48 * MIB, "resent {resent}");
    assert_eq!(server_hashes(&client, "big.bin").await, want);
    wait_for("the journal to empty", Duration::from_secs(10), || async {
        leftovers(&m1.cache_dir).is_empty()
    })
    .await;
    assert!(m2.log().contains("resuming upload"), "{}", m2.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_restart_mid_upload_completes_without_resending_stored_parts() {
    let mut server = TestServer::start();
    let client = client_for(&server);
    let work = tempfile::tempdir().unwrap();
    let size = 64 * MIB;
    let src = random_file(work.path(), "r.bin", size);
    let want = hash_file(&src);
    let m = MountGuard::new(&server, "part_size=4M,upload_concurrency=2");
    server.admin("/__latency", "part:300").await;
    let mut cp = spawn_cp(&src, &m.path("r.bin"));
    wait_for(
        "a quarter of the parts",
        Duration::from_secs(60),
        || async { part_bytes(&server).await >= 16 * MIB },
    )
    .await;
    let stored = part_bytes(&server).await;
    server.restart(); // stats restart at 0; latency is gone
    let st = wait_child(&mut cp, Duration::from_secs(120));
    wait_on_server(&client, "r.bin", size, Duration::from_secs(120)).await;
    let resent = part_bytes(&server).await;
    eprintln!(
        "server restart: cp {st}, stored before {} MiB, sent after restart {} MiB of {} MiB",
        stored / MIB,
        resent / MIB,
        size / MIB
    );
    // In-flight parts at the restart (2) may be sent again.
    assert!(resent <= size - stored + 8 * MIB, "resent {resent}");
    assert_eq!(server_hashes(&client, "r.bin").await, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn ticket_ttl_of_two_seconds_renews_during_upload() {
    let server = TestServer::start_with(&["--ticket-ttl", "2"]);
    let client = client_for(&server);
    let work = tempfile::tempdir().unwrap();
    let size = 24 * MIB + 123;
    let src = random_file(work.path(), "ttl.bin", size);
    let want = hash_file(&src);
    let m = MountGuard::new(&server, "part_size=1M,upload_concurrency=2");
    server.admin("/__latency", "part:250").await;
    let t = Instant::now();
    let mut cp = spawn_cp(&src, &m.path("ttl.bin"));
    assert!(wait_child(&mut cp, Duration::from_secs(120)).success());
    let stats = server.stats().await;
    let renews = op_count(&stats, "upload_renew");
    eprintln!(
        "ticket ttl 2 s: upload took {:?}, {renews} renews, {} part PUTs",
        t.elapsed(),
        op_count(&stats, "part_put")
    );
    assert!(t.elapsed() > Duration::from_secs(2));
    assert!(renews > 0);
    assert_eq!(server_hashes(&client, "ttl.bin").await, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn part_503_storm_and_api_429_bursts() {
    let server = TestServer::start();
    let client = client_for(&server);
    let work = tempfile::tempdir().unwrap();
    let size = 32 * MIB + 7;
    let src = random_file(work.path(), "storm.bin", size);
    let want = hash_file(&src);
    let m = MountGuard::new(&server, "part_size=1M,upload_concurrency=4");
    server.admin("/__fault", "part:503:30%").await;
    // Bursts of 429 that never exceed the client's retries (6) when stacked.
    server.admin("/__fault", "api:429:3").await;
    let mut cp = spawn_cp(&src, &m.path("storm.bin"));
    let mut smalls = Vec::new();
    for i in 0..20 {
        if i % 5 == 0 {
            server.admin("/__fault", "api:429:2").await;
        }
        let data = random_bytes(1000 + i * 517);
        std::fs::write(m.path(&format!("s{i}.txt")), &data).unwrap();
        smalls.push(data);
    }
    assert!(wait_child(&mut cp, Duration::from_secs(120)).success());
    let stats = server.stats().await;
    eprintln!(
        "503/429: faults injected {}, part PUTs {} for {} parts",
        stats["faults_injected"],
        op_count(&stats, "part_put"),
        size.div_ceil(MIB)
    );
    assert!(stats["faults_injected"]["part"].as_u64().unwrap_or(0) > 0);
    assert!(stats["faults_injected"]["api"].as_u64().unwrap_or(0) > 0);
    server.admin("/__faults/clear", "").await;
    assert_eq!(server_hashes(&client, "storm.bin").await, want);
    for (i, data) in smalls.iter().enumerate() {
        assert_eq!(
            server_hashes(&client, &format!("s{i}.txt")).await,
            ContentHashes::of(data)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_revoked_mid_upload_is_reminted() {
    let server = TestServer::start();
    let client = client_for(&server);
    let work = tempfile::tempdir().unwrap();
    let size = 24 * MIB;
    let src = random_file(work.path(), "tok.bin", size);
    let want = hash_file(&src);
    let m = MountGuard::new(&server, "part_size=1M,upload_concurrency=2");
    server.admin("/__latency", "part:150").await;
    let before = op_count(&server.stats().await, "token_create");
    let mut cp = spawn_cp(&src, &m.path("tok.bin"));
    wait_for("some parts", Duration::from_secs(60), || async {
        part_bytes(&server).await >= 4 * MIB
    })
    .await;
    server.admin("/__revoke-tokens", "").await;
    assert!(wait_child(&mut cp, Duration::from_secs(120)).success());
    let after = op_count(&server.stats().await, "token_create");
    eprintln!("token revoked mid-upload: tokens minted {before} -> {after}");
    assert!(after > before, "a new token was minted");
    assert_eq!(server_hashes(&client, "tok.bin").await, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn write_back_200_files_all_on_server_after_unmount() {
    let server = TestServer::start();
    let client = client_for(&server);
    let mut m = MountGuard::new(&server, "write_back");
    server.admin("/__latency", "begin:30").await;
    std::fs::create_dir(m.path("wb")).unwrap();
    let t = Instant::now();
    let mut files = Vec::new();
    for i in 0..200usize {
        let data = random_bytes(512 + (i * 331) % 40_000);
        std::fs::write(m.path(&format!("wb/f{i:03}")), &data).unwrap();
        files.push(data);
    }
    let wrote = t.elapsed();
    // Pending files are listed and readable before they are uploaded.
    let listed = std::fs::read_dir(m.path("wb")).unwrap().count();
    assert_eq!(listed, 200);
    assert_eq!(std::fs::read(m.path("wb/f199")).unwrap(), files[199]);
    let status = sh(&format!(
        "{} status --json {}",
        env!("CARGO_BIN_EXE_smhfs"),
        m.mnt.display()
    ));
    let v: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    // The answer came from this mount's daemon (over its status socket).
    let theirs = std::path::PathBuf::from(v["cache_dir"].as_str().unwrap_or_default());
    assert_eq!(
        theirs.canonicalize().ok(),
        m.cache_dir.canonicalize().ok(),
        "{status}"
    );
    assert!(v["uploads"].is_array(), "{status}");
    // Without `-o xattr` the mount has no extended attributes at all (ENOSYS
    // to the kernel, which tells the caller EOPNOTSUPP), so `ls -l` does not
    // ask for them entry by entry.
    assert_eq!(
        xattr_errno(&m.path("wb/f000"), "security.selinux"),
        Some(libc::EOPNOTSUPP)
    );
    assert_eq!(
        xattr_errno(&m.mnt, "user.smhfs.status"),
        Some(libc::EOPNOTSUPP)
    );
    eprintln!(
        "write-back: 200 closes in {wrote:?}; status right after: pending {} uploads listed {}",
        v["pending"],
        v["uploads"].as_array().map(|a| a.len()).unwrap_or(0)
    );
    let t = Instant::now();
    let st = m
        .unmount_and_wait(Duration::from_secs(120))
        .expect("daemon exited");
    eprintln!("write-back: unmount + drain took {:?}", t.elapsed());
    assert!(st.success(), "{}", m.log());
    for (i, data) in files.iter().enumerate() {
        assert_eq!(
            server_hashes(&client, &format!("wb/f{i:03}")).await,
            ContentHashes::of(data),
            "wb/f{i:03}"
        );
    }
    assert!(
        leftovers(&m.cache_dir).is_empty(),
        "{:?}",
        leftovers(&m.cache_dir)
    );
}

/// Writes `size` bytes to `path` from a child process through one
/// descriptor, and returns the errno of the first failing write or close.
/// (Not from the test process: a fork by a concurrent test would inherit
/// the descriptor, and its close at exec is a flush, which uploads.)
fn write_in_child(path: &Path, size: u64) -> Option<i32> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import os,sys\n\
             n=int(sys.argv[2]); b=b'\\5'*(1<<20)\n\
             try:\n\
             \x20f=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT|os.O_TRUNC)\n\
             \x20while n>0:\n\
             \x20\x20n-=os.write(f,b[:min(n,len(b))])\n\
             \x20os.close(f)\n\
             except OSError as e:\n\
             \x20print(e.errno); sys.exit(0)\n\
             print(0)",
        )
        .arg(path)
        .arg(size.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<i32>() {
        Ok(0) => None,
        Ok(e) => Some(e),
        Err(_) => panic!(
            "writer failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_size_smaller_than_the_file_gives_enospc_and_nothing_partial() {
    let server = TestServer::start();
    let client = client_for(&server);
    let m = MountGuard::new(&server, "cache_size=4M,cache_wait=1,part_size=4M");
    assert_eq!(
        write_in_child(&m.path("huge.bin"), 8 * MIB),
        Some(libc::ENOSPC)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(client.head_file(&p("huge.bin")).await.unwrap().is_none());
    assert!(
        leftovers(&m.cache_dir).is_empty(),
        "{:?}",
        leftovers(&m.cache_dir)
    );
    // Room again for what fits.
    let small = random_bytes(MIB as usize);
    std::fs::write(m.path("small.bin"), &small).unwrap();
    assert_eq!(
        server_hashes(&client, "small.bin").await,
        ContentHashes::of(&small)
    );
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Tmpfs {
    fn new(size: &str) -> Self {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fs");
        std::fs::create_dir(&p).unwrap();
        sh(&format!(
            "mount -t tmpfs -o size={size},mode=0700 tmpfs {}",
            p.display()
        ));
        Tmpfs(p, d)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn full_cache_disk_gives_enospc_to_the_writer() {
    let server = TestServer::start();
    let client = client_for(&server);
    let tmp = Tmpfs::new("8m");
    let cache = tmp.0.join("cache");
    {
        let m = MountGuard::new(
            &server,
            &format!("cache_dir={},cache_size=1G", cache.display()),
        );
        assert_eq!(
            write_in_child(&m.path("big.bin"), 16 * MIB),
            Some(libc::ENOSPC)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(client.head_file(&p("big.bin")).await.unwrap().is_none());
        assert!(leftovers(&cache).is_empty(), "{:?}", leftovers(&cache));
        let small = random_bytes(2 * MIB as usize);
        std::fs::write(m.path("fits.bin"), &small).unwrap();
        assert_eq!(
            server_hashes(&client, "fits.bin").await,
            ContentHashes::of(&small)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn write_back_kill9_then_smhfs_resume_command() {
    let server = TestServer::start();
    let client = client_for(&server);
    let work = tempfile::tempdir().unwrap();
    let size = 40 * MIB;
    let src = random_file(work.path(), "wbk.bin", size);
    let want = hash_file(&src);
    let mut m = MountGuard::new(&server, "write_back,part_size=2M,upload_concurrency=2");
    server.admin("/__latency", "part:300").await;
    // close() returns before the upload.
    let t = Instant::now();
    let mut cp = spawn_cp(&src, &m.path("wbk.bin"));
    assert!(wait_child(&mut cp, Duration::from_secs(60)).success());
    let closed = t.elapsed();
    wait_for("some parts", Duration::from_secs(60), || async {
        part_bytes(&server).await >= 8 * MIB
    })
    .await;
    // `smhfs status` shows the upload in progress.
    let x = sh(&format!(
        "{} status --json {} || true",
        env!("CARGO_BIN_EXE_smhfs"),
        m.mnt.display()
    ));
    eprintln!("write-back kill: close after {closed:?}; status {x}");
    m.signal_and_wait(libc::SIGKILL).expect("killed");
    m.unmount();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = part_bytes(&server).await;
    server.admin("/__faults/clear", "").await;
    let out = Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .arg("resume")
        .arg(&server.library)
        .arg("-o")
        .arg(format!(
            "endpoint={},credentials={},cache_dir={},part_size=2M",
            server.url,
            m.credentials().display(),
            m.cache_dir.display()
        ))
        .arg("--timeout")
        .arg("120")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let resent = part_bytes(&server).await - stored;
    eprintln!(
        "smhfs resume: stored before {} MiB, sent by resume {} MiB of {} MiB",
        stored / MIB,
        resent / MIB,
        size / MIB
    );
    assert!(resent <= size - stored + 2 * MIB, "resent {resent}");
    wait_on_server(&client, "wbk.bin", size, Duration::from_secs(10)).await;
    assert_eq!(server_hashes(&client, "wbk.bin").await, want);
    assert!(
        leftovers(&m.cache_dir).is_empty(),
        "{:?}",
        leftovers(&m.cache_dir)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_that_never_began_are_sent_after_a_crash() {
    let server = TestServer::start();
    let client = client_for(&server);
    // A long write-back delay: the uploads have not begun at the kill.
    let mut m1 = MountGuard::new(&server, "write_back=600");
    let mut files = Vec::new();
    for i in 0..5usize {
        let data = random_bytes(10_000 + i * 70_000);
        std::fs::write(m1.path(&format!("n{i}.bin")), &data).unwrap();
        files.push(data);
    }
    m1.signal_and_wait(libc::SIGKILL).expect("killed");
    m1.unmount();
    let entries = journal_entries(&m1.cache_dir);
    assert_eq!(entries.len(), 5);
    assert!(entries.iter().all(|e| e["plan"].is_null()), "{entries:?}");
    assert!(client.head_file(&p("n0.bin")).await.unwrap().is_none());
    let m2 = MountGuard::new(
        &server,
        &format!("write_back=600,cache_dir={}", m1.cache_dir.display()),
    );
    for (i, data) in files.iter().enumerate() {
        let name = format!("n{i}.bin");
        // Visible in the new mount with its content, uploaded or not yet.
        assert_eq!(std::fs::read(m2.path(&name)).unwrap(), *data);
        wait_on_server(&client, &name, data.len() as u64, Duration::from_secs(30)).await;
        assert_eq!(server_hashes(&client, &name).await, ContentHashes::of(data));
    }
    wait_for("the journal to empty", Duration::from_secs(10), || async {
        leftovers(&m1.cache_dir).is_empty()
    })
    .await;
}

/// The errno of a failed getxattr (None if it succeeded).
fn xattr_errno(path: &Path, name: &str) -> Option<i32> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer we own, with its length.
    let r = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r < 0).then(|| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

fn xattr(path: &Path, name: &str) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    // SAFETY: valid C strings and a buffer we own, with its length.
    let r = unsafe { libc::getxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| String::from_utf8_lossy(&buf[..r as usize]).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn write_back_permanent_failure_is_kept_logged_and_shown() {
    let server = TestServer::start();
    let client = client_for(&server);
    let mut m = MountGuard::new(&server, "write_back=2,conflict=ask,xattr");
    let data = random_bytes(50_000);
    std::fs::write(m.path("x.txt"), &data).unwrap();
    // Pending: the per-file attribute shows it.
    let x = xattr(&m.path("x.txt"), "user.smhfs.upload").expect("xattr on a pending file");
    assert!(
        x.contains("\"queued\"") || x.contains("\"uploading\""),
        "{x}"
    );
    // Someone else stores the name first: with conflict=ask the upload
    // cannot succeed.
    let other = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other.path(), b"theirs").unwrap();
    client
        .upload_file(
            &p("x.txt"),
            other.path(),
            None,
            &smhfs::smh::UploadOptions::default(),
        )
        .await
        .unwrap();
    wait_for("the failure", Duration::from_secs(30), || async {
        m.log().contains("upload failed")
    })
    .await;
    let log = m.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("x.txt") && l.contains("staged")),
        "{log}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .arg("status")
        .arg(&m.mnt)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("status after a permanent failure:\n{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("failed") && text.contains("x.txt"), "{text}");
    // The server keeps the other content; ours is kept locally.
    assert_eq!(
        server_hashes(&client, "x.txt").await,
        ContentHashes::of(b"theirs")
    );
    assert!(m.unmount_and_wait(Duration::from_secs(30)).is_some());
    let entries = journal_entries(&m.cache_dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0]["failed"].is_string());
    let staged = PathBuf::from(entries[0]["staged"].as_str().unwrap());
    assert_eq!(std::fs::read(staged).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_after_the_server_dropped_the_task_uploads_afresh() {
    let server = TestServer::start();
    let client = client_for(&server);
    let work = tempfile::tempdir().unwrap();
    let size = 24 * MIB + 5;
    let src = random_file(work.path(), "gone.bin", size);
    let want = hash_file(&src);
    let opts = "part_size=2M,upload_concurrency=2";
    let mut m1 = MountGuard::new(&server, opts);
    server.admin("/__latency", "part:300").await;
    let mut cp = spawn_cp(&src, &m1.path("gone.bin"));
    wait_for("some parts", Duration::from_secs(60), || async {
        part_bytes(&server).await >= 4 * MIB
    })
    .await;
    m1.signal_and_wait(libc::SIGKILL).expect("killed");
    m1.unmount();
    wait_child(&mut cp, Duration::from_secs(30));
    server.admin("/__faults/clear", "").await;
    let entries = journal_entries(&m1.cache_dir);
    let key = entries[0]["plan"]["confirm_key"]
        .as_str()
        .unwrap()
        .to_string();
    client.abort_upload(&key).await.unwrap();
    let m2 = MountGuard::new(
        &server,
        &format!("{opts},cache_dir={}", m1.cache_dir.display()),
    );
    wait_on_server(&client, "gone.bin", size, Duration::from_secs(60)).await;
    assert_eq!(server_hashes(&client, "gone.bin").await, want);
    assert!(m2.log().contains("gone on the server"), "{}", m2.log());
    wait_for("the journal to empty", Duration::from_secs(10), || async {
        leftovers(&m1.cache_dir).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_still_being_written_at_a_crash_is_kept_not_uploaded() {
    let server = TestServer::start();
    let client = client_for(&server);
    client_upload(&client, "p.bin", b"the good old version").await;
    let mut m1 = MountGuard::new(&server, "");
    // A writer that has not closed its file when the daemon dies.
    // (One process, one descriptor: a shell redirection would dup and close
    // it, and every close is a flush that uploads.) Past 1 MiB: smaller new
    // files are held in memory until their close reports the upload.
    let mut writer = Command::new("python3")
        .arg("-c")
        .arg(
            "import os,sys,time\n\
             f=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT|os.O_TRUNC)\n\
             os.write(f,os.urandom(1500000))\n\
             time.sleep(30)",
        )
        .arg(m1.path("p.bin"))
        .spawn()
        .unwrap();
    wait_for("the partial write", Duration::from_secs(20), || async {
        std::fs::read_dir(&m1.cache_dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.metadata().map(|m| m.len() >= 1_500_000).unwrap_or(false))
            })
            .unwrap_or(false)
    })
    .await;
    m1.signal_and_wait(libc::SIGKILL).expect("killed");
    let _ = writer.kill();
    let _ = writer.wait();
    m1.unmount();
    let m2 = MountGuard::new(&server, &format!("cache_dir={}", m1.cache_dir.display()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    // The server keeps the complete old version; the partial data is kept.
    assert_eq!(
        server_hashes(&client, "p.bin").await,
        ContentHashes::of(b"the good old version")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .arg("status")
        .arg(&m2.mnt)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("status with a partial file:\n{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("incomplete") && text.contains("p.bin"),
        "{text}"
    );
    assert_eq!(journal_entries(&m1.cache_dir).len(), 1);
}

async fn client_upload(client: &SmhClient, path: &str, data: &[u8]) {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), data).unwrap();
    client
        .upload_file(
            &p(path),
            f.path(),
            None,
            &smhfs::smh::UploadOptions::default(),
        )
        .await
        .unwrap();
}

/// Small new files live in memory until close() uploads them; one whose
/// upload fails must still end up in cache_dir (staged file + journal
/// entry), readable in the mount, and be uploaded once the server is back.
#[tokio::test(flavor = "multi_thread")]
async fn small_file_whose_upload_fails_is_kept_and_retried() {
    let server = TestServer::start();
    let client = client_for(&server);
    let m = MountGuard::new(&server, "");
    server.admin("/__fault", "part:503:100%").await;
    let errno = write_in_child(&m.path("small.bin"), 4096);
    assert!(errno.is_some(), "close() reports the failed upload");
    let entries = journal_entries(&m.cache_dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["complete"], true, "{entries:?}");
    let staged = PathBuf::from(entries[0]["staged"].as_str().unwrap());
    assert_eq!(std::fs::read(&staged).unwrap(), vec![5u8; 4096]);
    assert_eq!(std::fs::read(m.path("small.bin")).unwrap(), vec![5u8; 4096]);
    server.admin("/__faults/clear", "").await;
    wait_on_server(&client, "small.bin", 4096, Duration::from_secs(60)).await;
    assert_eq!(
        server_hashes(&client, "small.bin").await,
        ContentHashes::of(&[5u8; 4096])
    );
    wait_for("the cache to empty", Duration::from_secs(10), || async {
        leftovers(&m.cache_dir).is_empty()
    })
    .await;
}

/// ... and one whose upload fails for good (conflict=ask, the name was
/// taken meanwhile) is kept, marked failed and shown by `smhfs status`.
#[tokio::test(flavor = "multi_thread")]
async fn small_file_whose_upload_fails_for_good_is_kept_and_shown() {
    let server = TestServer::start();
    let client = client_for(&server);
    let mut m = MountGuard::new(&server, "conflict=ask");
    let work = tempfile::tempdir().unwrap();
    let go = work.path().join("go");
    // Writes, waits until the name is taken on the server, then closes.
    let mut writer = Command::new("python3")
        .arg("-c")
        .arg(
            "import os,sys,time\n\
             f=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT|os.O_EXCL)\n\
             os.write(f,b'ours'*1000)\n\
             print('written',flush=True)\n\
             t=time.time()\n\
             while not os.path.exists(sys.argv[2]) and time.time()-t<30: time.sleep(0.05)\n\
             try:\n\
             \x20os.close(f); print(0)\n\
             except OSError as e:\n\
             \x20print(e.errno)",
        )
        .arg(m.path("mine.txt"))
        .arg(&go)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(writer.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "written");
    client_upload(&client, "mine.txt", b"theirs").await;
    std::fs::write(&go, b"").unwrap();
    line.clear();
    out.read_to_string(&mut line).unwrap();
    let _ = writer.wait();
    assert_eq!(line.trim(), libc::EEXIST.to_string(), "close() says EEXIST");
    let status = Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .arg("status")
        .arg(&m.mnt)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(
        text.contains("failed") && text.contains("mine.txt"),
        "{text}"
    );
    assert_eq!(
        server_hashes(&client, "mine.txt").await,
        ContentHashes::of(b"theirs")
    );
    assert!(m.unmount_and_wait(Duration::from_secs(30)).is_some());
    let entries = journal_entries(&m.cache_dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0]["failed"].is_string(), "{entries:?}");
    let staged = PathBuf::from(entries[0]["staged"].as_str().unwrap());
    assert_eq!(std::fs::read(staged).unwrap(), b"ours".repeat(1000));
}
