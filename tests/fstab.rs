//! smhfs as a filesystem type: mount(8) with an alternative fstab
//! (`mount -T FILE`, so the machine's /etc/fstab is untouched), `mount -a`,
//! `mount -t fuse.smhfs`, the helper argv, detach-mode exit codes, unmount
//! and SIGTERM with an upload in flight, stale mount points.
//!
//! mount(8) runs `/sbin/mount.fuse.smhfs`; every test first points that link
//! at the freshly built binary (atomically, idempotent; we are root). Every
//! test unmounts (umount -l as a fallback) and kills the daemon it started
//! (found through its `pid_file=`); every wait is bounded.

use crate::common;
use crate::common::mount;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use common::TestServer;
use mount::{client_for, op_count, p, random_bytes};

const HELPER: &str = "/sbin/mount.fuse.smhfs";
const MIB: usize = 1 << 20;

/// Points /sbin/mount.fuse.smhfs at this build (rename over: atomic).
fn install_helper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let exe = env!("CARGO_BIN_EXE_smhfs");
        if std::fs::read_link(HELPER).is_ok_and(|t| t == Path::new(exe)) {
            return;
        }
        let tmp = format!("{HELPER}.{}", std::process::id());
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(exe, &tmp).expect("symlink helper");
        std::fs::rename(&tmp, HELPER).expect("install helper");
    });
}

/// Type of the mount whose mount point is `dir`, if any.
fn mount_type(dir: &Path) -> Option<String> {
    smhfs::cmd::mount_at(dir)
}

/// Mount options of the mount at `dir` (per-mount field of mountinfo).
fn mount_flags(dir: &Path) -> String {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = dir.to_str().unwrap();
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some(want))
        .filter_map(|l| l.split(' ').nth(5).map(str::to_string))
        .next_back()
        .unwrap_or_default()
}

/// A live process (zombies count as gone: nobody may reap a detached daemon).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(cmd: &mut Command) -> Output {
    // Bounded: a hung mount would otherwise hang the test binary.
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One mount point with its credentials, cache, pid file and fstab file.
struct Fx {
    dir: tempfile::TempDir,
    mnt: PathBuf,
    creds: PathBuf,
    fstab: PathBuf,
    pid_file: PathBuf,
    log_file: PathBuf,
    pids: Vec<i32>,
}

impl Fx {
    fn new(server: &TestServer) -> Self {
        install_helper();
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let creds = dir.path().join("lib,1.cred");
        write_creds(&creds, &server.secret);
        Fx {
            mnt,
            creds,
            fstab: dir.path().join("fstab"),
            pid_file: dir.path().join("smhfs.pid"),
            log_file: dir.path().join("smhfs.log"),
            dir,
            pids: Vec::new(),
        }
    }

    /// Options every mount here uses (the `,` in the credentials path escaped).
    fn opts(&self, server: &TestServer) -> String {
        format!(
            "endpoint={},credentials={},cache_dir={},pid_file={},log_file={}",
            server.url,
            self.creds.display().to_string().replace(',', "\\,"),
            self.dir.path().join("cache").display(),
            self.pid_file.display(),
            self.log_file.display()
        )
    }

    fn write_fstab(&self, lines: &[String]) {
        std::fs::write(&self.fstab, lines.join("\n") + "\n").unwrap();
    }

    /// The daemon's pid, from the pid file written once the mount is live.
    fn note_pid(&mut self) -> i32 {
        let pid: i32 = std::fs::read_to_string(&self.pid_file)
            .expect("pid file")
            .trim()
            .parse()
            .unwrap();
        self.pids.push(pid);
        pid
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    fn mounted(&self) -> bool {
        mount_type(&self.mnt).is_some()
    }
}

impl Drop for Fx {
    fn drop(&mut self) {
        cleanup_mount(&self.mnt);
        for &pid in &self.pids {
            stop_daemon(pid);
        }
        if std::thread::panicking() {
            eprintln!("---- daemon log ----\n{}", self.log());
        }
    }
}

fn cleanup_mount(mnt: &Path) {
    for _ in 0..3 {
        if mount_type(mnt).is_none() {
            return;
        }
        let ok = Command::new("umount")
            .arg(mnt)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(mnt).status();
        }
    }
}

fn stop_daemon(pid: i32) {
    if !alive(pid) {
        return;
    }
    // SAFETY: kill(2) takes no pointers; the pid is the daemon this test
    // started (checked alive just above).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn write_creds(path: &Path, secret: &str) {
    std::fs::write(path, format!("library_secret={secret}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test]
async fn fstab_line_mount_then_umount() {
    let server = TestServer::start();
    let mut fx = Fx::new(&server);
    server.admin("/__stats/reset", "").await;
    fx.write_fstab(&[format!(
        "{}:-  {}  fuse.smhfs  _netdev,nofail,{},conflict=overwrite,allow_other,noexec,x-systemd.automount,x-systemd.mount-timeout=30,comment=smhfs  0  0",
        server.library,
        fx.mnt.display(),
        fx.opts(&server)
    )]);
    let out = run(Command::new("mount").arg("-T").arg(&fx.fstab).arg(&fx.mnt));
    assert!(out.status.success(), "mount failed: {}", stderr(&out));
    // Live as soon as mount(8) returned: no waiting.
    assert_eq!(mount_type(&fx.mnt).as_deref(), Some("fuse.smhfs"));
    let flags = mount_flags(&fx.mnt);
    assert!(
        flags.contains("noexec") && flags.contains("nosuid"),
        "{flags}"
    );
    let pid = fx.note_pid();
    std::fs::write(fx.mnt.join("hello.txt"), b"hello fstab").unwrap();
    assert_eq!(
        std::fs::read(fx.mnt.join("hello.txt")).unwrap(),
        b"hello fstab"
    );
    // mount -a sees the entry mounted (source and type match) and skips it.
    let out = run(Command::new("mount").arg("-a").arg("-T").arg(&fx.fstab));
    assert!(out.status.success(), "mount -a: {}", stderr(&out));
    let out = run(Command::new("umount").arg(&fx.mnt));
    assert!(out.status.success(), "umount: {}", stderr(&out));
    wait_until("daemon exit after umount", Duration::from_secs(10), || {
        !alive(pid)
    });
    assert!(!fx.pid_file.exists(), "pid file removed at exit");
    assert!(!fx.mounted());
    // `mount -a` mounts it again; fusermount3 -u ends that daemon too.
    let out = run(Command::new("mount").arg("-a").arg("-T").arg(&fx.fstab));
    assert!(out.status.success(), "mount -a: {}", stderr(&out));
    assert!(fx.mounted());
    let pid = fx.note_pid();
    assert_eq!(
        std::fs::read(fx.mnt.join("hello.txt")).unwrap(),
        b"hello fstab"
    );
    let out = run(Command::new("fusermount3").arg("-u").arg(&fx.mnt));
    assert!(out.status.success(), "fusermount3 -u: {}", stderr(&out));
    wait_until(
        "daemon exit after fusermount3 -u",
        Duration::from_secs(10),
        || !alive(pid),
    );
    let log = fx.log();
    assert!(
        log.contains("mounted") && log.contains("unmounted"),
        "{log}"
    );
}

#[tokio::test]
async fn mount_all_skips_failing_nofail_line() {
    let server = TestServer::start();
    let mut good = Fx::new(&server);
    let dead = Fx::new(&server);
    good.write_fstab(&[
        format!(
            "{}:-  {}  fuse.smhfs  _netdev,{}  0  0",
            server.library,
            good.mnt.display(),
            good.opts(&server)
        ),
        // Nothing listens on port 1.
        format!(
            "{}:-  {}  fuse.smhfs  _netdev,nofail,endpoint=http://127.0.0.1:1,credentials={}  0  0",
            server.library,
            dead.mnt.display(),
            dead.creds.display().to_string().replace(',', "\\,"),
        ),
    ]);
    let out = run(Command::new("mount").arg("-a").arg("-T").arg(&good.fstab));
    let err = stderr(&out);
    assert!(out.status.success(), "mount -a failed: {err}");
    assert!(
        err.contains("cannot access library") && err.contains("nofail"),
        "{err}"
    );
    assert!(good.mounted());
    assert!(!dead.mounted());
    good.note_pid();
}

#[tokio::test]
async fn bad_credentials_line_fails_with_message() {
    let server = TestServer::start();
    let fx = Fx::new(&server);
    write_creds(&fx.creds, "not-the-secret");
    fx.write_fstab(&[format!(
        "{}:-  {}  fuse.smhfs  _netdev,{}  0  0",
        server.library,
        fx.mnt.display(),
        fx.opts(&server)
    )]);
    let out = run(Command::new("mount").arg("-T").arg(&fx.fstab).arg(&fx.mnt));
    let err = stderr(&out);
    assert!(!out.status.success(), "mount succeeded: {err}");
    assert!(
        err.contains("cannot access library") && err.contains("WrongLibraryIdOrSecret"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret"), "secret leaked: {err}");
    assert!(!fx.mounted());
}

#[tokio::test]
async fn mount_t_fuse_smhfs_read_only() {
    let server = TestServer::start();
    let client = client_for(&server);
    let mut fx = Fx::new(&server);
    std::fs::write(fx.dir.path().join("seed"), b"seed").unwrap();
    client
        .upload_file(
            &p("seed.txt"),
            &fx.dir.path().join("seed"),
            None,
            &Default::default(),
        )
        .await
        .unwrap();
    let out = run(Command::new("mount")
        .arg("-t")
        .arg("fuse.smhfs")
        .arg(format!("{}:-", server.library))
        .arg(&fx.mnt)
        .arg("-o")
        .arg(format!("ro,{}", fx.opts(&server))));
    assert!(out.status.success(), "mount -t: {}", stderr(&out));
    fx.note_pid();
    assert!(
        mount_flags(&fx.mnt).starts_with("ro"),
        "{}",
        mount_flags(&fx.mnt)
    );
    assert_eq!(std::fs::read(fx.mnt.join("seed.txt")).unwrap(), b"seed");
    let e = std::fs::write(fx.mnt.join("new.txt"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
}

#[tokio::test]
async fn detached_parent_exit_codes() {
    let server = TestServer::start();
    let mut fx = Fx::new(&server);
    let exe = env!("CARGO_BIN_EXE_smhfs");
    let mount = |mnt: &Path, opts: String| {
        run(Command::new(exe)
            .arg("mount")
            .arg(format!("{}:-", server.library))
            .arg(mnt)
            .arg("-o")
            .arg(opts))
    };
    // Live: exit 0 once the mount answers.
    let out = mount(&fx.mnt, fx.opts(&server));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fx.mounted());
    fx.note_pid();
    assert!(std::fs::read_dir(&fx.mnt).is_ok());
    // Busy: the same mount point again.
    let out = mount(&fx.mnt, fx.opts(&server));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("busy"), "{}", stderr(&out));
    // Missing mount point.
    let missing = fx.dir.path().join("nope");
    let out = mount(&missing, fx.opts(&server));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    // Unreachable endpoint.
    let other = fx.dir.path().join("mnt2");
    std::fs::create_dir(&other).unwrap();
    let out = mount(
        &other,
        fx.opts(&server).replace(&server.url, "http://127.0.0.1:1"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot access library"),
        "{}",
        stderr(&out)
    );
    assert!(mount_type(&other).is_none());
    // Bad credentials.
    let bad = fx.dir.path().join("bad.cred");
    write_creds(&bad, "wrong");
    let out = mount(
        &other,
        format!("endpoint={},credentials={}", server.url, bad.display()),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("WrongLibraryIdOrSecret"),
        "{}",
        stderr(&out)
    );
    // Bad escape: refused before anything happens.
    let out = mount(&other, format!("{},comment=a\\b", fx.opts(&server)));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("escape"), "{}", stderr(&out));
}

#[tokio::test]
async fn detached_logs_without_log_file_and_debug() {
    let server = TestServer::start();
    let mut fx = Fx::new(&server);
    let opts = fx
        .opts(&server)
        .replace(&format!(",log_file={}", fx.log_file.display()), "")
        + ",debug";
    let out = run(Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .arg("mount")
        .arg(format!("{}:-", server.library))
        .arg(&fx.mnt)
        .arg("-o")
        .arg(&opts));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "detached: nothing on the terminal");
    let pid = fx.note_pid();
    assert!(std::fs::read_dir(&fx.mnt).is_ok());
    let out = run(Command::new("umount").arg(&fx.mnt));
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until("daemon exit", Duration::from_secs(10), || !alive(pid));
    if Path::new("/dev/log").exists() {
        return; // went to syslog/journald
    }
    let log = std::fs::read_to_string(fx.dir.path().join("cache/smhfs.log")).unwrap();
    assert!(log.contains("mounted") && log.contains("DEBUG"), "{log}");
}

#[tokio::test]
async fn helper_argv_form_and_fake_mount() {
    let server = TestServer::start();
    let mut fx = Fx::new(&server);
    let src = format!("{}:-", server.library);
    // `-f` from mount(8) means fake: everything is checked, nothing mounted.
    let out = run(Command::new(HELPER)
        .arg(&src)
        .arg(&fx.mnt)
        .arg("-sfnv")
        .arg("-o")
        .arg(fx.opts(&server))
        .arg("-t")
        .arg("fuse.smhfs"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!fx.mounted());
    // The real thing, with `-N` naming our own mount namespace.
    let out = run(Command::new(HELPER)
        .arg(&src)
        .arg(&fx.mnt)
        .arg("-n")
        .arg("-N")
        .arg(std::process::id().to_string())
        .arg("-o")
        .arg(fx.opts(&server))
        .arg("-t")
        .arg("fuse.smhfs"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fx.mounted());
    fx.note_pid();
    // A wrong type is refused.
    let out = run(Command::new(HELPER)
        .arg(&src)
        .arg(fx.dir.path())
        .arg("-o")
        .arg(fx.opts(&server))
        .arg("-t")
        .arg("fuse.other"));
    assert!(!out.status.success());
}

#[tokio::test]
async fn dead_mount_point_is_cleared_at_next_mount() {
    let server = TestServer::start();
    let mut fx = Fx::new(&server);
    fx.write_fstab(&[format!(
        "{}:-  {}  fuse.smhfs  {}  0  0",
        server.library,
        fx.mnt.display(),
        fx.opts(&server)
    )]);
    let out = run(Command::new("mount").arg("-T").arg(&fx.fstab).arg(&fx.mnt));
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = fx.note_pid();
    // SAFETY: kill(2) takes no pointers; the pid is the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until("daemon death", Duration::from_secs(10), || !alive(pid));
    let e = std::fs::metadata(&fx.mnt).unwrap_err();
    // ECONNABORTED when the stat races the connection's teardown.
    assert!(
        matches!(e.raw_os_error(), Some(libc::ENOTCONN | libc::ECONNABORTED)),
        "{e}"
    );
    let out = run(Command::new("mount").arg("-T").arg(&fx.fstab).arg(&fx.mnt));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("dead smhfs mount"), "{err}");
    fx.note_pid();
    assert!(std::fs::read_dir(&fx.mnt).is_ok());
}

/// Mounts with slow part uploads, writes a multi-part file, and while its
/// close() is uploading ends the mount with `how`. The close must succeed,
/// the server must hold the whole file, and the daemon must exit.
async fn upload_in_flight_survives(how: &str) {
    let server = TestServer::start();
    let mut fx = Fx::new(&server);
    let out = run(Command::new("mount")
        .arg("-t")
        .arg("fuse.smhfs")
        .arg(format!("{}:-", server.library))
        .arg(&fx.mnt)
        .arg("-o")
        .arg(format!(
            "{},part_size=1M,upload_concurrency=1,unmount_timeout=60",
            fx.opts(&server)
        )));
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = fx.note_pid();
    server.admin("/__latency", "part:400").await;
    let data = random_bytes(5 * MIB + 123);
    let path = fx.mnt.join("big.bin");
    let writer = {
        let data = data.clone();
        std::thread::spawn(move || std::fs::write(path, &data))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while op_count(&server.stats().await, "upload_begin") == 0 {
        assert!(Instant::now() < deadline, "upload never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match how {
        "sigterm" => {
            // SAFETY: kill(2) takes no pointers; the pid is the daemon this test started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        "umount -l" => {
            let out = run(Command::new("umount").arg("-l").arg(&fx.mnt));
            assert!(out.status.success(), "{}", stderr(&out));
        }
        _ => unreachable!(),
    }
    let started = Instant::now();
    while !writer.is_finished() {
        assert!(started.elapsed() < Duration::from_secs(30), "close() hung");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writer
        .join()
        .unwrap()
        .expect("close() succeeds: the upload finished");
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(Instant::now() < deadline, "daemon did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!fx.mounted());
    let client = client_for(&server);
    let url = client.download_url(&p("big.bin")).await.unwrap();
    let got = client.read_range(&url, 0, data.len() as u64).await.unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got[..] == data[..], "server content differs");
    let staged: Vec<_> = std::fs::read_dir(fx.dir.path().join("cache"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(staged.is_empty(), "staged files left: {staged:?}");
}

#[tokio::test]
async fn sigterm_waits_for_upload_in_flight() {
    upload_in_flight_survives("sigterm").await;
}

#[tokio::test]
async fn lazy_umount_waits_for_upload_in_flight() {
    upload_in_flight_survives("umount -l").await;
}

#[tokio::test]
async fn sigterm_with_a_file_held_open_exits_after_unmount_timeout() {
    let server = TestServer::start();
    let mut fx = Fx::new(&server);
    let out = run(Command::new("mount")
        .arg("-t")
        .arg("fuse.smhfs")
        .arg(format!("{}:-", server.library))
        .arg(&fx.mnt)
        .arg("-o")
        .arg(format!("{},unmount_timeout=1", fx.opts(&server))));
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = fx.note_pid();
    std::fs::write(fx.mnt.join("held.txt"), b"held").unwrap();
    let held = std::fs::File::open(fx.mnt.join("held.txt")).unwrap();
    // SAFETY: kill(2) takes no pointers; the pid is the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    // Detached from the namespace at once, although a file is open...
    wait_until("lazy unmount", Duration::from_secs(10), || !fx.mounted());
    // ...and the daemon gives up waiting after unmount_timeout.
    wait_until("daemon exit", Duration::from_secs(15), || !alive(pid));
    drop(held);
    assert!(fx.log().contains("unmount_timeout"), "{}", fx.log());
}

#[test]
fn install_script_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh");
    for _ in 0..2 {
        let out = run(Command::new("bash")
            .arg(script)
            .arg("--bin")
            .arg(env!("CARGO_BIN_EXE_smhfs"))
            .arg("--prefix")
            .arg(dir.path().join("usr"))
            .arg("--sbin")
            .arg(dir.path().join("sbin")));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let link = std::fs::read_link(dir.path().join("sbin/mount.fuse.smhfs")).unwrap();
    assert_eq!(link, dir.path().join("usr/bin/smhfs"));
    assert!(dir.path().join("usr/bin/smhfs").is_file());
}
