//! Files larger than the cache (issue 15): a front-to-back write larger
//! than `cache_size` is uploaded while it is written, the cache directory
//! never holds more than the bound, and a crash never stores a half file.

use crate::common;
use crate::common::mount::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::content::allocated;
use common::content::{hash_file, server_hashes};
use common::wait_for;
use common::TestServer;

const MIB: u64 = 1 << 20;
const CACHE: u64 = 8 * MIB;

/// Samples `allocated(dir)` until dropped; `peak()` is the largest seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    t: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(dir: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p, d) = (stop.clone(), peak.clone(), dir.to_path_buf());
        let t = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(allocated(&d), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Self {
            stop,
            peak,
            t: Some(t),
        }
    }

    fn peak(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.t.take() {
            t.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

fn journal_count(cache: &Path) -> usize {
    std::fs::read_dir(cache)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_of_a_file_six_times_the_cache_streams_within_the_bound() {
    let server = TestServer::start();
    let client = common::client_for(&server);
    let m = MountGuard::new(&server, "cache_size=8M,part_size=2M,cache_wait=5");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let size = 48 * MIB;
    sh(&format!("head -c {size} /dev/urandom > {}", src.display()));
    let want = hash_file(&src);
    server.reset_stats().await;

    let sampler = Sampler::start(&m.cache_dir);
    let out = Command::new("cp")
        .arg(&src)
        .arg(m.path("big.bin"))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let peak = sampler.peak();
    assert!(
        out.status.success(),
        "cp: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        m.log()
    );
    eprintln!(
        "48 MiB through an 8 MiB cache: peak cache use {} KiB",
        peak >> 10
    );
    assert!(peak <= CACHE, "cache dir held {peak} bytes (bound {CACHE})");
    assert!(peak > 0, "the sampler saw the staged bytes");
    assert_eq!(server_hashes(&client, "big.bin").await, want);
    let stats = server.stats().await;
    assert_eq!(op_count(&stats, "upload_begin"), 1, "{stats}");
    assert_eq!(op_count(&stats, "upload_confirm"), 1, "{stats}");
    assert_eq!(stat_u64(&stats, "part_bytes"), size, "every byte sent once");
    assert_eq!(std::fs::metadata(m.path("big.bin")).unwrap().len(), size);
    assert_eq!(journal_count(&m.cache_dir), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn seek_back_into_a_sent_part_is_espipe_and_nothing_is_stored() {
    use std::io::{Seek, SeekFrom, Write};
    let server = TestServer::start();
    let client = common::client_for(&server);
    let m = MountGuard::new(&server, "cache_size=8M,part_size=2M,cache_wait=5");
    let block = vec![7u8; MIB as usize];
    let mut f = std::fs::File::create(m.path("v.bin")).unwrap();
    for _ in 0..12 {
        f.write_all(&block).unwrap();
    }
    // Bytes at 0 were sent and dropped from the cache.
    f.seek(SeekFrom::Start(0)).unwrap();
    let e = f.write_all(b"header").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ESPIPE), "{e}");
    f.seek(SeekFrom::End(0)).unwrap();
    let closed = f.sync_all();
    assert!(closed.is_err(), "the content is incomplete: never uploaded");
    drop(f);
    assert!(client.head_file(&p("v.bin")).await.unwrap().is_none());
    let stats = server.stats().await;
    assert!(op_count(&stats, "upload_abort") >= 1, "{stats}");
    assert_eq!(op_count(&stats, "upload_confirm"), 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_mid_stream_stores_no_file_and_resume_aborts_the_task() {
    let server = TestServer::start();
    let client = common::client_for(&server);
    let m1 = MountGuard::new(&server, "cache_size=8M,part_size=2M,cache_wait=5");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    sh(&format!(
        "head -c {} /dev/urandom > {}",
        96 * MIB,
        src.display()
    ));
    // A slow writer: 1 MiB at a time, so the kill lands mid-file.
    let mut w = Command::new("dd")
        .arg(format!("if={}", src.display()))
        .arg(format!("of={}", m1.path("big.bin").display()))
        .args(["bs=1M", "oflag=sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("parts on the server", Duration::from_secs(60), || async {
        stat_u64(&server.stats().await, "part_bytes") >= 8 * MIB
    })
    .await;
    let mut m1 = m1;
    m1.signal_and_wait(libc::SIGKILL).expect("daemon killed");
    m1.unmount();
    let _ = w.kill();
    let _ = w.wait();
    assert!(client.head_file(&p("big.bin")).await.unwrap().is_none());
    assert_eq!(
        journal_count(&m1.cache_dir),
        1,
        "the streamed task is journaled"
    );
    let before = op_count(&server.stats().await, "upload_abort");

    let m2 = MountGuard::new(
        &server,
        &format!(
            "cache_size=8M,part_size=2M,cache_dir={}",
            m1.cache_dir.display()
        ),
    );
    wait_for("the journal to empty", Duration::from_secs(30), || async {
        journal_count(&m2.cache_dir) == 0
    })
    .await;
    let stats = server.stats().await;
    assert_eq!(op_count(&stats, "upload_abort"), before + 1, "{stats}");
    assert_eq!(op_count(&stats, "upload_confirm"), 0, "{stats}");
    assert!(client.head_file(&p("big.bin")).await.unwrap().is_none());
    assert!(!m2.path("big.bin").exists(), "no half file in the mount");
    assert_eq!(allocated(&m2.cache_dir), 0, "the holed staged file is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn write_back_close_then_kill9_is_completed_from_its_tail() {
    let server = TestServer::start();
    let client = common::client_for(&server);
    let mut m1 = MountGuard::new(
        &server,
        "cache_size=8M,part_size=2M,cache_wait=5,write_back=600",
    );
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let size = 40 * MIB + 12345;
    sh(&format!("head -c {size} /dev/urandom > {}", src.display()));
    let want = hash_file(&src);
    sh(&format!(
        "cp {} {}",
        src.display(),
        m1.path("big.bin").display()
    ));
    // Acknowledged at close; its tail waits for the write-back delay.
    m1.signal_and_wait(libc::SIGKILL).expect("daemon killed");
    m1.unmount();
    assert!(client.head_file(&p("big.bin")).await.unwrap().is_none());
    let sent = stat_u64(&server.stats().await, "part_bytes");
    assert!(
        sent >= 32 * MIB,
        "parts were streamed before the close: {sent}"
    );
    let _m2 = MountGuard::new(
        &server,
        &format!(
            "cache_size=8M,part_size=2M,cache_dir={}",
            m1.cache_dir.display()
        ),
    );
    wait_for(
        "the file on the server",
        Duration::from_secs(60),
        || async { matches!(client.head_file(&p("big.bin")).await, Ok(Some(h)) if h.size == size) },
    )
    .await;
    assert_eq!(server_hashes(&client, "big.bin").await, want);
    let resent = stat_u64(&server.stats().await, "part_bytes") - sent;
    assert!(
        resent < 8 * MIB,
        "only the tail is sent after the crash: {resent}"
    );
    wait_for("the journal to empty", Duration::from_secs(10), || async {
        journal_count(&m1.cache_dir) == 0
    })
    .await;
}
