//! Big directories (#15): listings streamed a page (1000 entries) at a
//! time, and inodes only for what the kernel holds, so memory follows the
//! kernel, not the number of names ever listed.

use crate::common;
use crate::common::mount;

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use futures::StreamExt;
use mount::*;
use smhfs::fs::core::InodeNo;
use smhfs::fs::SmhFs;
use smhfs::smh::{ConflictStrategy, SmhPath};

const ROOT: InodeNo = InodeNo::ROOT;

/// Creates `n` empty directories `dir/e00000`, ... through the API,
/// 32 at a time (one request each: the cheapest entries to make).
async fn populate(server: &TestServer, dir: &str, n: usize) {
    let client = client_for(server);
    client
        .create_dir(&p(dir), ConflictStrategy::Ask)
        .await
        .unwrap();
    let client = &client;
    futures::stream::iter(0..n)
        .map(|i| async move {
            let path = p(&format!("{dir}/e{i:05}"));
            client
                .create_dir(&path, ConflictStrategy::Ask)
                .await
                .unwrap_or_else(|e| panic!("mkdir {path}: {e}"));
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

fn status(m: &MountGuard) -> serde_json::Value {
    let out = sh(&format!(
        "{} status --json {}",
        env!("CARGO_BIN_EXE_smhfs"),
        m.mnt.display()
    ));
    serde_json::from_str(out.trim()).unwrap()
}

fn known_inodes(m: &MountGuard) -> u64 {
    status(m)["memory"]["known_inodes"].as_u64().unwrap()
}

/// The core without a kernel: plain readdir answers page by page, asks
/// the server for a page only when the reader gets there, and makes no
/// inode for any listed name.
#[tokio::test(flavor = "multi_thread")]
async fn readdir_streams_pages_and_makes_no_inodes() {
    let server = TestServer::start();
    populate(&server, "big", 2500).await;
    let cache = tempfile::tempdir().unwrap();
    let fs = Arc::new(SmhFs::new(
        client_for(&server),
        common::core_config(SmhPath::root(), ConflictStrategy::Overwrite, cache.path()),
    ));
    let big = fs.lookup(ROOT, OsStr::new("big")).await.unwrap().ino;
    assert_eq!(fs.memory_report().known_inodes, 2, "the root and big");
    server.reset_stats().await;

    let dfh = fs.opendir(big).unwrap();
    let first = fs.readdir(big, dfh, 0).await.unwrap();
    let names: Vec<(u64, String)> = first.entries().map(|(o, i)| (o, i.name.clone())).collect();
    assert_eq!(names.len(), 1002, "the first page with . and ..");
    assert_eq!(names[0], (1, ".".to_string()));
    assert_eq!(
        op_count(&server.stats().await, "dir_list"),
        1,
        "one page asked for"
    );
    // A reader that stopped part way through the page continues in it.
    let mid = fs.readdir(big, dfh, 500).await.unwrap();
    assert_eq!(mid.iter().next().unwrap().name, names[500].1);
    assert_eq!(op_count(&server.stats().await, "dir_list"), 1);

    // Then page by page to the end, every name once.
    let mut all: Vec<String> = names.into_iter().map(|(_, n)| n).collect();
    let mut offset = all.len() as u64;
    loop {
        let w = fs.readdir(big, dfh, offset).await.unwrap();
        let got: Vec<(u64, String)> = w.entries().map(|(o, i)| (o, i.name.clone())).collect();
        let Some((last, _)) = got.last() else { break };
        offset = *last;
        all.extend(got.into_iter().map(|(_, n)| n));
    }
    assert_eq!(all.len(), 2502);
    let mut uniq = all.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 2502, "no name twice");
    assert_eq!(op_count(&server.stats().await, "dir_list"), 3);
    fs.releasedir(dfh);
    assert_eq!(fs.memory_report().known_inodes, 2, "listing made no inodes");
    // 2500 entries fit the listing cache: listed again from it.
    let m = fs.memory_report();
    assert_eq!((m.listing_dirs, m.listing_entries), (1, 2500));
    let dfh = fs.opendir(big).unwrap();
    assert_eq!(fs.readdir(big, dfh, 0).await.unwrap().iter().count(), 1002);
    fs.releasedir(dfh);
    assert_eq!(op_count(&server.stats().await, "dir_list"), 3);
}

/// A listing longer than `dir_cache_entries` is not kept (the bound is in
/// entries): each listing goes to the server, and the cache holds none.
#[tokio::test(flavor = "multi_thread")]
async fn listing_cache_is_bounded_in_entries() {
    let server = TestServer::start();
    populate(&server, "big", 1500).await;
    let m = MountGuard::new(&server, "dir_cache_entries=1000");
    assert!(m.path("big").is_dir());
    server.reset_stats().await;
    let n = sh(&format!("ls {} | wc -l", m.path("big").display()));
    assert_eq!(n.trim(), "1500");
    let n = sh(&format!("ls {} | wc -l", m.path("big").display()));
    assert_eq!(n.trim(), "1500");
    assert_eq!(
        op_count(&server.stats().await, "dir_list"),
        4,
        "2 pages, twice"
    );
    assert_eq!(status(&m)["memory"]["listing_entries"].as_u64(), Some(0));
}

/// Through the kernel: a partial read of a 20,000-entry directory fetches
/// only its first pages; a full one lists every name; once the kernel
/// forgets its dentries, the mount's inodes are gone too.
#[test]
fn big_directory_through_the_kernel() {
    const N: usize = 20_000;
    let server = TestServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(populate(&server, "big", N));
    let m = MountGuard::new(&server, "");
    let big = m.path("big");
    assert!(big.is_dir());
    rt.block_on(server.reset_stats());

    // `ls -f` prints as it reads; `head` leaves after one name.
    let first = sh(&format!("ls -f {} | head -1", big.display()));
    assert!(!first.trim().is_empty());
    let partial = op_count(&rt.block_on(server.stats()), "dir_list");
    assert!(
        (1..=5).contains(&partial),
        "{partial} pages fetched for a partial read of {} pages",
        N / 1000
    );

    let n = sh(&format!("ls {} | wc -l", big.display()));
    assert_eq!(n.trim(), N.to_string());
    let names = sh(&format!("ls {} | sort -u | wc -l", big.display()));
    assert_eq!(names.trim(), N.to_string(), "every name once");

    // What the kernel holds after `ls` (readdirplus: an entry each), then
    // what it forgets with its dentries.
    let before = known_inodes(&m);
    assert!(before <= N as u64 + 10, "{before} inodes for {N} entries");
    // What else the listing left: the attributes of every entry (within
    // the attribute cache's bound) and the server inode of every listed
    // directory (kept for the change feed; of files, 10,000 at most).
    let mem = &status(&m)["memory"];
    assert_eq!(mem["attr_entries"].as_u64(), Some(N as u64 + 1));
    // (`big` and, once the feed has learned it, the mounted directory.)
    let server_inodes = mem["server_inodes"].as_u64().unwrap();
    assert!(
        (N as u64 + 1..=N as u64 + 2).contains(&server_inodes),
        "{server_inodes} server inodes after listing {N} directories"
    );
    if std::fs::write("/proc/sys/vm/drop_caches", "2").is_err() {
        eprintln!("not root: drop_caches part skipped");
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut now = known_inodes(&m);
    while now >= (N / 100) as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "2");
        now = known_inodes(&m);
    }
    assert!(
        now < (N / 100) as u64,
        "{now} inodes known after drop_caches (had {before})"
    );
}

/// A directory with children the kernel holds, renamed: open handles and
/// the children's paths follow it (one node moves), on the server too.
#[test]
fn rename_of_a_directory_with_known_children() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    std::fs::create_dir_all(m.path("d/sub")).unwrap();
    std::fs::write(m.path("d/sub/f"), b"hello").unwrap();
    let mut reader = std::fs::File::open(m.path("d/sub/f")).unwrap();
    let dir = std::fs::File::open(m.path("d/sub")).unwrap();
    std::fs::rename(m.path("d"), m.path("e")).unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut reader, &mut s).unwrap();
    assert_eq!(s, "hello");
    assert_eq!(std::fs::read(m.path("e/sub/f")).unwrap(), b"hello");
    assert!(!m.path("d").exists());
    // A new file through the old handle's directory lands under the new name.
    std::fs::write(m.path("e/sub/g"), b"new").unwrap();
    drop(dir);
    drop(reader);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = client_for(&server);
    rt.block_on(async {
        assert!(client.head_file(&p("e/sub/f")).await.unwrap().is_some());
        assert!(client.head_file(&p("e/sub/g")).await.unwrap().is_some());
        assert!(client.head_file(&p("d/sub/f")).await.unwrap().is_none());
    });
    let names = sh(&format!("ls {}", m.path("e/sub").display()));
    assert_eq!(names.split_whitespace().collect::<Vec<_>>(), ["f", "g"]);
}
