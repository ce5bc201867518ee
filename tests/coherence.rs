//! Coherence with other clients (issue 13): real mounts of real servers,
//! changes made through the API (or another mount) behind a mount's back.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use crate::common;

use common::http::{api, data, send, upload};
use common::mount::MountGuard;
use common::TestServer;
use reqwest::{Method, StatusCode};

const MIB: usize = 1024 * 1024;
const OVERWRITE: &str = "conflict_resolution_strategy=overwrite";

async fn put(s: &TestServer, tok: &str, path: &str, body: &[u8]) {
    let (st, v) = upload(s, tok, path, body, OVERWRITE).await;
    assert_eq!(st, StatusCode::OK, "upload {path}: {v}");
}

/// Reads what is left of `f` in 256 KiB reads: the bytes, and the errno
/// that ended it early (if any).
fn read_rest(f: &mut std::fs::File, into: &mut Vec<u8>) -> Option<i32> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) => return Some(e.raw_os_error().unwrap_or(0)),
        }
    }
}

#[tokio::test]
async fn a_reader_during_an_overwrite_gets_the_old_version_or_estale() {
    let s = TestServer::start();
    let tok = s.token().await;
    let old = data(8 * MIB, 1);
    put(&s, &tok, "mix.bin", &old).await;
    let m = MountGuard::new(&s, "");
    let mut f = std::fs::File::open(m.path("mix.bin")).unwrap();
    let mut got = vec![0u8; MIB];
    f.read_exact(&mut got).unwrap();
    assert_eq!(got, old[..MIB]);
    // Another client replaces the file (same size: only the content says
    // which version a byte is from).
    let new = data(8 * MIB, 2);
    put(&s, &tok, "mix.bin", &new).await;
    let end = read_rest(&mut f, &mut got);
    assert_eq!(got[..], old[..got.len()], "only bytes of the old version");
    match end {
        None => assert_eq!(got.len(), old.len(), "the whole old version"),
        Some(errno) => assert_eq!(errno, libc::ESTALE, "the old version is gone"),
    }
    // Seeking back does not resurrect the handle's version from elsewhere.
    f.seek(SeekFrom::Start(5 * MIB as u64)).unwrap();
    let mut again = Vec::new();
    if read_rest(&mut f, &mut again).is_none() {
        assert_eq!(again[..], old[5 * MIB..], "old bytes or nothing");
    }
    drop(f);
    // A new open reads the new version (after the attribute timeout).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(std::fs::read(m.path("mix.bin")).unwrap(), new);
}

#[tokio::test]
async fn a_new_open_after_a_change_reads_the_new_version_and_size() {
    let s = TestServer::start();
    let tok = s.token().await;
    let big = data(17 * MIB, 3);
    put(&s, &tok, "mix.bin", &big).await;
    let m = MountGuard::new(&s, "");
    assert_eq!(std::fs::read(m.path("mix.bin")).unwrap(), big);
    // Smaller: not the first 3 MiB of the old file.
    let small = data(3 * MIB, 4);
    put(&s, &tok, "mix.bin", &small).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = std::fs::read(m.path("mix.bin")).unwrap();
    assert_eq!(got.len(), small.len());
    assert!(got == small, "the new bytes, not a prefix of the old ones");
    // Larger: the new size and all of the new bytes.
    let bigger = data(20 * MIB, 5);
    put(&s, &tok, "mix.bin", &bigger).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        std::fs::metadata(m.path("mix.bin")).unwrap().len(),
        bigger.len() as u64
    );
    assert!(std::fs::read(m.path("mix.bin")).unwrap() == bigger);
    // Same size, other content (only the eTag tells).
    let same_size = data(20 * MIB, 6);
    put(&s, &tok, "mix.bin", &same_size).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(std::fs::read(m.path("mix.bin")).unwrap() == same_size);
    // A file deleted under an open handle: the handle's reads fail with
    // ESTALE once its bytes are gone, never return other bytes.
    let mut f = std::fs::File::open(m.path("mix.bin")).unwrap();
    let mut first = vec![0u8; 1024];
    f.read_exact(&mut first).unwrap();
    let (st, _) = send(
        Method::DELETE,
        &api(&s, "file", "mix.bin", &tok, "permanent=1"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let mut rest = first.clone();
    if let Some(errno) = read_rest(&mut f, &mut rest) {
        assert_eq!(errno, libc::ESTALE);
    }
    assert_eq!(rest[..], same_size[..rest.len()]);
}

/// Waits (at most `within`) until `check` holds; how long it took.
async fn visible_within(within: Duration, what: &str, check: impl Fn() -> bool) -> Duration {
    let start = std::time::Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: not visible in the mount after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Long timeouts: what shows within seconds comes from the feed.
const FEED_ONLY: &str = "attr_timeout=60,dir_timeout=60,poll_interval=1";
const WITHIN: Duration = Duration::from_secs(2); // poll_interval + 1 s

#[tokio::test]
async fn changes_made_through_the_api_show_within_the_poll_interval() {
    let s = TestServer::start();
    let tok = s.token().await;
    common::http::mkdir(&s, &tok, "d").await;
    put(&s, &tok, "d/a.txt", b"version one").await;
    let m = MountGuard::new(&s, FEED_ONLY);
    let d = m.path("d");
    assert_eq!(names(&d), ["a.txt"]);
    assert_eq!(std::fs::read(d.join("a.txt")).unwrap(), b"version one");

    put(&s, &tok, "d/new.txt", b"created elsewhere").await;
    visible_within(WITHIN, "create", || names(&d).contains(&"new.txt".into())).await;
    assert_eq!(
        std::fs::read(d.join("new.txt")).unwrap(),
        b"created elsewhere"
    );

    let v2 = data(3 * MIB + 5, 7);
    put(&s, &tok, "d/a.txt", &v2).await;
    visible_within(WITHIN, "overwrite", || {
        std::fs::metadata(d.join("a.txt")).map(|m| m.len()).ok() == Some(v2.len() as u64)
    })
    .await;
    assert!(std::fs::read(d.join("a.txt")).unwrap() == v2);

    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "d/renamed.txt", &tok, ""),
        Some(serde_json::json!({"from": "d/new.txt"})),
    )
    .await;
    assert!(st.is_success(), "{v}");
    visible_within(WITHIN, "rename", || {
        let n = names(&d);
        n.contains(&"renamed.txt".into())
            && !n.contains(&"new.txt".into())
            && !d.join("new.txt").exists()
    })
    .await;
    assert_eq!(
        std::fs::read(d.join("renamed.txt")).unwrap(),
        b"created elsewhere"
    );

    let (st, _) = send(
        Method::DELETE,
        &api(&s, "file", "d/renamed.txt", &tok, ""),
        None,
    )
    .await;
    assert!(st.is_success());
    visible_within(WITHIN, "delete", || !d.join("renamed.txt").exists()).await;

    common::http::mkdir(&s, &tok, "d/sub").await;
    visible_within(WITHIN, "mkdir", || d.join("sub").is_dir()).await;
    assert!(m.log().contains("change from the feed"));
}

#[tokio::test]
async fn an_overwrite_in_one_mount_is_read_by_the_other() {
    let s = TestServer::start();
    let tok = s.token().await;
    let old = data(17 * MIB, 8);
    put(&s, &tok, "mix.bin", &old).await;
    let a = MountGuard::new(&s, FEED_ONLY);
    let b = MountGuard::new(&s, FEED_ONLY);
    assert!(std::fs::read(a.path("mix.bin")).unwrap() == old);
    let new = data(3 * MIB, 9);
    std::fs::write(b.path("mix.bin"), &new).unwrap();
    assert!(
        common::http::download(&s, &tok, "mix.bin").await == new,
        "B's close stored B's bytes"
    );
    visible_within(WITHIN, "B's overwrite in A", || {
        std::fs::read(a.path("mix.bin")).ok().as_deref() == Some(&new[..])
    })
    .await;
}

#[tokio::test]
async fn a_lost_cursor_drops_the_caches_and_the_mount_follows_on() {
    let s = TestServer::start_with(&["--delta-history", "2"]);
    let tok = s.token().await;
    put(&s, &tok, "f.txt", b"one").await;
    let m = MountGuard::new(&s, "attr_timeout=60,dir_timeout=60,poll_interval=2");
    assert_eq!(std::fs::read(m.path("f.txt")).unwrap(), b"one");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // More changes between two polls than the server keeps.
    for i in 0..5 {
        common::http::mkdir(&s, &tok, &format!("x{i}")).await;
    }
    put(&s, &tok, "f.txt", b"two, longer").await;
    visible_within(Duration::from_secs(5), "the lost cursor", || {
        m.log().contains("cursor lost")
    })
    .await;
    // Attributes too (cached for 60 s): the caches were dropped.
    visible_within(Duration::from_secs(1), "change after a lost cursor", || {
        std::fs::metadata(m.path("f.txt")).map(|m| m.len()).ok() == Some(11)
            && std::fs::read(m.path("f.txt")).ok().as_deref() == Some(&b"two, longer"[..])
            && names(&m.mnt).len() == 6
    })
    .await;
    // Following on with a new cursor.
    put(&s, &tok, "g.txt", b"later").await;
    visible_within(
        Duration::from_secs(4),
        "change after the new cursor",
        || m.path("g.txt").exists(),
    )
    .await;
}

#[tokio::test]
async fn a_server_without_the_feed_still_works_on_timeouts() {
    let s = TestServer::start_with(&["--no-delta"]);
    let tok = s.token().await;
    put(&s, &tok, "f.txt", b"one").await;
    let m = MountGuard::new(&s, "attr_timeout=1,dir_timeout=1");
    assert_eq!(std::fs::read(m.path("f.txt")).unwrap(), b"one");
    assert_eq!(names(&m.mnt), ["f.txt"]);
    put(&s, &tok, "f.txt", b"two, longer").await;
    put(&s, &tok, "g.txt", b"new").await;
    visible_within(Duration::from_secs(4), "change on timeouts", || {
        std::fs::read(m.path("f.txt")).ok().as_deref() == Some(&b"two, longer"[..])
            && names(&m.mnt) == ["f.txt", "g.txt"]
    })
    .await;
    std::fs::write(m.path("mine.txt"), b"written here").unwrap();
    assert_eq!(
        common::http::download(&s, &tok, "mine.txt").await,
        b"written here"
    );
    assert!(m.log().contains("no change feed"), "{}", m.log());
}

/// Opens `path` for appending and writes `line` (the first write fills the
/// staged copy from the server: the version the update starts from).
fn append(path: &std::path::Path, line: &str) -> std::fs::File {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(line.as_bytes()).unwrap();
    f
}

#[tokio::test]
async fn concurrent_updates_keep_both_versions() {
    let s = TestServer::start();
    let tok = s.token().await;
    put(&s, &tok, "shared.txt", b"base\n").await;
    let a = MountGuard::new(&s, "");
    let b = MountGuard::new(&s, "");
    let fa = append(&a.path("shared.txt"), "from A\n");
    let fb = append(&b.path("shared.txt"), "from B\n");
    drop(fb); // B's close uploads over the version both started from
    assert_eq!(
        common::http::download(&s, &tok, "shared.txt").await,
        b"base\nfrom B\n"
    );
    fa.sync_all().expect("A's update is kept, not refused");
    drop(fa);
    // B's version stays under the name; A's is next to it.
    assert_eq!(
        common::http::download(&s, &tok, "shared.txt").await,
        b"base\nfrom B\n"
    );
    let (_, listing) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    let copies: Vec<String> = listing["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .filter(|n| n.starts_with("shared (conflict ") && n.ends_with(").txt"))
        .collect();
    assert_eq!(copies.len(), 1, "{listing}");
    assert_eq!(
        common::http::download(&s, &tok, &copies[0]).await,
        b"base\nfrom A\n"
    );
    let log = a.log();
    assert!(
        log.contains("WARN") && log.contains(&copies[0]) && log.contains("conflict copy"),
        "{log}"
    );
    assert_status_lists(&a, "shared.txt", &copies[0]);
    // B made no conflict copy.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .args(["status", "--json"])
        .arg(b.path(""))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["conflicts"], serde_json::json!([]), "{v}");
}

#[tokio::test]
async fn update_conflict_fail_refuses_with_estale_and_keeps_the_data() {
    let s = TestServer::start();
    let tok = s.token().await;
    put(&s, &tok, "shared.txt", b"base\n").await;
    let a = MountGuard::new(&s, "update_conflict=fail");
    let b = MountGuard::new(&s, "");
    let fa = append(&a.path("shared.txt"), "from A\n");
    drop(append(&b.path("shared.txt"), "from B\n"));
    let err = fa.sync_all().expect_err("A would overwrite B's version");
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE));
    drop(fa);
    assert_eq!(
        common::http::download(&s, &tok, "shared.txt").await,
        b"base\nfrom B\n"
    );
    let kept: Vec<Vec<u8>> = a
        .staged_files()
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    assert!(
        kept.contains(&b"base\nfrom A\n".to_vec()),
        "A's data is kept"
    );
    // Without a conflict the same mount uploads as usual.
    put(&s, &tok, "solo.txt", b"x").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let f = append(&a.path("solo.txt"), "y");
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(common::http::download(&s, &tok, "solo.txt").await, b"xy");
}

/// A's upload is held in its part PUT (server latency) while the API
/// overwrites the file: the check before the confirm sees the new version.
async fn overwritten_while_a_uploads(mode: &str) -> (TestServer, MountGuard, std::io::Result<()>) {
    let s = TestServer::start();
    let tok = s.token().await;
    put(&s, &tok, "shared.txt", b"base\n").await;
    let a = MountGuard::new(&s, mode);
    let fa = append(&a.path("shared.txt"), "from A\n");
    s.admin("latency", "part:2500").await;
    s.reset_stats().await;
    let closing = std::thread::spawn(move || {
        let r = fa.sync_all();
        drop(fa);
        r
    });
    // A has checked, begun and is in its part PUT; B overwrites meanwhile.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while common::mount::op_count(&s.stats().await, "upload_begin") == 0 {
        assert!(std::time::Instant::now() < deadline, "A never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The body PUT follows the begin at once and is then held 2.5 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.admin("faults/clear", "").await;
    put(&s, &tok, "shared.txt", b"base\nfrom B\n").await;
    let r = tokio::task::spawn_blocking(move || closing.join().unwrap())
        .await
        .unwrap();
    // B's version stays under the name whatever the mode.
    assert_eq!(
        common::http::download(&s, &tok, "shared.txt").await,
        b"base\nfrom B\n"
    );
    (s, a, r)
}

#[tokio::test]
async fn an_overwrite_during_the_upload_is_caught_before_the_confirm() {
    let (s, a, r) = overwritten_while_a_uploads("").await;
    r.expect("A's update is kept, not refused");
    let tok = s.token().await;
    let (_, listing) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    let names: Vec<String> = listing["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let copies: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("shared (conflict ") && n.ends_with(").txt"))
        .collect();
    assert_eq!(copies.len(), 1, "{listing}");
    assert_eq!(names.len(), 2, "no stray auto-renamed copy: {listing}");
    assert_eq!(
        common::http::download(&s, &tok, copies[0]).await,
        b"base\nfrom A\n"
    );
    let log = a.log();
    assert!(
        log.contains("WARN")
            && log.contains(copies[0].as_str())
            && log.contains("while it was being uploaded"),
        "{log}"
    );
    assert_status_lists(&a, "shared.txt", copies[0]);
}

/// `smhfs status` (text and `--json`) lists the conflict copy of `path`.
fn assert_status_lists(m: &MountGuard, path: &str, copy: &str) {
    let status = |json: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_smhfs"));
        c.arg("status").arg(m.path(""));
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    let c = v["conflicts"].as_array().expect("conflicts in the JSON");
    assert_eq!(c.len(), 1, "{v}");
    assert_eq!(c[0]["path"], path, "{v}");
    assert_eq!(c[0]["copy"], copy, "{v}");
    assert!(c[0]["time"].as_str().unwrap().ends_with('Z'), "{v}");
    let text = status(false);
    assert!(
        text.contains("conflict copies")
            && text.lines().any(|l| l.contains(copy) && l.contains(path)),
        "{text}"
    );
}

#[tokio::test]
async fn update_conflict_fail_refuses_an_overwrite_during_the_upload() {
    let (s, a, r) = overwritten_while_a_uploads("update_conflict=fail").await;
    let err = r.expect_err("A would overwrite B's version");
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE));
    let tok = s.token().await;
    let (_, listing) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(
        listing["contents"].as_array().unwrap().len(),
        1,
        "{listing}"
    );
    let kept: Vec<Vec<u8>> = a
        .staged_files()
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    assert!(
        kept.contains(&b"base\nfrom A\n".to_vec()),
        "A's data is kept"
    );
}

/// `?info` and listing requests the server answered since the last reset.
async fn lookups(s: &TestServer) -> u64 {
    let st = s.stats().await;
    ["dir_info", "file_info", "dir_list"]
        .iter()
        .map(|op| common::mount::op_count(&st, op))
        .sum()
}

#[tokio::test]
async fn the_feed_lengthens_the_timeouts_and_a_lost_feed_restores_them() {
    let s = TestServer::start();
    let tok = s.token().await;
    put(&s, &tok, "f.txt", b"one").await;
    let m = MountGuard::new(&s, "attr_timeout=1,dir_timeout=1,poll_interval=1");
    // Followed once a poll succeeded (the second tick).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(names(&m.mnt), ["f.txt"]);
    assert_eq!(std::fs::metadata(m.path("f.txt")).unwrap().len(), 3);
    // Past both timeouts (and the kernel's): still cached, no request.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.reset_stats().await;
    assert_eq!(names(&m.mnt), ["f.txt"]);
    assert_eq!(std::fs::metadata(m.path("f.txt")).unwrap().len(), 3);
    assert_eq!(lookups(&s).await, 0, "the feed keeps the caches fresh");
    // ... and a change made elsewhere still shows within poll_interval + 1 s.
    put(&s, &tok, "f.txt", b"two, longer").await;
    visible_within(WITHIN, "overwrite under long timeouts", || {
        std::fs::metadata(m.path("f.txt")).map(|m| m.len()).ok() == Some(11)
    })
    .await;
    assert_eq!(std::fs::read(m.path("f.txt")).unwrap(), b"two, longer");

    // The feed is lost: the configured timeouts apply again.
    s.admin("fault", "delta:400:100000").await;
    visible_within(Duration::from_secs(5), "the lost feed", || {
        m.log().contains("cursor lost")
    })
    .await;
    assert_eq!(std::fs::metadata(m.path("f.txt")).unwrap().len(), 11);
    assert_eq!(names(&m.mnt), ["f.txt"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.reset_stats().await;
    assert_eq!(std::fs::metadata(m.path("f.txt")).unwrap().len(), 11);
    assert_eq!(names(&m.mnt), ["f.txt"]);
    assert!(lookups(&s).await >= 2, "{}", s.stats().await);
    // Without the feed, a change shows after the timeouts.
    put(&s, &tok, "f.txt", b"three").await;
    visible_within(Duration::from_secs(3), "overwrite on timeouts", || {
        std::fs::read(m.path("f.txt")).ok().as_deref() == Some(&b"three"[..])
    })
    .await;
}

#[tokio::test]
async fn expired_listings_are_revalidated_with_if_none_match() {
    let s = TestServer::start();
    let tok = s.token().await;
    common::http::mkdir(&s, &tok, "d").await;
    put(&s, &tok, "d/a.txt", b"one").await;
    // No feed: listings live dir_timeout and are then revalidated.
    let m = MountGuard::new(&s, "attr_timeout=1,dir_timeout=1,poll_interval=0");
    let d = m.path("d");
    let count = |st: &serde_json::Value| {
        (
            common::mount::op_count(st, "dir_list"),
            common::mount::op_count(st, "dir_list_not_modified"),
        )
    };
    assert_eq!(names(&d), ["a.txt"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.reset_stats().await;
    assert_eq!(names(&d), ["a.txt"]);
    assert_eq!(count(&s.stats().await), (1, 1), "unchanged: a 304");
    // Changed elsewhere: the revalidation lists it again.
    put(&s, &tok, "d/b.txt", b"two").await;
    put(&s, &tok, "d/a.txt", b"one, longer").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.reset_stats().await;
    assert_eq!(names(&d), ["a.txt", "b.txt"]);
    assert_eq!(count(&s.stats().await), (1, 0));
    assert_eq!(std::fs::metadata(d.join("a.txt")).unwrap().len(), 11);
    // Our own change: the listing changed here is listed again, not renewed.
    std::fs::write(d.join("c.txt"), b"mine").unwrap();
    assert_eq!(names(&d), ["a.txt", "b.txt", "c.txt"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.reset_stats().await;
    assert_eq!(names(&d), ["a.txt", "b.txt", "c.txt"]);
    let (lists, not_modified) = count(&s.stats().await);
    assert!(lists <= 1 && not_modified == 0, "{lists} {not_modified}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.reset_stats().await;
    assert_eq!(names(&d), ["a.txt", "b.txt", "c.txt"]);
    assert_eq!(count(&s.stats().await), (1, 1), "then unchanged: a 304");
}

#[tokio::test]
async fn an_idle_mount_costs_one_request_per_poll_interval() {
    let s = TestServer::start();
    let m = MountGuard::new(&s, "poll_interval=1");
    assert!(names(&m.mnt).is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.reset_stats().await;
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let st = s.stats().await;
    let all: u64 = st["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "dir_list_not_modified")
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    let polls = common::mount::op_count(&st, "delta");
    assert!((3..=5).contains(&polls), "{st}");
    assert_eq!(all, polls, "nothing but the polls: {st}");
}

/// The feed reports the mount's own new directories back: a shell whose
/// working directory is one of them keeps a working `getcwd` (the kernel
/// entry of a directory changed in place is never invalidated, which would
/// unhash it; `git` in a fresh clone failed that way).
#[tokio::test]
async fn the_feed_leaves_working_directories_alone() {
    let s = TestServer::start();
    let m = MountGuard::new(&s, "poll_interval=1");
    let dir = m.path("work/sub");
    let script = format!(
        // The listings teach the mount the server inodes the feed's
        // entries name, before the next poll brings the creations back.
        "mkdir -p {d} && ls {m} {m}/work >/dev/null && cd {d} && echo x > f && mkdir inner \
         && sleep 3 && /bin/pwd && ls",
        d = dir.display(),
        m = m.mnt.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with(&dir.display().to_string()), "{stdout}");
    assert!(stdout.contains("inner") && stdout.contains('f'), "{stdout}");
    let st = s.stats().await;
    assert!(
        common::mount::stat_u64(&st["requests"], "delta") >= 2,
        "the feed was polled while the shell slept: {st}"
    );
}

/// The feed brings the mount's own `mkdir` and uploads back: they change
/// nothing the mount does not already know, so a copy into a new directory
/// that outlasts a poll asks the server about no name in it (before, each
/// lookup after the first poll was a `?info`: `cp -r` of 1,000 small files
/// made about 470). A file another client then adds there still shows.
#[tokio::test]
async fn the_mounts_own_changes_coming_back_cost_no_lookups() {
    let s = TestServer::start();
    let tok = s.token().await;
    let m = MountGuard::new(&s, "poll_interval=0.2");
    // Followed from the second poll on.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let d = m.path("new");
    std::fs::create_dir(&d).unwrap();
    s.reset_stats().await;
    for i in 0..40 {
        std::fs::write(d.join(format!("f{i:02}")), [i as u8; 64]).unwrap();
        if i % 10 == 9 {
            // Let the feed bring the creations back mid-copy.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let st = s.stats().await;
    assert!(common::mount::op_count(&st, "delta") >= 5, "{st}");
    assert_eq!(common::mount::op_count(&st, "upload_confirm"), 40, "{st}");
    assert_eq!(lookups(&s).await, 0, "no lookup went to the server: {st}");
    // Another client's file in the directory the mount made shows.
    put(&s, &tok, "new/other.txt", b"theirs").await;
    visible_within(WITHIN, "a file added elsewhere", || {
        names(&d).contains(&"other.txt".to_string())
    })
    .await;
    assert_eq!(std::fs::read(d.join("other.txt")).unwrap(), b"theirs");
    assert_eq!(names(&d).len(), 41);
}

/// Waits until the mount has read the feed `polls` more times.
async fn feed_read(s: &TestServer, polls: u64) {
    let start = common::mount::op_count(&s.stats().await, "delta");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while common::mount::op_count(&s.stats().await, "delta") < start + polls {
        assert!(
            std::time::Instant::now() < deadline,
            "the feed was not read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server commits an upload (and reports it in the feed) while its
/// reply is held: the entry waits for the reply instead of dropping the
/// directory's listing, so the next creations still cost no lookup.
#[tokio::test]
async fn the_feed_reporting_an_upload_before_its_reply_costs_no_lookups() {
    let s = TestServer::start();
    let m = MountGuard::new(&s, "poll_interval=0.2");
    feed_read(&s, 2).await;
    let d = m.path("new");
    std::fs::create_dir(&d).unwrap();
    s.admin("latency", "confirm_reply:800").await;
    s.reset_stats().await;
    std::fs::write(d.join("first"), b"one").unwrap();
    let held = common::mount::op_count(&s.stats().await, "delta");
    assert!(
        held >= 2,
        "the feed was read while the reply was held ({held})"
    );
    s.admin("faults/clear", "").await;
    for i in 0..5 {
        std::fs::write(d.join(format!("f{i}")), [i as u8; 8]).unwrap();
    }
    feed_read(&s, 1).await;
    let st = s.stats().await;
    assert_eq!(common::mount::op_count(&st, "upload_confirm"), 6, "{st}");
    assert_eq!(lookups(&s).await, 0, "no lookup went to the server: {st}");
}

/// Another client overwrites the file after this mount's upload committed
/// and before its reply arrived: the mount's version must not be cached
/// over theirs once the reply lands.
#[tokio::test]
async fn an_overwrite_between_the_commit_and_the_reply_is_read_at_once() {
    let s = TestServer::start();
    let tok = s.token().await;
    let m = MountGuard::new(&s, "poll_interval=0.2");
    feed_read(&s, 2).await;
    s.admin("latency", "confirm_reply:1000").await;
    s.reset_stats().await;
    let path = m.path("a.txt");
    let writer = std::thread::spawn(move || std::fs::write(path, b"ours!"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while common::mount::op_count(&s.stats().await, "upload_confirm") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mount never confirmed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Committed; the reply is held. The API's overwrite is not.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.admin("faults/clear", "").await;
    put(&s, &tok, "a.txt", b"theirs").await;
    feed_read(&s, 1).await;
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(common::http::download(&s, &tok, "a.txt").await, b"theirs");
    // What `ls -l` shows, then what `cat` reads.
    assert_eq!(std::fs::metadata(m.path("a.txt")).unwrap().len(), 6);
    assert_eq!(std::fs::read(m.path("a.txt")).unwrap(), b"theirs");
}
