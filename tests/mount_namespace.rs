//! Directories, renames, deletes and tools (cp -r, tar, rsync, git) through
//! a real mount against a real `smhfs serve`.

use crate::common;
use crate::common::mount;

use std::fs;
use std::process::Command;

use futures::StreamExt;

use common::TestServer;
use mount::*;
use smhfs::smh::ConflictStrategy;

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn mkdir_readdir_stat() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "umask=027,uid=1234,gid=5678");
    fs::create_dir(m.path("d")).unwrap();
    fs::create_dir_all(m.path("d/e/f")).unwrap();
    fs::write(m.path("d/one.txt"), b"1").unwrap();
    fs::write(m.path("d/three.txt"), b"333").unwrap();
    assert_eq!(names(&m.path("d")), vec!["e", "one.txt", "three.txt"]);
    let md = fs::metadata(m.path("d/three.txt")).unwrap();
    assert!(md.is_file());
    assert_eq!(md.len(), 3);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(md.mode() & 0o777, 0o640);
    assert_eq!(fs::metadata(m.path("d/e")).unwrap().mode() & 0o777, 0o750);
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert!(fs::metadata(m.path("d/e/f")).unwrap().is_dir());
    // Names that need encoding on the wire.
    let odd = "a b ü %41 #?&+.txt";
    fs::write(m.path(&format!("d/{odd}")), b"odd").unwrap();
    assert_eq!(fs::read(m.path(&format!("d/{odd}"))).unwrap(), b"odd");
    assert!(names(&m.path("d")).contains(&odd.to_string()));
    fs::remove_file(m.path(&format!("d/{odd}"))).unwrap();
    let e = fs::create_dir(m.path("d")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
    let e = fs::metadata(m.path("nope")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    let long = "x".repeat(256);
    let e = fs::write(m.path(&long), b"").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    let e = fs::hard_link(m.path("d/one.txt"), m.path("d/link")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    // Symlinks, FIFOs and devices: `mount_links.rs`.
    let out = sh(&format!(
        "df -B1 --output=source,fstype,size {}",
        m.mnt.display()
    ));
    assert!(out.contains("smhfs"), "{out}");
}

#[tokio::test]
async fn server_side_changes_and_subdir_mount() {
    let server = TestServer::start();
    let client = client_for(&server);
    client
        .create_dir(&p("sub/inner"), ConflictStrategy::Ask)
        .await
        .unwrap();
    let m = MountGuard::try_new(&server, "/sub", "").unwrap();
    assert_eq!(names(&m.mnt), vec!["inner"]);
    fs::write(m.path("inner/x"), b"x").unwrap();
    assert!(client.head_file(&p("sub/inner/x")).await.unwrap().is_some());
}

#[tokio::test]
async fn rename_files_and_directories() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    let client = client_for(&server);
    fs::create_dir_all(m.path("a/b")).unwrap();
    fs::write(m.path("a/b/f.txt"), b"hello").unwrap();
    fs::write(m.path("target.txt"), b"old").unwrap();
    // File onto an existing file replaces it (POSIX).
    fs::write(m.path("a/new.txt"), b"new").unwrap();
    fs::rename(m.path("a/new.txt"), m.path("target.txt")).unwrap();
    assert_eq!(fs::read(m.path("target.txt")).unwrap(), b"new");
    assert!(!m.path("a/new.txt").exists());
    // Directory with content, to a new name.
    fs::rename(m.path("a"), m.path("z")).unwrap();
    assert_eq!(fs::read(m.path("z/b/f.txt")).unwrap(), b"hello");
    assert!(!m.path("a").exists());
    assert!(client.head_file(&p("z/b/f.txt")).await.unwrap().is_some());
    // Directory onto an existing empty directory.
    fs::create_dir(m.path("empty")).unwrap();
    fs::rename(m.path("z"), m.path("empty")).unwrap();
    assert_eq!(fs::read(m.path("empty/b/f.txt")).unwrap(), b"hello");
    // Directory onto a non-empty directory fails.
    fs::create_dir_all(m.path("full/x")).unwrap();
    fs::create_dir(m.path("other")).unwrap();
    let e = fs::rename(m.path("other"), m.path("full")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
    // Rename an open file being written, then close: content lands at the new name.
    {
        use std::io::Write;
        let mut f = fs::File::create(m.path("tmp.part")).unwrap();
        f.write_all(b"partial").unwrap();
        fs::rename(m.path("tmp.part"), m.path("final.txt")).unwrap();
        f.write_all(b" done").unwrap();
    }
    assert_eq!(fs::read(m.path("final.txt")).unwrap(), b"partial done");
    assert!(client.head_file(&p("tmp.part")).await.unwrap().is_none());
}

#[tokio::test]
async fn rmdir_and_unlink() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    let client = client_for(&server);
    fs::create_dir_all(m.path("d/sub")).unwrap();
    fs::write(m.path("d/sub/keep.txt"), b"keep").unwrap();
    let e = fs::remove_dir(m.path("d/sub")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
    let e = fs::remove_dir(m.path("d")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY));
    assert!(
        client
            .head_file(&p("d/sub/keep.txt"))
            .await
            .unwrap()
            .is_some(),
        "nothing deleted"
    );
    fs::remove_file(m.path("d/sub/keep.txt")).unwrap();
    assert!(client
        .head_file(&p("d/sub/keep.txt"))
        .await
        .unwrap()
        .is_none());
    fs::remove_dir(m.path("d/sub")).unwrap();
    fs::remove_dir(m.path("d")).unwrap();
    assert!(names(&m.mnt).is_empty());
    let e = fs::remove_file(m.path("nothing")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
}

#[tokio::test]
async fn ls_l_of_3000_entries_uses_few_listings() {
    let server = TestServer::start();
    let client = client_for(&server);
    client
        .create_dir(&p("many"), ConflictStrategy::Ask)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x");
    fs::write(&src, b"abc").unwrap();
    let mut tasks = futures::stream::iter(0..3000)
        .map(|i| {
            let client = client.clone();
            let src = src.clone();
            async move {
                client
                    .upload_file(
                        &p(&format!("many/f{i:04}")),
                        &src,
                        None,
                        &Default::default(),
                    )
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(16);
    while tasks.next().await.is_some() {}
    let m = MountGuard::new(&server, "");
    let before = server.stats().await;
    let out = sh(&format!("ls -l {}", m.path("many").display()));
    let after = server.stats().await;
    assert_eq!(out.lines().filter(|l| l.contains(" f")).count(), 3000);
    assert!(out.contains(" 3 "), "sizes shown");
    let lists = op_count(&after, "dir_list") - op_count(&before, "dir_list");
    assert!(lists <= 4, "{lists} listing requests");
    let per_entry = ["dir_info", "file_info", "file_head", "dir_head"];
    let infos: u64 = per_entry
        .iter()
        .map(|k| op_count(&after, k) - op_count(&before, k))
        .sum();
    assert!(infos <= 2, "{infos} per-entry requests");
}

#[tokio::test]
async fn cp_r_tar_rsync_git() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    let src = tempfile::tempdir().unwrap();
    for d in 0..10 {
        fs::create_dir(src.path().join(format!("d{d}"))).unwrap();
        for f in 0..30 {
            fs::write(
                src.path().join(format!("d{d}/f{f}.txt")),
                format!("file {d}/{f}\n").repeat(f + 1),
            )
            .unwrap();
        }
    }
    let s = src.path().display();
    let mnt = m.mnt.display();
    let t = std::time::Instant::now();
    sh(&format!("cp -r {s} {mnt}/cp"));
    eprintln!("cp -r of 300 files: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    sh(&format!("diff -r {s} {mnt}/cp"));
    eprintln!("diff: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    sh(&format!(
        "mkdir {mnt}/tar && tar -C {s} -cf - . | tar -C {mnt}/tar -xf -"
    ));
    eprintln!("tar: {:?}", t.elapsed());
    sh(&format!("diff -r {s} {mnt}/tar"));
    let t = std::time::Instant::now();
    sh(&format!("rsync -a {s}/ {mnt}/rsync/"));
    eprintln!("rsync: {:?}", t.elapsed());
    sh(&format!("diff -r {s} {mnt}/rsync"));
    let t = std::time::Instant::now();
    // A second rsync finds nothing to do... or at least succeeds.
    sh(&format!("rsync -a {s}/ {mnt}/rsync/"));
    eprintln!("rsync2: {:?}", t.elapsed());
    // git: a repository with a few commits, cloned into the mount.
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path().display();
    sh(&format!(
        "cd {r} && git init -q . && git config user.email t@t && git config user.name t && \
         cp -r {s}/d0 . && git add -A && git commit -qm one && echo more > extra && git add extra && git commit -qm two"
    ));
    let out = Command::new("git")
        .args([
            "clone",
            "-q",
            &repo.path().display().to_string(),
            &format!("{mnt}/clone"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sh(&format!(
        "cd {mnt}/clone && git fsck && git log --oneline | wc -l | grep -q 2 && diff -r {r}/d0 d0"
    ));
}

#[test]
fn refuses_bad_options_before_mounting() {
    let server = TestServer::start();
    let e = MountGuard::try_new(&server, "", "no_such_option")
        .err()
        .unwrap();
    assert!(e.contains("no_such_option"), "{e}");
    let e = MountGuard::try_new(&server, "", "conflict=sometimes")
        .err()
        .unwrap();
    assert!(e.contains("conflict"), "{e}");
    let e = MountGuard::try_new(&server, "/does/not/exist", "")
        .err()
        .unwrap();
    assert!(e.contains("does/not/exist"), "{e}");
}

#[tokio::test]
async fn read_only_mount() {
    let server = TestServer::start();
    let client = client_for(&server);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x");
    fs::write(&src, b"data").unwrap();
    client
        .upload_file(&p("f.txt"), &src, None, &Default::default())
        .await
        .unwrap();
    let m = MountGuard::new(&server, "ro,allow_other");
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.contains(m.mnt.to_str().unwrap()))
        .unwrap();
    assert!(
        line.contains("allow_other") && line.contains(" ro"),
        "{line}"
    );
    assert_eq!(fs::read(m.path("f.txt")).unwrap(), b"data");
    let e = fs::write(m.path("f.txt"), b"new").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    let e = fs::create_dir(m.path("d")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
    let e = fs::remove_file(m.path("f.txt")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS));
}

#[test]
fn helper_argv_and_sigterm_unmount() {
    let server = TestServer::start();
    let mut m = MountGuard::new_helper_form(&server);
    fs::write(m.path("a"), b"a").unwrap();
    let st = m
        .signal_and_wait(libc::SIGTERM)
        .expect("exits after SIGTERM");
    assert!(st.success(), "{st}");
    assert!(!m.is_mounted(), "unmounted");
}

/// Runs `smhfs mount` expecting it to fail before mounting; returns stderr.
fn mount_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn refuses_bad_credentials_and_endpoints_in_one_line() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let creds = dir.path().join("creds");
    fs::write(&creds, "library_secret=N0tTheS3cret\n").unwrap();
    fs::set_permissions(&creds, fs::Permissions::from_mode(0o600)).unwrap();
    let mnt_s = mnt.to_str().unwrap();
    let opts = |endpoint: &str| format!("endpoint={endpoint},credentials={}", creds.display());
    let lib = format!("{}:-", server.library);
    let err = mount_fails(&["mount", &lib, mnt_s, "-o", &opts(&server.url)]);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains("N0tTheS3cret"), "secret leaked: {err}");
    let err = mount_fails(&["mount", &lib, mnt_s, "-o", &opts("http://127.0.0.1:9")]);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let err = mount_fails(&["mount", "bad source!", mnt_s, "-o", &opts(&server.url)]);
    assert!(err.contains("source"), "{err}");
    fs::set_permissions(&creds, fs::Permissions::from_mode(0o644)).unwrap();
    let err = mount_fails(&["mount", &lib, mnt_s, "-o", &opts(&server.url)]);
    assert!(err.contains("chmod 600"), "{err}");
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!info.contains(mnt_s), "nothing mounted");
}
