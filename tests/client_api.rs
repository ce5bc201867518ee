//! The SMH client against a real `smhfs serve` process on 127.0.0.1.

use crate::common;

use std::time::Duration;

use common::{client_for, TestServer};
use futures::StreamExt;
use rand::RngCore;
use smhfs::smh::types::{BeginBody, ConfirmBody};
use smhfs::smh::upload::UploadPlan;
use smhfs::smh::{
    BeginOutcome, ClientConfig, ConflictStrategy, ContentHashes, Credentials, RetryPolicy,
    SmhClient, SmhError, SmhPath, UploadKind, UploadOptions,
};

const MIB: usize = 1024 * 1024;

fn p(s: &str) -> SmhPath {
    SmhPath::parse(s).unwrap()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

fn small_parts() -> UploadOptions {
    UploadOptions {
        part_size: MIB as u64,
        concurrency: 3,
        ..Default::default()
    }
}

/// Writes `data` to a temp file and uploads it.
async fn upload(
    client: &SmhClient,
    path: &str,
    data: &[u8],
    opts: &UploadOptions,
) -> Result<smhfs::smh::types::FileMeta, SmhError> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("staged");
    std::fs::write(&f, data).unwrap();
    client.upload_file(&p(path), &f, None, opts).await
}

/// Downloads a whole file through the 302 URL in 1 MiB ranges.
async fn download(client: &SmhClient, path: &str) -> Vec<u8> {
    let head = client
        .head_file(&p(path))
        .await
        .unwrap()
        .expect("file exists");
    let url = client.download_url(&p(path)).await.unwrap();
    let mut out = Vec::new();
    while (out.len() as u64) < head.size {
        let chunk = client
            .read_range(&url, out.len() as u64, MIB as u64)
            .await
            .unwrap();
        assert!(!chunk.is_empty(), "short read at {}", out.len());
        out.extend_from_slice(&chunk);
    }
    out
}

fn stat_u64(stats: &serde_json::Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or(0)
}

fn op_count(stats: &serde_json::Value, op: &str) -> u64 {
    stats["requests"][op].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn round_trip_sizes_and_crc64() {
    let server = TestServer::start();
    let client = client_for(&server);
    client.check_access().await.unwrap();
    client
        .create_dir(&p("rt"), ConflictStrategy::Ask)
        .await
        .unwrap();
    for size in [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 12345] {
        let data = random_bytes(size);
        let name = format!("rt/f{size}.bin");
        let meta = upload(&client, &name, &data, &small_parts()).await.unwrap();
        assert_eq!(meta.size, size.to_string());
        let ours = ContentHashes::of(&data).crc64_string();
        assert_eq!(
            meta.crc64.as_deref(),
            Some(ours.as_str()),
            "confirm crc64 for {size}"
        );
        let head = client.head_file(&p(&name)).await.unwrap().unwrap();
        assert_eq!(head.size, size as u64);
        assert_eq!(head.crc64.as_deref(), Some(ours.as_str()));
        assert_eq!(download(&client, &name).await, data, "content of {size}");
    }
}

#[tokio::test]
async fn range_reads() {
    let server = TestServer::start();
    let client = client_for(&server);
    let data = random_bytes(2 * MIB + 77);
    upload(&client, "r.bin", &data, &small_parts())
        .await
        .unwrap();
    let url = client.download_url(&p("r.bin")).await.unwrap();
    let mid = client.read_range(&url, 1_000_000, 100_000).await.unwrap();
    assert_eq!(&mid[..], &data[1_000_000..1_100_000]);
    let tail = client
        .read_range(&url, data.len() as u64 - 10, 1000)
        .await
        .unwrap();
    assert_eq!(&tail[..], &data[data.len() - 10..]);
    let beyond = client
        .read_range(&url, data.len() as u64 + 5, 10)
        .await
        .unwrap();
    assert!(beyond.is_empty());
    let info = client.file_info(&p("r.bin")).await.unwrap();
    assert_eq!(info.size, data.len().to_string());
    let cos = info.cos_url.expect("file info carries cosUrl");
    let first = client.read_range(&cos, 0, 16).await.unwrap();
    assert_eq!(&first[..], &data[..16]);
}

#[tokio::test]
async fn directories_and_conflicts() {
    let server = TestServer::start();
    let client = client_for(&server);
    // Parents are created.
    client
        .create_dir(&p("a/b/c"), ConflictStrategy::Ask)
        .await
        .unwrap();
    assert!(client.dir_exists(&p("a/b")).await.unwrap());
    assert!(!client.dir_exists(&p("nope")).await.unwrap());
    let err = client
        .create_dir(&p("a/b/c"), ConflictStrategy::Ask)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SameNameDirectoryOrFileExists"));
    assert_eq!(err.errno(), libc::EEXIST);
    let renamed = client
        .create_dir(&p("a/b/c"), ConflictStrategy::Rename)
        .await
        .unwrap();
    assert_eq!(renamed.to_string(), "a/b/c (1)");
    let info = client.stat(&p("a/b")).await.unwrap().unwrap();
    assert!(info.kind.is_dir());
    assert!(client.stat(&p("a/zz")).await.unwrap().is_none());
    let names: Vec<String> = client
        .list_all(&p("a/b"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["c", "c (1)"]);
    // Move, then recursive delete.
    let moved = client
        .move_dir(&p("a/b"), &p("x/y"), ConflictStrategy::Ask)
        .await
        .unwrap();
    assert_eq!(moved.to_string(), "x/y");
    assert!(client.dir_exists(&p("x/y/c")).await.unwrap());
    assert!(!client.dir_exists(&p("a/b")).await.unwrap());
    client.delete_dir(&p("x"), true).await.unwrap();
    assert!(!client.dir_exists(&p("x/y/c")).await.unwrap());
}

#[tokio::test]
async fn listing_2500_entries_in_three_pages() {
    let server = TestServer::start();
    let client = client_for(&server);
    client
        .create_dir(&p("big"), ConflictStrategy::Ask)
        .await
        .unwrap();
    futures::stream::iter(0..2500)
        .map(|i| {
            let c = client.clone();
            async move {
                c.create_dir(&p(&format!("big/d{i:05}")), ConflictStrategy::Ask)
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let before = op_count(&server.stats().await, "dir_list");
    let first = client.list_page(&p("big"), None, 1000).await.unwrap();
    assert_eq!(first.contents.len(), 1000);
    assert_eq!(first.contents[0].name, "d00000");
    let m1 = first.next_marker.clone().expect("more pages");
    let second = client.list_page(&p("big"), Some(&m1), 1000).await.unwrap();
    assert_eq!(second.contents[0].name, "d01000");
    let m2 = second.next_marker.clone().expect("third page");
    let third = client.list_page(&p("big"), Some(&m2), 1000).await.unwrap();
    assert_eq!(third.contents.len(), 500);
    assert!(third.next_marker.is_none(), "last page has no nextMarker");
    let all = client.list_all(&p("big")).await.unwrap();
    assert_eq!(all.len(), 2500);
    let after = op_count(&server.stats().await, "dir_list");
    assert_eq!(after - before, 6, "3 pages by hand + 3 by list_all");
}

#[tokio::test]
async fn upload_conflict_strategies() {
    let server = TestServer::start();
    let client = client_for(&server);
    upload(&client, "c.txt", b"one", &UploadOptions::default())
        .await
        .unwrap();
    let ask = UploadOptions {
        strategy: ConflictStrategy::Ask,
        ..Default::default()
    };
    let err = upload(&client, "c.txt", b"two", &ask).await.unwrap_err();
    assert_eq!(err.errno(), libc::EEXIST, "{err}");
    let rename = UploadOptions {
        strategy: ConflictStrategy::Rename,
        ..Default::default()
    };
    let m1 = upload(&client, "c.txt", b"two", &rename).await.unwrap();
    assert_eq!(m1.path.unwrap(), vec!["c (1).txt"]);
    let m2 = upload(&client, "c.txt", b"three", &rename).await.unwrap();
    assert_eq!(m2.path.unwrap(), vec!["c (2).txt"]);
    let over = UploadOptions {
        strategy: ConflictStrategy::Overwrite,
        ..Default::default()
    };
    let m3 = upload(&client, "c.txt", b"four!", &over).await.unwrap();
    assert!(m3.is_overwritten);
    assert_eq!(download(&client, "c.txt").await, b"four!");
    assert_eq!(download(&client, "c (1).txt").await, b"two");
}

#[tokio::test]
async fn instant_upload_sends_no_part_bytes() {
    let server = TestServer::start();
    let client = client_for(&server);
    let data = random_bytes(3 * MIB);
    upload(&client, "orig.bin", &data, &small_parts())
        .await
        .unwrap();
    let before = server.stats().await;
    let meta = upload(&client, "copy.bin", &data, &small_parts())
        .await
        .unwrap();
    let after = server.stats().await;
    assert_eq!(meta.path.unwrap(), vec!["copy.bin"]);
    assert_eq!(
        stat_u64(&after, "part_bytes"),
        stat_u64(&before, "part_bytes"),
        "no data sent"
    );
    assert_eq!(
        stat_u64(&after, "instant_upload_hits"),
        stat_u64(&before, "instant_upload_hits") + 1
    );
    assert_eq!(
        op_count(&after, "upload_confirm"),
        op_count(&before, "upload_confirm"),
        "no confirm"
    );
    assert_eq!(download(&client, "copy.bin").await, data);
    // Same beginning, different content: a real upload.
    let mut other = data.clone();
    *other.last_mut().unwrap() ^= 0xff;
    upload(&client, "other.bin", &other, &small_parts())
        .await
        .unwrap();
    let last = server.stats().await;
    assert_eq!(
        stat_u64(&last, "part_bytes") - stat_u64(&after, "part_bytes"),
        3 * MIB as u64
    );
    assert_eq!(download(&client, "other.bin").await, other);
}

#[tokio::test]
async fn renew_after_short_ticket_ttl() {
    let server = TestServer::start_with(&["--ticket-ttl", "1"]);
    let client = client_for(&server);
    // By hand: a ticket used after its expiry is refused, a renewed one works.
    let data = random_bytes(MIB + 10);
    let body = BeginBody::default();
    let BeginOutcome::Ticket(ticket) = client
        .begin_upload(
            &p("t.bin"),
            UploadKind::Multipart,
            &body,
            ConflictStrategy::Rename,
            None,
        )
        .await
        .unwrap()
    else {
        panic!("expected a ticket")
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let err = client
        .put_part(&ticket, 1, data[..MIB].to_vec().into())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    let key = ticket.confirm_key.clone().unwrap();
    let fresh = client.renew_upload(&key).await.unwrap();
    client
        .put_part(&fresh, 1, data[..MIB].to_vec().into())
        .await
        .unwrap();
    client
        .put_part(&fresh, 2, data[MIB..].to_vec().into())
        .await
        .unwrap();
    let crc = ContentHashes::of(&data).crc64_string();
    client
        .confirm_upload(
            &key,
            &ConfirmBody {
                crc64: Some(crc),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(download(&client, "t.bin").await, data);
    // The whole flow through slow parts: renews happen, content intact.
    server.admin("/__latency", "part:700").await;
    let big = random_bytes(4 * MIB + 5);
    let opts = UploadOptions {
        part_size: MIB as u64,
        concurrency: 1,
        ..Default::default()
    };
    upload(&client, "slow.bin", &big, &opts).await.unwrap();
    assert!(op_count(&server.stats().await, "upload_renew") >= 3);
    server.admin("/__faults/clear", "").await;
    assert_eq!(download(&client, "slow.bin").await, big);
}

#[tokio::test]
async fn retries_through_503_and_429() {
    let server = TestServer::start_with(&["--fault", "part:503:3", "--fault", "api:429:5"]);
    let client = client_for(&server);
    let data = random_bytes(3 * MIB + 1);
    upload(&client, "flaky.bin", &data, &small_parts())
        .await
        .unwrap();
    let stats = server.stats().await;
    assert_eq!(stats["faults_injected"]["part"], 3, "{stats}");
    assert_eq!(stats["faults_injected"]["api"], 5, "{stats}");
    assert_eq!(
        op_count(&stats, "part_put"),
        4,
        "every part stored once after retries: {stats}"
    );
    assert_eq!(download(&client, "flaky.bin").await, data);
}

#[tokio::test]
async fn gives_up_after_bounded_retries() {
    let server = TestServer::start_with(&["--fault", "part:503:100%"]);
    let retry = RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    let client = common::client_at(&server.url, &server.library, &server.secret, retry);
    let err = upload(&client, "never.bin", &random_bytes(2 * MIB), &small_parts())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.errno(), libc::EIO);
    assert!(client.head_file(&p("never.bin")).await.unwrap().is_none());
}

#[tokio::test]
async fn token_reminted_after_revocation() {
    let server = TestServer::start();
    let client = client_for(&server);
    client.check_access().await.unwrap();
    let first = client.access_token().await.unwrap();
    server.admin("/__revoke-tokens", "").await;
    client
        .create_dir(&p("after-revoke"), ConflictStrategy::Ask)
        .await
        .unwrap();
    let second = client.access_token().await.unwrap();
    assert_ne!(first, second);
    assert_eq!(op_count(&server.stats().await, "token_create"), 2);
}

#[tokio::test]
async fn bad_crc64_is_rejected() {
    let server = TestServer::start();
    let client = client_for(&server);
    let BeginOutcome::Ticket(t) = client
        .begin_upload(
            &p("crc.txt"),
            UploadKind::Simple,
            &BeginBody::default(),
            ConflictStrategy::Rename,
            None,
        )
        .await
        .unwrap()
    else {
        panic!("expected a ticket")
    };
    client
        .put_object(&t, bytes::Bytes::from_static(b"hello"))
        .await
        .unwrap();
    let body = ConfirmBody {
        crc64: Some("12345".into()),
        ..Default::default()
    };
    let err = client
        .confirm_upload(t.confirm_key.as_deref().unwrap(), &body, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("BadCrc64"));
    assert_eq!(err.status(), Some(400));
    assert!(client.head_file(&p("crc.txt")).await.unwrap().is_none());
}

#[tokio::test]
async fn status_and_resume_send_only_missing_parts() {
    let server = TestServer::start();
    let client = client_for(&server);
    let data = random_bytes(3 * MIB);
    let hashes = ContentHashes::of(&data);
    let BeginOutcome::Ticket(t) = client
        .begin_upload(
            &p("resume.bin"),
            UploadKind::Multipart,
            &BeginBody::default(),
            ConflictStrategy::Rename,
            None,
        )
        .await
        .unwrap()
    else {
        panic!("expected a ticket")
    };
    let key = t.confirm_key.clone().unwrap();
    client
        .put_part(&t, 1, data[..MIB].to_vec().into())
        .await
        .unwrap();
    client
        .put_part(&t, 3, data[2 * MIB..].to_vec().into())
        .await
        .unwrap();
    let status = client.upload_status(&key).await.unwrap();
    assert!(!status.confirmed);
    let mut parts: Vec<(u32, u64)> = status
        .parts
        .iter()
        .map(|p| (p.part_number, p.size))
        .collect();
    parts.sort();
    assert_eq!(parts, vec![(1, MIB as u64), (3, MIB as u64)]);
    let early = client
        .confirm_upload(&key, &ConfirmBody::default(), None)
        .await
        .unwrap_err();
    assert_eq!(early.status(), Some(400), "{early}");

    let dir = tempfile::tempdir().unwrap();
    let staged = dir.path().join("s");
    std::fs::write(&staged, &data).unwrap();
    let plan = UploadPlan {
        path: p("resume.bin"),
        kind_multipart: true,
        confirm_key: key,
        size: data.len() as u64,
        part_size: MIB as u64,
        part_count: 3,
        hashes,
        strategy: ConflictStrategy::Rename,
    };
    let before = stat_u64(&server.stats().await, "part_bytes");
    client
        .resume_upload(&plan, &staged, &small_parts())
        .await
        .unwrap();
    let sent = stat_u64(&server.stats().await, "part_bytes") - before;
    assert_eq!(sent, MIB as u64, "only part 2 was sent");
    assert_eq!(download(&client, "resume.bin").await, data);
}

#[tokio::test]
async fn files_move_copy_delete() {
    let server = TestServer::start();
    let client = client_for(&server);
    client
        .create_dir(&p("d"), ConflictStrategy::Ask)
        .await
        .unwrap();
    upload(&client, "d/a.txt", b"alpha", &UploadOptions::default())
        .await
        .unwrap();
    let copied = client
        .copy_file(&p("d/a.txt"), &p("d/b.txt"), ConflictStrategy::Ask)
        .await
        .unwrap();
    assert_eq!(copied.to_string(), "d/b.txt");
    let moved = client
        .move_file(&p("d/a.txt"), &p("c.txt"), ConflictStrategy::Ask)
        .await
        .unwrap();
    assert_eq!(moved.to_string(), "c.txt");
    assert!(client.head_file(&p("d/a.txt")).await.unwrap().is_none());
    assert_eq!(download(&client, "c.txt").await, b"alpha");
    // Moving onto an existing file: ask refuses, overwrite replaces.
    let err = client
        .move_file(&p("c.txt"), &p("d/b.txt"), ConflictStrategy::Ask)
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::EEXIST);
    client
        .move_file(&p("c.txt"), &p("d/b.txt"), ConflictStrategy::Overwrite)
        .await
        .unwrap();
    // No parent creation for file moves.
    let err = client
        .move_file(&p("d/b.txt"), &p("missing/b.txt"), ConflictStrategy::Ask)
        .await
        .unwrap_err();
    assert_eq!(err.errno(), libc::ENOENT, "{err}");
    client.delete_file(&p("d/b.txt"), false).await.unwrap();
    assert!(client.head_file(&p("d/b.txt")).await.unwrap().is_none());
    let err = client.delete_file(&p("d/b.txt"), false).await.unwrap_err();
    assert_eq!(err.errno(), libc::ENOENT);
}

#[tokio::test]
async fn usage_reports_quota() {
    let server = TestServer::start_with(&["--capacity", "10485760"]);
    let client = client_for(&server);
    upload(
        &client,
        "u.bin",
        &random_bytes(MIB),
        &UploadOptions::default(),
    )
    .await
    .unwrap();
    let u = client.usage().await.unwrap();
    assert_eq!(u.capacity, Some(10 * MIB as u64));
    assert_eq!(u.used, MIB as u64);
    assert_eq!(u.available, Some(9 * MIB as u64));
    let err = upload(
        &client,
        "too-big.bin",
        &random_bytes(10 * MIB),
        &small_parts(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.errno(), libc::ENOSPC, "{err}");
}

#[tokio::test]
async fn wrong_secret_and_dead_endpoint_are_clear_errors() {
    let server = TestServer::start();
    let cfg = ClientConfig::new(
        server.url.parse().unwrap(),
        &server.library,
        "-",
        Credentials::LibrarySecret("wrong".into()),
    );
    let err = SmhClient::new(cfg)
        .unwrap()
        .check_access()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("WrongLibraryIdOrSecret"), "{err}");
    assert!(!err.to_string().contains("library_secret=wrong"));

    let mut cfg = ClientConfig::new(
        "http://127.0.0.1:9".parse().unwrap(),
        "lib",
        "-",
        Credentials::AccessToken("supersecret-token".into()),
    );
    cfg.retry.max_retries = 1;
    cfg.retry.base_delay = Duration::from_millis(1);
    let err = SmhClient::new(cfg)
        .unwrap()
        .check_access()
        .await
        .unwrap_err();
    assert!(matches!(err, SmhError::Network { .. }), "{err}");
    let shown = err.to_string();
    assert!(
        !shown.contains("supersecret-token"),
        "token leaked: {shown}"
    );
    assert!(shown.contains("REDACTED"), "{shown}");
}

/// Symlinks (§4.7): create with each strategy, SMH error codes as
/// `SmhError::code`, `linkTo` resolved through the inode endpoint (§4.14).
#[tokio::test]
async fn symlinks_and_info_by_inode() {
    let s = TestServer::start();
    let c = client_for(&s);
    upload(&c, "t", b"x", &UploadOptions::default())
        .await
        .unwrap();
    c.create_dir(&p("d"), ConflictStrategy::Ask).await.unwrap();
    let got = c
        .create_symlink(&p("l"), &p("t"), ConflictStrategy::Ask)
        .await
        .unwrap();
    assert_eq!(got, p("l"));
    let got = c
        .create_symlink(&p("l"), &p("t"), ConflictStrategy::Rename)
        .await
        .unwrap();
    assert_eq!(got, p("l (1)"));
    let e = c
        .create_symlink(&p("l"), &p("t"), ConflictStrategy::Ask)
        .await
        .unwrap_err();
    assert_eq!(
        (e.status(), e.code()),
        (Some(409), Some("SameNameDirectoryOrFileExists"))
    );
    let e = c
        .create_symlink(&p("x"), &p("d"), ConflictStrategy::Ask)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("SymlinkToDirectoryNotAllowed"));
    let e = c
        .create_symlink(&p("x"), &p("nope"), ConflictStrategy::Ask)
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = c
        .create_symlink(&p("l"), &p("l"), ConflictStrategy::Overwrite)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("CircleSymlink"));

    let info = c.stat(&p("l")).await.unwrap().unwrap();
    assert_eq!(info.kind, smhfs::smh::types::EntryType::Symlink);
    let target = c
        .info_by_inode(info.link_to.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(target.path, vec!["t".to_string()]);
    let listed = c.list_all(&SmhPath::root()).await.unwrap();
    let l = listed.iter().find(|e| e.name == "l").unwrap();
    assert_eq!(l.link_to, info.link_to);
    assert_eq!(
        c.info_by_inode("ffffffff").await.unwrap().map(|i| i.path),
        None
    );
}
