//! Metadata tools rely on (issue 14): mtimes, modes and owners kept on the
//! server and seen by a new mount; server-side copy for `cp`.

use crate::common;
use crate::common::mount;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Instant;

use common::TestServer;
use mount::*;

const MIB: usize = 1024 * 1024;

/// `localModificationTime` and `metaData` of `path` as the server has them.
async fn server_meta(
    client: &smhfs::smh::SmhClient,
    path: &str,
) -> (String, smhfs::smh::types::MetaData) {
    let info = client.stat(&p(path)).await.unwrap().expect("on the server");
    (
        info.local_modification_time.unwrap_or_default(),
        info.meta_data.unwrap_or_default(),
    )
}

/// The bytes the server stores at `path`.
async fn server_bytes(server: &TestServer, path: &str) -> Vec<u8> {
    let tok = server.token().await;
    common::http::download(server, &tok, path).await
}

/// The server's stats once `begins` upload begins arrived (≤ 5 s).
async fn settled(server: &TestServer, begins: u64) -> serde_json::Value {
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let s = server.stats().await;
        if op_count(&s, "upload_begin") >= begins || Instant::now() > deadline {
            // Nothing more arrives after the settling time.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            return server.stats().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn mtime_of(path: &std::path::Path) -> i64 {
    fs::metadata(path).unwrap().mtime()
}

#[tokio::test]
async fn touch_on_a_closed_file_is_stored_and_seen_after_remount() {
    let server = TestServer::start();
    let want: i64 = sh("date -d 2001-01-01 +%s").trim().parse().unwrap();
    let big = random_bytes(2 * MIB + 5);
    {
        let m = MountGuard::new(&server, "");
        fs::write(m.path("small.txt"), b"hello").unwrap();
        fs::write(m.path("big.bin"), &big).unwrap();
        server.reset_stats().await;
        let t = Instant::now();
        sh(&format!(
            "touch -d 2001-01-01 {}",
            m.path("big.bin").display()
        ));
        // Shown at once, sent after a short settling time.
        assert_eq!(mtime_of(&m.path("big.bin")), want);
        let s = settled(&server, 2).await;
        eprintln!(
            "metadata update of a 2 MiB file uploaded here: {:?} until stored; {}",
            t.elapsed(),
            m.log()
                .lines()
                .filter(|l| l.contains("metadata stored"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        // Known hashes: one begin with beginningHash, one with fullHash, no data.
        assert_eq!(stat_u64(&s, "part_bytes"), 0, "no data sent: {s}");
        assert_eq!(op_count(&s, "part_put") + op_count(&s, "object_put"), 0);
        assert_eq!(stat_u64(&s, "instant_upload_hits"), 1, "{s}");
        assert_eq!(op_count(&s, "upload_begin"), 2, "{s}");
        // chmod + chown + utimens in a burst: one update (a re-upload
        // for a small file: no instant upload below 1 MiB).
        server.reset_stats().await;
        let small = m.path("small.txt");
        sh(&format!(
            "chmod 600 {f} && chown 7:8 {f} && touch -d 2001-01-01 {f}",
            f = small.display()
        ));
        let s = settled(&server, 1).await;
        assert_eq!(op_count(&s, "upload_begin"), 1, "{s}");
        assert_eq!(op_count(&s, "upload_confirm"), 1, "{s}");
        // Its bytes are still in memory here: not downloaded again.
        assert_eq!(op_count(&s, "object_get"), 0, "{s}");
        let md = fs::metadata(&small).unwrap();
        assert_eq!((md.mode() & 0o777, md.uid(), md.gid()), (0o600, 7, 8));
        assert_eq!(mtime_of(&m.path("big.bin")), want);
        assert_eq!(mtime_of(&m.path("small.txt")), want);
        // Not reverted once the caches expire.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        assert_eq!(mtime_of(&m.path("small.txt")), want);
    }
    for f in ["small.txt", "big.bin"] {
        let (lmt, _) = server_meta(&client_for(&server), f).await;
        assert!(
            lmt.starts_with("2001-01-01") || lmt.starts_with("2000-12-31"),
            "{f}: {lmt}"
        );
    }
    assert_eq!(server_bytes(&server, "big.bin").await, big);
    assert_eq!(server_bytes(&server, "small.txt").await, b"hello");
    let m = MountGuard::new(&server, "");
    assert_eq!(mtime_of(&m.path("big.bin")), want);
    assert_eq!(mtime_of(&m.path("small.txt")), want);
}

#[tokio::test]
async fn chmod_chown_and_mkdir_modes_survive_a_remount() {
    let server = TestServer::start();
    {
        let m = MountGuard::new(&server, "");
        fs::write(m.path("f.txt"), b"data").unwrap();
        fs::set_permissions(m.path("f.txt"), fs::Permissions::from_mode(0o750)).unwrap();
        sh(&format!("chown 1234:5678 {}", m.path("f.txt").display()));
        sh(&format!("mkdir -m 0701 {}", m.path("d").display()));
        let md = fs::metadata(m.path("f.txt")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o750);
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
        // A directory's chmod: kept for the session.
        fs::create_dir(m.path("e")).unwrap();
        fs::set_permissions(m.path("e"), fs::Permissions::from_mode(0o711)).unwrap();
        assert_eq!(fs::metadata(m.path("e")).unwrap().mode() & 0o7777, 0o711);
        // ...and a chown after it keeps the mode (`install -d -m 700 -o`),
        // also once a file created in it has changed its mtime.
        sh(&format!("chown 4321:8765 {}", m.path("e").display()));
        fs::write(m.path("e/x"), b"x").unwrap();
        let e = fs::metadata(m.path("e")).unwrap();
        assert_eq!((e.mode() & 0o7777, e.uid(), e.gid()), (0o711, 4321, 8765));
    }
    let (_, meta) = server_meta(&client_for(&server), "f.txt").await;
    assert_eq!(
        meta.get("mode").map(String::as_str),
        Some("33256"),
        "{meta:?}"
    );
    assert_eq!(meta.get("uid").map(String::as_str), Some("1234"));
    assert_eq!(meta.get("gid").map(String::as_str), Some("5678"));
    let m = MountGuard::new(&server, "");
    let md = fs::metadata(m.path("f.txt")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o750);
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert_eq!(fs::read(m.path("f.txt")).unwrap(), b"data");
    let d = fs::metadata(m.path("d")).unwrap();
    assert!(d.is_dir());
    assert_eq!(d.mode() & 0o7777, 0o701);
}

#[tokio::test]
async fn an_executable_script_runs_also_after_a_remount() {
    let server = TestServer::start();
    {
        let m = MountGuard::new(&server, "");
        let s = m.path("script.sh");
        fs::write(&s, "#!/bin/sh\necho ran-ok\n").unwrap();
        sh(&format!("chmod +x {}", s.display()));
        assert_eq!(
            sh(&format!("cd {} && ./script.sh", m.mnt.display())),
            "ran-ok\n"
        );
    }
    let m = MountGuard::new(&server, "");
    assert_eq!(
        sh(&format!("cd {} && ./script.sh", m.mnt.display())),
        "ran-ok\n"
    );
}

#[tokio::test]
async fn rsync_twice_sends_nothing_the_second_time() {
    let server = TestServer::start();
    let src = tempfile::tempdir().unwrap();
    let files = [
        ("a.txt", random_bytes(100)),
        ("sub/b.bin", random_bytes(2 * MIB)),
        ("sub/c.sh", b"#!/bin/sh\n".to_vec()),
    ];
    fs::create_dir(src.path().join("sub")).unwrap();
    for (n, d) in &files {
        fs::write(src.path().join(n), d).unwrap();
    }
    fs::set_permissions(
        src.path().join("sub/c.sh"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let m = MountGuard::new(&server, "");
    let rsync = format!(
        "rsync -a {}/ {}/",
        src.path().display(),
        m.path("dst").display()
    );
    sh(&rsync);
    for (n, d) in &files {
        assert_eq!(&server_bytes(&server, &format!("dst/{n}")).await, d);
    }
    drop(m);
    let m = MountGuard::new(&server, "");
    let rsync = format!(
        "rsync -a {}/ {}/",
        src.path().display(),
        m.path("dst").display()
    );
    server.reset_stats().await;
    sh(&rsync);
    let s = server.stats().await;
    assert_eq!(op_count(&s, "upload_begin"), 0, "{s}");
    assert_eq!(stat_u64(&s, "part_bytes"), 0, "{s}");
    for (n, d) in &files {
        assert_eq!(&server_bytes(&server, &format!("dst/{n}")).await, d);
    }
    assert_eq!(
        fs::metadata(m.path("dst/sub/c.sh")).unwrap().mode() & 0o777,
        0o755
    );
}

#[tokio::test]
async fn cp_inside_the_mount_is_one_server_copy() {
    let server = TestServer::start();
    let data = random_bytes(3 * MIB);
    let m = MountGuard::new(&server, "");
    fs::write(m.path("a.bin"), &data).unwrap();
    server.reset_stats().await;
    sh(&format!(
        "cp {} {}",
        m.path("a.bin").display(),
        m.path("b.bin").display()
    ));
    let s = server.stats().await;
    assert_eq!(op_count(&s, "file_copy"), 1, "{s}");
    assert_eq!(op_count(&s, "upload_begin"), 0, "{s}");
    assert_eq!(stat_u64(&s, "part_bytes"), 0, "{s}");
    assert_eq!(server_bytes(&server, "b.bin").await, data);
    assert_eq!(fs::read(m.path("b.bin")).unwrap(), data);
    assert_eq!(
        fs::metadata(m.path("b.bin")).unwrap().len(),
        data.len() as u64
    );
}

#[tokio::test]
async fn a_partial_copy_file_range_falls_back_to_read_write() {
    let server = TestServer::start();
    let data = random_bytes(MIB + 333);
    let m = MountGuard::new(&server, "");
    fs::write(m.path("a.bin"), &data).unwrap();
    let py = format!(
        "import os\n\
         i = os.open('{a}', os.O_RDONLY)\n\
         o = os.open('{b}', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n\
         n = 0\n\
         while True:\n    \
             k = os.copy_file_range(i, o, 1 << 30, 1000 + n)\n    \
             if k == 0: break\n    \
             n += k\n\
         os.close(o)\n\
         print(n)\n",
        a = m.path("a.bin").display(),
        b = m.path("b.bin").display()
    );
    let out = sh(&format!("python3 -c \"{py}\""));
    assert_eq!(out.trim(), (data.len() - 1000).to_string());
    assert_eq!(server_bytes(&server, "b.bin").await, &data[1000..]);
}

#[tokio::test]
async fn files_from_other_clients_show_the_umask_defaults() {
    let server = TestServer::start();
    let tok = server.token().await;
    common::http::upload(&server, &tok, "other.txt", b"x", "").await;
    common::http::mkdir(&server, &tok, "otherdir").await;
    let m = MountGuard::new(&server, "umask=027");
    assert_eq!(
        fs::metadata(m.path("other.txt")).unwrap().mode() & 0o7777,
        0o640
    );
    assert_eq!(
        fs::metadata(m.path("otherdir")).unwrap().mode() & 0o7777,
        0o750
    );
}

#[tokio::test]
async fn cp_p_and_write_back_carry_the_metadata_in_the_one_upload() {
    let server = TestServer::start();
    let src = tempfile::tempdir().unwrap();
    let f = src.path().join("tool.sh");
    fs::write(&f, b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o751)).unwrap();
    sh(&format!("touch -d 2001-01-01 {}", f.display()));
    let want: i64 = sh("date -d 2001-01-01 +%s").trim().parse().unwrap();
    {
        // cp -p sets times and mode on the open descriptor: one upload.
        let m = MountGuard::new(&server, "");
        server.reset_stats().await;
        sh(&format!(
            "cp -p {} {}",
            f.display(),
            m.path("tool.sh").display()
        ));
        let s = settled(&server, 1).await;
        assert_eq!(op_count(&s, "upload_begin"), 1, "{s}");
        // write_back: the changes after close() join the pending upload.
        let w = MountGuard::new(&server, "write_back=1");
        server.reset_stats().await;
        let g = w.path("late.txt");
        fs::write(&g, b"late").unwrap();
        sh(&format!(
            "chmod 700 {f} && touch -d 2001-01-01 {f}",
            f = g.display()
        ));
        let s = settled(&server, 1).await;
        assert_eq!(op_count(&s, "upload_begin"), 1, "{s}");
    }
    let m = MountGuard::new(&server, "");
    for (name, mode) in [("tool.sh", 0o751), ("late.txt", 0o700)] {
        let md = fs::metadata(m.path(name)).unwrap();
        assert_eq!(md.mode() & 0o7777, mode, "{name}");
        assert_eq!(md.mtime(), want, "{name}");
    }
    assert_eq!(sh(&format!("{}", m.path("tool.sh").display())), "hi\n");
}

/// In an `allow_other` mount what a user makes is that user's (stored
/// `uid`/`gid`), so the kernel lets them chmod it and others not; a
/// single-user mount shows its `-o uid,gid` (checked in mount_namespace).
#[tokio::test]
async fn in_an_allow_other_mount_new_files_belong_to_their_creator() {
    let server = TestServer::start();
    {
        let m = MountGuard::new(&server, "allow_other");
        fs::create_dir(m.path("shared")).unwrap();
        fs::set_permissions(m.path("shared"), fs::Permissions::from_mode(0o777)).unwrap();
        let f = m.path("shared/mine.txt");
        let as_nobody = |cmd: &str| {
            std::process::Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "sh",
                    "-c",
                    cmd,
                ])
                .output()
                .unwrap()
        };
        let out = as_nobody(&format!("echo hi > {f} && chmod 0640 {f}", f = f.display()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let md = fs::metadata(&f).unwrap();
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o7777),
            (65534, 65534, 0o640)
        );
        // Root's own files stay root's.
        fs::write(m.path("shared/roots.txt"), b"r").unwrap();
        let out = as_nobody(&format!(
            "chmod 0777 {}",
            m.path("shared/roots.txt").display()
        ));
        assert!(!out.status.success(), "nobody may not chmod root's file");
    }
    let (_, meta) = server_meta(&client_for(&server), "shared/mine.txt").await;
    assert_eq!(
        meta.get("uid").map(String::as_str),
        Some("65534"),
        "{meta:?}"
    );
    assert_eq!(
        meta.get("gid").map(String::as_str),
        Some("65534"),
        "{meta:?}"
    );
    let m = MountGuard::new(&server, "allow_other");
    let md = fs::metadata(m.path("shared/mine.txt")).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (65534, 65534, 0o640)
    );
}

/// New entries get the mode asked for (the caller's umask applied), as on
/// a local file system; `-o umask`, when given, masks them too.
#[tokio::test]
async fn new_entries_get_the_requested_mode_unless_a_umask_is_given() {
    let server = TestServer::start();
    for (opts, file, dir) in [("", 0o666, 0o777), ("umask=027", 0o640, 0o750)] {
        let m = MountGuard::new(&server, opts);
        let tag = if opts.is_empty() { "plain" } else { "masked" };
        let f = m.path(&format!("{tag}.txt"));
        let d = m.path(&format!("{tag}.d"));
        sh(&format!(
            "umask 0; touch {} && mkdir {}",
            f.display(),
            d.display()
        ));
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o7777, file, "{opts}");
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, dir, "{opts}");
    }
}
