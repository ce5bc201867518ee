//! Sparse files (issue 15): holes (`truncate -s`, writes past the end) cost
//! no cache room and are not read from disk, yet the server stores every
//! zero (SMH has no sparse upload: the zeros are sent).

use crate::common;
use crate::common::mount::*;

use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::time::Instant;

use common::content::allocated;
use common::content::server_hashes;
use common::TestServer;
use smhfs::smh::{ContentHasher, ContentHashes};

const MIB: u64 = 1 << 20;
const OPTS: &str = "cache_size=64M,cache_wait=1";

/// `lseek(fd, offset, whence)`, or its errno.
fn seek(fd: i32, offset: u64, whence: i32) -> Result<u64, i32> {
    // SAFETY: a plain syscall on a descriptor the caller keeps open.
    let r = unsafe { libc::lseek(fd, offset as libc::off_t, whence) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as u64)
    }
}

/// Feeds `n` zero bytes to `h`.
fn zeros(h: &mut ContentHasher, mut n: u64) {
    let z = vec![0u8; MIB as usize];
    while n > 0 {
        let k = n.min(MIB) as usize;
        h.update(&z[..k]);
        n -= k as u64;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn truncate_to_a_gigabyte_on_a_small_cache_stores_a_gigabyte_of_zeros() {
    let server = TestServer::start();
    let client = common::client_for(&server);
    let m = MountGuard::new(&server, OPTS);
    let size = 1u64 << 30;
    // What truncate(1) does, with the file kept open for the checks.
    let t = Instant::now();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(m.path("sparse.img"))
        .unwrap();
    f.set_len(size).unwrap();
    assert_eq!(std::fs::metadata(m.path("sparse.img")).unwrap().len(), size);
    let held = allocated(&m.cache_dir);
    assert!(held < MIB, "the hole is not on disk: {held}");
    // The hole holds no room: another file still fits in the 64 MiB cache
    // (charged at its apparent size, the gigabyte left none: ENOSPC).
    let other = random_bytes(16 * MIB as usize);
    std::fs::write(m.path("other.bin"), &other).unwrap();
    assert_eq!(
        server_hashes(&client, "other.bin").await,
        ContentHashes::of(&other)
    );
    server.reset_stats().await;
    let t_close = Instant::now();
    drop(f);
    eprintln!(
        "truncate -s 1G + close (upload): {:?} (close {:?})",
        t.elapsed(),
        t_close.elapsed()
    );
    let stats = server.stats().await;
    assert_eq!(
        stat_u64(&stats, "part_bytes"),
        size,
        "every zero is sent: {stats}"
    );
    let head = client.head_file(&p("sparse.img")).await.unwrap().unwrap();
    assert_eq!(head.size, size);
    let mut want = ContentHasher::new();
    zeros(&mut want, size);
    assert_eq!(server_hashes(&client, "sparse.img").await, want.finish());
    assert_eq!(allocated(&m.cache_dir), 0, "the staged file is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn data_at_both_ends_of_a_512m_hole_is_stored_exactly() {
    let server = TestServer::start();
    let client = common::client_for(&server);
    let m = MountGuard::new(&server, OPTS);
    let head = random_bytes(MIB as usize + 100);
    let tail = random_bytes(MIB as usize + 12345);
    let at = 512 * MIB;
    let size = at + tail.len() as u64;
    server.reset_stats().await;
    let mut f = std::fs::File::create(m.path("holed.bin")).unwrap();
    f.write_all(&head).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    // Charged at its apparent size, this write would need 512 MiB: ENOSPC.
    f.write_all(&tail).unwrap();
    let held = allocated(&m.cache_dir);
    assert!(
        held < 4 * MIB,
        "only the data is in the cache: {held} bytes"
    );
    // Reads through the mount see the hole as zeros.
    let mut probe = vec![1u8; 4096];
    let r = std::fs::File::open(m.path("holed.bin")).unwrap();
    std::os::unix::fs::FileExt::read_exact_at(&r, &mut probe, 100 * MIB).unwrap();
    assert!(probe.iter().all(|&b| b == 0));
    drop(r);
    // lseek finds the hole (`cp`, `tar --sparse` keep it).
    let fd = f.as_raw_fd();
    let hole = seek(fd, 0, libc::SEEK_HOLE).unwrap();
    assert!(
        hole >= head.len() as u64 && hole < 2 * MIB,
        "SEEK_HOLE: {hole}"
    );
    assert_eq!(seek(fd, hole, libc::SEEK_DATA), Ok(at));
    assert_eq!(seek(fd, at + 10, libc::SEEK_HOLE), Ok(size));
    assert_eq!(seek(fd, size, libc::SEEK_DATA), Err(libc::ENXIO));
    f.sync_all().unwrap();
    drop(f);
    let stats = server.stats().await;
    assert_eq!(stat_u64(&stats, "part_bytes"), size, "{stats}");
    let mut want = ContentHasher::new();
    want.update(&head);
    zeros(&mut want, at - head.len() as u64);
    want.update(&tail);
    assert_eq!(server_hashes(&client, "holed.bin").await, want.finish());
    // Content not staged (on the server): all data.
    let r = std::fs::File::open(m.path("holed.bin")).unwrap();
    assert_eq!(seek(r.as_raw_fd(), 0, libc::SEEK_HOLE), Ok(size));
    assert_eq!(seek(r.as_raw_fd(), 5, libc::SEEK_DATA), Ok(5));
    // The bytes themselves, at the edges of the hole.
    let url = client.download_url(&p("holed.bin")).await.unwrap();
    let got = client
        .read_range(&url, 0, head.len() as u64 + 10)
        .await
        .unwrap();
    assert_eq!(&got[..head.len()], &head[..]);
    assert!(got[head.len()..].iter().all(|&b| b == 0));
    let got = client
        .read_range(&url, at - 10, 10 + tail.len() as u64)
        .await
        .unwrap();
    assert!(got[..10].iter().all(|&b| b == 0));
    assert_eq!(&got[10..], &tail[..]);
}
