//! Issue 11's matrix: shell idioms that write a file, through a real mount
//! of `smhfs serve`, in each conflict mode (and once with write-back), into
//! a new and an existing file. Each row checks the bytes the server stores
//! (downloaded through the API), the names in the directory and the number
//! of upload confirms the server counted: one per written file, none for a
//! write that failed.

use crate::common;
use crate::common::mount;

use std::process::Command;
use std::time::{Duration, Instant};

use common::TestServer;
use mount::*;
use smhfs::smh::{ConflictStrategy, SmhClient};

/// The shell idioms; `f` is the target, `$SRC` a local file holding "src\n".
const CASES: &[(&str, &str, &str)] = &[
    // (name, command, content written when the file is new)
    ("echo", "echo one > f", "one\n"),
    ("append", "echo one >> f", "one\n"),
    ("cat", "cat \"$SRC\" > f", "src\n"),
    ("tee", "printf 'tee\\n' | tee f > /dev/null", "tee\n"),
    ("dd", "printf 'dd\\n' | dd of=f status=none", "dd\n"),
    ("cp", "cp \"$SRC\" f", "src\n"),
    ("python", "python3 -c \"open('f','w').write('py\\n')\"", "py\n"),
    ("exec", "exec 3>f || exit 1; echo ex >&3; exec 3>&-", "ex\n"),
    (
        "fork",
        "python3 -c \"import os\nfd=os.open('f',os.O_WRONLY|os.O_CREAT|os.O_TRUNC)\nif os.fork()==0:\n  os.write(fd,b'fork\\n'); os._exit(0)\nos.wait(); os.close(fd)\"",
        "fork\n",
    ),
    ("sed", "sed -i s/old/new/ f", "new\n"),
    ("editor", "printf 'ed\\n' > f.tmp && mv f.tmp f", "ed\n"),
];

const OLD: &str = "old\n";

async fn confirms(server: &TestServer) -> u64 {
    op_count(&server.stats().await, "upload_confirm")
}

async fn content(client: &SmhClient, path: &str) -> Option<String> {
    let head = client.head_file(&p(path)).await.unwrap()?;
    if head.size == 0 {
        return Some(String::new());
    }
    let url = client.download_url(&p(path)).await.unwrap();
    let b = client.read_range(&url, 0, head.size).await.unwrap();
    Some(String::from_utf8_lossy(&b).into_owned())
}

async fn names(client: &SmhClient, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = client
        .list_all(&p(dir))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    v.sort();
    v
}

async fn seed(client: &SmhClient, path: &str, data: &[u8]) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), data).unwrap();
    client
        .upload_file(&p(path), tmp.path(), None, &Default::default())
        .await
        .unwrap();
}

/// Waits (bounded) until the server counted `want` confirms, then a little
/// longer so that an extra one would be seen.
async fn settle(server: &TestServer, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while confirms(server).await < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    confirms(server).await
}

/// What a row must leave on the server: names with their content.
fn expected(
    mode: ConflictStrategy,
    case: &str,
    existing: bool,
    new_content: &str,
) -> (bool, Vec<(String, String)>, u64) {
    let written = if case == "append" && existing {
        format!("{OLD}{new_content}")
    } else {
        new_content.to_string()
    };
    let f = |c: &str| ("f".to_string(), c.to_string());
    if !existing {
        return (true, vec![f(&written)], 1);
    }
    match mode {
        ConflictStrategy::Overwrite => (true, vec![f(&written)], 1),
        // Keep both: the new content gets the server's free name.
        ConflictStrategy::Rename => (true, vec![f(OLD), ("f (1)".into(), written)], 1),
        // Never replace: opening f for writing is refused; a file written
        // beside it and renamed over it stays under its own name (sed
        // removes its temporary file when the rename fails).
        ConflictStrategy::Ask => match case {
            "editor" => (false, vec![f(OLD), ("f.tmp".into(), written)], 1),
            "sed" => (false, vec![f(OLD)], 1),
            _ => (false, vec![f(OLD)], 0),
        },
    }
}

async fn run_mode(mode: ConflictStrategy, opts: &str) {
    let server = TestServer::start();
    let m = MountGuard::new(&server, opts);
    let client = client_for(&server);
    let src = tempfile::tempdir().unwrap();
    let src_file = src.path().join("src");
    std::fs::write(&src_file, "src\n").unwrap();
    let mut failures = Vec::new();
    for (i, (case, cmd, new_content)) in CASES.iter().enumerate() {
        for existing in [false, true] {
            if *case == "sed" && !existing {
                continue; // sed -i edits an existing file
            }
            let dir = format!("c{i}{}", if existing { "e" } else { "n" });
            client
                .create_dir(&p(&dir), ConflictStrategy::Ask)
                .await
                .unwrap();
            if existing {
                seed(&client, &format!("{dir}/f"), OLD.as_bytes()).await;
            }
            server.reset_stats().await;
            let out = Command::new("bash")
                .arg("-c")
                .arg(cmd)
                .current_dir(m.path(&dir))
                .env("SRC", &src_file)
                .output()
                .unwrap();
            let (ok, want, want_confirms) = expected(mode, case, existing, new_content);
            let got_confirms = settle(&server, want_confirms).await;
            let got_names = names(&client, &dir).await;
            let mut got = Vec::new();
            for n in &got_names {
                got.push((
                    n.clone(),
                    content(&client, &format!("{dir}/{n}")).await.unwrap(),
                ));
            }
            let row = format!("{mode:?} {case} existing={existing}");
            if out.status.success() != ok {
                failures.push(format!(
                    "{row}: exit {:?} ({})",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            if got != want {
                failures.push(format!("{row}: server has {got:?}, want {want:?}"));
            }
            if got_confirms != want_confirms {
                failures.push(format!(
                    "{row}: {got_confirms} confirms, want {want_confirms}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn overwrite_mode() {
    run_mode(ConflictStrategy::Overwrite, "conflict=overwrite").await;
}

#[tokio::test]
async fn rename_mode() {
    run_mode(ConflictStrategy::Rename, "conflict=rename").await;
}

#[tokio::test]
async fn ask_mode() {
    run_mode(ConflictStrategy::Ask, "conflict=ask").await;
}

#[tokio::test]
async fn write_back_mode() {
    run_mode(ConflictStrategy::Overwrite, "write_back=0").await;
}

/// `cat big > f` into a cache dir that fills up: the writer gets ENOSPC and
/// the server keeps what it had (the old 2 MiB file, or nothing).
#[tokio::test]
async fn full_cache_dir_never_changes_the_server() {
    let server = TestServer::start();
    let tmpfs = tempfile::tempdir().unwrap();
    let cache = tmpfs.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=4m,mode=0700 tmpfs {}",
        cache.display()
    ));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Unmount(cache.clone());
    let m = MountGuard::new(
        &server,
        &format!("cache_dir={},cache_size=1G,cache_wait=1", cache.display()),
    );
    let client = client_for(&server);
    let old = random_bytes(2 << 20);
    seed(&client, "old.bin", &old).await;
    let big = tmpfs.path().join("big");
    std::fs::write(&big, random_bytes(8 << 20)).unwrap();
    for name in ["old.bin", "new.bin"] {
        server.reset_stats().await;
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cat {} > {}",
                big.display(),
                m.path(name).display()
            ))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}: cat must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("No space left"), "{name}: {err}");
        assert_eq!(settle(&server, 0).await, 0, "{name}: no confirm");
    }
    let head = client.head_file(&p("old.bin")).await.unwrap().unwrap();
    assert_eq!(head.size, old.len() as u64, "the old version stays");
    assert_eq!(names(&client, "").await, vec!["old.bin".to_string()]);
    drop(m);
}

/// `rm -rf DIR` while a file in it is still being written (past the
/// in-memory size, so it is staged and would be journaled): nothing of it
/// stays in the cache directory or the journal, and nothing is uploaded.
#[tokio::test]
async fn rm_rf_while_writing_leaves_nothing_behind() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    std::fs::create_dir(m.path("d")).unwrap();
    server.reset_stats().await;
    let script = "import shutil\n\
                  f=open('d/f','wb'); f.write(b'x'*(512<<10)); f.flush()\n\
                  shutil.rmtree('d')\n\
                  f.write(b'y'*(3<<20)); f.flush(); f.close()\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(&m.mnt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(settle(&server, 0).await, 0, "nothing uploaded");
    let left = m.staged_files();
    assert!(left.is_empty(), "left in cache_dir: {left:?}");
    let status = sh(&format!(
        "{} status --cache-dir {}",
        env!("CARGO_BIN_EXE_smhfs"),
        m.cache_dir.display()
    ));
    assert!(status.starts_with("pending uploads: 0"), "{status}");
    assert_eq!(status.lines().count(), 1, "{status}");
}

/// A name the server refuses (a newline) fails at create and mkdir with
/// EINVAL, before any data is staged.
#[tokio::test]
async fn names_the_server_refuses_fail_at_create() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    // A cached listing answers the kernel's lookup ("no such name"), so
    // the create itself must refuse the name.
    assert_eq!(std::fs::read_dir(&m.mnt).unwrap().count(), 0);
    let e = std::fs::File::create(m.path("bad\nname")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    let e = std::fs::create_dir(m.path("bad\ndir")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    std::fs::write(m.path("ok"), b"ok").unwrap();
    let e = std::fs::rename(m.path("ok"), m.path("ok\n")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
    assert!(m.staged_files().is_empty(), "{:?}", m.staged_files());
}

/// A reader's close neither uploads nor reports a writer's failing upload.
#[tokio::test]
async fn readers_close_never_uploads_or_fails() {
    use std::io::Write;
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    std::fs::write(m.path("r.txt"), b"first").unwrap();
    let mut w = std::fs::OpenOptions::new()
        .write(true)
        .open(m.path("r.txt"))
        .unwrap();
    w.write_all(b"second").unwrap();
    server.admin("/__fault", "begin:503:100%").await;
    server.reset_stats().await;
    let t = Instant::now();
    let r = std::fs::File::open(m.path("r.txt")).unwrap();
    let closed = nix_close(r);
    assert_eq!(closed, 0, "a reader's close succeeds");
    assert!(t.elapsed() < Duration::from_secs(2), "and returns at once");
    let begins = op_count(&server.stats().await, "upload_begin");
    assert_eq!(begins, 0, "the reader's close began no upload");
    server.admin("/__faults/clear", "").await;
    drop(w);
    let got = content(&client_for(&server), "r.txt").await;
    assert_eq!(got.as_deref(), Some("second"), "the writer's close uploads");
}

/// close(2) of `f`'s descriptor, returning its result (std ignores it).
fn nix_close(f: std::fs::File) -> i32 {
    use std::os::fd::IntoRawFd;
    let fd = f.into_raw_fd();
    // SAFETY: `fd` was just taken from the File, which no longer owns it.
    unsafe { libc::close(fd) }
}
