//! Reading and writing through a real mount against a real `smhfs serve`.

use crate::common;
use crate::common::mount;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use common::TestServer;
use mount::*;
use smhfs::smh::ContentHashes;

const MIB: usize = 1024 * 1024;

async fn server_crc(client: &smhfs::smh::SmhClient, path: &str) -> Option<String> {
    client
        .head_file(&p(path))
        .await
        .unwrap()
        .and_then(|h| h.crc64)
}

#[tokio::test]
async fn round_trip_sizes_and_crc64() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "part_size=1M");
    let client = client_for(&server);
    fs::create_dir(m.path("rt")).unwrap();
    for size in [0, 1, MIB - 1, MIB, MIB + 1, 5 * MIB + 3] {
        let data = random_bytes(size);
        let rel = format!("rt/f{size}.bin");
        fs::write(m.path(&rel), &data).unwrap();
        assert_eq!(fs::metadata(m.path(&rel)).unwrap().len(), size as u64);
        assert_eq!(fs::read(m.path(&rel)).unwrap(), data, "content of {size}");
        let ours = ContentHashes::of(&data).crc64_string();
        assert_eq!(
            server_crc(&client, &rel).await.as_deref(),
            Some(ours.as_str()),
            "crc64 of {size}"
        );
    }
    // Staged copies are gone once the server has the content.
    assert!(m.staged_files().is_empty(), "left: {:?}", m.staged_files());
}

#[tokio::test]
async fn overwrite_append_random_write_truncate() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "part_size=1M");
    let client = client_for(&server);
    let f = m.path("doc.bin");
    let mut expect = random_bytes(2 * MIB + 17);
    fs::write(&f, &expect).unwrap();

    // Overwrite with shorter content.
    expect = b"short".to_vec();
    fs::write(&f, &expect).unwrap();
    assert_eq!(fs::read(&f).unwrap(), expect);

    // Append.
    let mut a = fs::OpenOptions::new().append(true).open(&f).unwrap();
    a.write_all(b" and more").unwrap();
    drop(a);
    expect.extend_from_slice(b" and more");
    assert_eq!(fs::read(&f).unwrap(), expect);

    // Random write in the middle of a bigger file (out of order).
    let big = random_bytes(3 * MIB);
    fs::write(&f, &big).unwrap();
    let mut expect = big.clone();
    let h = fs::OpenOptions::new().write(true).open(&f).unwrap();
    h.write_all_at(b"XYZ", (MIB + 5) as u64).unwrap();
    h.write_all_at(b"abc", 10).unwrap();
    drop(h);
    expect[MIB + 5..MIB + 8].copy_from_slice(b"XYZ");
    expect[10..13].copy_from_slice(b"abc");
    assert_eq!(fs::read(&f).unwrap(), expect);
    let ours = ContentHashes::of(&expect).crc64_string();
    assert_eq!(
        server_crc(&client, "doc.bin").await.as_deref(),
        Some(ours.as_str())
    );

    // Truncate down, then up (zeros), by path and by handle.
    let h = fs::OpenOptions::new().write(true).open(&f).unwrap();
    h.set_len(1000).unwrap();
    drop(h);
    expect.truncate(1000);
    assert_eq!(fs::read(&f).unwrap(), expect);
    let h = fs::OpenOptions::new().write(true).open(&f).unwrap();
    h.set_len(5000).unwrap();
    drop(h);
    expect.resize(5000, 0);
    assert_eq!(fs::read(&f).unwrap(), expect);
    let ours = ContentHashes::of(&expect).crc64_string();
    assert_eq!(
        server_crc(&client, "doc.bin").await.as_deref(),
        Some(ours.as_str())
    );

    // Read-write handle reads its own writes before close.
    let mut rw = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f)
        .unwrap();
    rw.seek(SeekFrom::Start(4990)).unwrap();
    rw.write_all(b"0123456789tail").unwrap();
    rw.seek(SeekFrom::Start(4990)).unwrap();
    let mut back = Vec::new();
    rw.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"0123456789tail");
    drop(rw);
    assert_eq!(fs::metadata(&f).unwrap().len(), 5004);
}

#[tokio::test]
async fn empty_file_and_touch() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    let client = client_for(&server);
    fs::File::create(m.path("empty")).unwrap();
    sh(&format!("touch {}", m.path("touched").display()));
    for n in ["empty", "touched"] {
        let h = client
            .head_file(&p(n))
            .await
            .unwrap()
            .expect("on the server");
        assert_eq!(h.size, 0);
        assert_eq!(fs::metadata(m.path(n)).unwrap().len(), 0);
    }
}

#[tokio::test]
async fn conflict_overwrite_replaces() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "conflict=overwrite");
    fs::write(m.path("a.txt"), b"one").unwrap();
    fs::write(m.path("a.txt"), b"two").unwrap();
    assert_eq!(fs::read(m.path("a.txt")).unwrap(), b"two");
    let names: Vec<_> = fs::read_dir(&m.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

/// `echo two > a.txt` right after `echo one > a.txt` can open the file
/// before the kernel has released the first handle (release comes after
/// close() returned); here the first handle is simply kept open. The new
/// writer still gets `rename`: nothing is replaced.
#[tokio::test]
async fn conflict_rename_holds_while_an_earlier_writer_is_open() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "conflict=rename");
    let tok = server.token().await;
    let mut first = fs::File::create(m.path("a.txt")).unwrap();
    first.write_all(b"one").unwrap();
    first.sync_all().unwrap();
    fs::write(m.path("a.txt"), b"two").unwrap();
    drop(first);
    assert_eq!(common::http::download(&server, &tok, "a.txt").await, b"one");
    assert_eq!(
        common::http::download(&server, &tok, "a (1).txt").await,
        b"two"
    );
}

#[tokio::test]
async fn conflict_rename_keeps_both() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "conflict=rename");
    let client = client_for(&server);
    fs::write(m.path("a.txt"), b"one").unwrap();
    fs::write(m.path("a.txt"), b"two").unwrap();
    let mut names: Vec<String> = client
        .list_all(&p(""))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    assert_eq!(names, vec!["a (1).txt", "a.txt"]);
    assert_eq!(fs::read(m.path("a (1).txt")).unwrap(), b"two");
    assert!(m.log().contains("a (1).txt"), "the new name is logged");
}

#[tokio::test]
async fn conflict_ask_never_replaces() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "conflict=ask");
    let client = client_for(&server);
    fs::write(m.path("a.txt"), b"one").unwrap();
    let e = fs::write(m.path("a.txt"), b"two").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
    let e = fs::OpenOptions::new()
        .append(true)
        .open(m.path("a.txt"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
    fs::write(m.path("b.txt"), b"b").unwrap();
    let e = fs::rename(m.path("b.txt"), m.path("a.txt")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
    // A file created on the server behind our back: the upload is refused at close.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x");
    fs::write(&src, b"server").unwrap();
    let mut f = fs::File::create(m.path("late.txt")).unwrap();
    client
        .upload_file(&p("late.txt"), &src, None, &Default::default())
        .await
        .unwrap();
    f.write_all(b"mine").unwrap();
    let e = f.sync_all().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
    drop(f);
    assert_eq!(fs::read(m.path("a.txt")).unwrap(), b"one");
}

#[tokio::test]
async fn instant_upload_of_duplicate_sends_no_part_bytes() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "part_size=1M");
    let data = random_bytes(3 * MIB);
    fs::write(m.path("orig.bin"), &data).unwrap();
    let before = server.stats().await;
    fs::write(m.path("copy.bin"), &data).unwrap();
    let after = server.stats().await;
    assert_eq!(
        stat_u64(&after, "part_bytes"),
        stat_u64(&before, "part_bytes"),
        "no data sent"
    );
    assert_eq!(fs::read(m.path("copy.bin")).unwrap(), data);
}

#[tokio::test]
async fn failed_upload_reports_eio_and_keeps_data() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "part_size=1M");
    server.admin("/__fault", "part:503:100%").await;
    let data = random_bytes(2 * MIB + 5);
    let mut f = fs::File::create(m.path("doomed.bin")).unwrap();
    f.write_all(&data).unwrap();
    let e = f.sync_all().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    drop(f);
    let staged = m.staged_files();
    assert!(
        staged
            .iter()
            .any(|s| fs::read(s).map(|c| c == data).unwrap_or(false)),
        "data kept in the cache dir: {staged:?}"
    );
    let log = m.log();
    assert!(log.contains("ERROR") && log.contains("doomed.bin"), "{log}");
}

#[tokio::test]
async fn large_file_round_trip() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "part_size=16M,upload_concurrency=4");
    let client = client_for(&server);
    let chunk = random_bytes(MIB);
    let n = 201;
    let t = std::time::Instant::now();
    let mut f = fs::File::create(m.path("big.bin")).unwrap();
    let mut crc = smhfs::smh::hash::Crc64::new();
    for i in 0..n {
        let mut c = chunk.clone();
        c[0] = i as u8;
        crc.update(&c);
        f.write_all(&c).unwrap();
    }
    eprintln!("write: {:?}", t.elapsed());
    drop(f);
    eprintln!("write+close: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    assert_eq!(
        fs::metadata(m.path("big.bin")).unwrap().len(),
        (n * MIB) as u64
    );
    assert_eq!(
        server_crc(&client, "big.bin").await,
        Some(crc.value().to_string())
    );
    // Read back through the mount (sequential read-ahead).
    let mut r = fs::File::open(m.path("big.bin")).unwrap();
    let mut back = smhfs::smh::hash::Crc64::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        back.update(&buf[..k]);
        total += k;
    }
    eprintln!("read: {:?}", t.elapsed());
    assert_eq!(total, n * MIB);
    assert_eq!(back.value(), crc.value());
    // Random reads (no read-ahead pattern), across chunk boundaries.
    let r = fs::File::open(m.path("big.bin")).unwrap();
    for (i, k) in [
        (150usize, 10usize),
        (3, MIB - 2),
        (77, 0),
        (200, MIB - 100),
        (0, 5),
    ] {
        let mut got = [0u8; 64];
        let at = (i * MIB + k) as u64;
        let want_len = ((n * MIB) as u64 - at).min(64) as usize;
        r.read_exact_at(&mut got[..want_len], at).unwrap();
        for (j, b) in got[..want_len].iter().enumerate() {
            let pos = i * MIB + k + j;
            let expect = if pos % MIB == 0 {
                (pos / MIB) as u8
            } else {
                chunk[pos % MIB]
            };
            assert_eq!(*b, expect, "byte {pos}");
        }
    }
}

#[tokio::test]
async fn mtime_set_before_close_is_uploaded() {
    use std::time::{Duration, SystemTime};
    let server = TestServer::start();
    let m = MountGuard::new(&server, "attr_timeout=0.2");
    let client = client_for(&server);
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    let mut f = fs::File::create(m.path("old.txt")).unwrap();
    f.write_all(b"x").unwrap();
    f.set_modified(t).unwrap();
    drop(f);
    let info = client.stat(&p("old.txt")).await.unwrap().unwrap();
    let lmt = info.local_modification_time.unwrap_or_default();
    assert!(lmt.starts_with("2017-07-14T02:40:00"), "{lmt}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fs::metadata(m.path("old.txt")).unwrap().modified().unwrap(),
        t
    );
}

#[tokio::test]
async fn quota_exceeded_is_enospc_and_statfs_shows_quota() {
    let server = TestServer::start_with(&["--capacity", "1048576"]);
    let m = MountGuard::new(&server, "");
    let out = sh(&format!("df -B1 --output=size {}", m.mnt.display()));
    assert!(out.contains("1048576"), "{out}");
    let mut f = fs::File::create(m.path("big.bin")).unwrap();
    f.write_all(&random_bytes(2 * MIB)).unwrap();
    let e = f.sync_all().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
}

#[tokio::test]
async fn stale_download_url_is_refetched() {
    let server = TestServer::start();
    let client = client_for(&server);
    let data = random_bytes(3 * MIB + 7);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x");
    fs::write(&src, &data).unwrap();
    client
        .upload_file(&p("f.bin"), &src, None, &Default::default())
        .await
        .unwrap();
    let m = MountGuard::new(&server, "");
    server.admin("/__fault", "download:403:1").await;
    assert_eq!(fs::read(m.path("f.bin")).unwrap(), data);
}

#[tokio::test]
async fn readers_see_bytes_before_close() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    let mut w = fs::File::create(m.path("live.txt")).unwrap();
    w.write_all(b"being written").unwrap();
    assert_eq!(fs::read(m.path("live.txt")).unwrap(), b"being written");
    assert_eq!(fs::metadata(m.path("live.txt")).unwrap().len(), 13);
    w.write_all(b", still").unwrap();
    drop(w);
    assert_eq!(
        fs::read(m.path("live.txt")).unwrap(),
        b"being written, still"
    );
}

#[tokio::test]
async fn parallel_writers_and_readers() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "part_size=1M");
    let root = m.mnt.clone();
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let root = root.clone();
            std::thread::spawn(move || {
                let dir = root.join(format!("w{w}"));
                fs::create_dir(&dir).unwrap();
                for i in 0..15 {
                    let data = random_bytes((w * 7919 + i * 104_729) % (3 * MIB));
                    let f = dir.join(format!("f{i}"));
                    fs::write(&f, &data).unwrap();
                    assert_eq!(fs::read(&f).unwrap(), data, "{}", f.display());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    for w in 0..6 {
        assert_eq!(
            fs::read_dir(root.join(format!("w{w}"))).unwrap().count(),
            15
        );
    }
}

/// Reads that straddle the read-ahead's chunks, seeks back and forth, odd
/// buffer sizes, reads past the end, and mmap of a read-only handle (which
/// bypasses the page cache) all see the server's bytes.
#[tokio::test]
async fn reads_straddle_chunks_seek_and_mmap() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    let client = client_for(&server);
    let data = random_bytes(21 * MIB + 12_345);
    let src = tempfile::NamedTempFile::new().unwrap();
    fs::write(src.path(), &data).unwrap();
    client
        .upload_file(
            &p("r.bin"),
            src.path(),
            None,
            &smhfs::smh::UploadOptions::default(),
        )
        .await
        .unwrap();
    let f = fs::File::open(m.path("r.bin")).unwrap();
    // Sequential with a buffer that never lines up with 1 or 4 MiB.
    let mut back = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 1_000_003];
    let mut r = &f;
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    assert!(back == data, "sequential read differs");
    // Seeks: backwards, across chunk edges, the last bytes, past the end.
    let mut x = [0u8; 70_000];
    for at in [
        4 * MIB - 10,
        MIB / 2,
        16 * MIB - 1,
        8 * MIB + 5,
        3,
        data.len() - 100,
    ] {
        let n = f.read_at(&mut x, at as u64).unwrap();
        let want = &data[at..(at + x.len()).min(data.len())];
        assert_eq!(n, want.len(), "length at {at}");
        assert!(&x[..n] == want, "bytes at {at}");
    }
    assert_eq!(f.read_at(&mut x, data.len() as u64 + 10).unwrap(), 0);
    // mmap of the read-only handle.
    // SAFETY: a new read-only mapping at an address the kernel picks (no
    // aliasing); `f` is open for the call; failure is checked below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            data.len(),
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
    // SAFETY: `ptr` maps data.len() readable bytes (the file is that long)
    // until the munmap below, after the last use of `mapped`.
    let mapped = unsafe { std::slice::from_raw_parts(ptr as *const u8, data.len()) };
    let same = mapped[9 * MIB..9 * MIB + 4096] == data[9 * MIB..9 * MIB + 4096]
        && mapped[data.len() - 7..] == data[data.len() - 7..];
    // SAFETY: exactly the mapping made above; `mapped` is no longer used.
    unsafe { libc::munmap(ptr, data.len()) };
    assert!(same, "mmap sees other bytes");
}

/// Staged files past 8 MiB written in order go through O_DIRECT buffers:
/// sizes around the 4 KiB alignment and the switch point must all arrive
/// whole, and read back equal.
#[tokio::test]
async fn large_staging_sizes_around_alignment() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "part_size=8M");
    let client = client_for(&server);
    let t = 8 * MIB;
    fs::create_dir(m.path("al")).unwrap();
    for size in [0, 1, 4095, 4096, 4097, t - 1, t, t + 1, t + 3, 100 * MIB] {
        let data = random_bytes(size);
        let rel = format!("al/f{size}.bin");
        fs::write(m.path(&rel), &data).unwrap();
        assert_eq!(fs::metadata(m.path(&rel)).unwrap().len(), size as u64);
        let ours = ContentHashes::of(&data).crc64_string();
        assert_eq!(
            server_crc(&client, &rel).await.as_deref(),
            Some(ours.as_str()),
            "crc64 of {size}"
        );
        assert!(fs::read(m.path(&rel)).unwrap() == data, "content of {size}");
    }
    assert!(m.staged_files().is_empty(), "left: {:?}", m.staged_files());
}

/// Random and overlapping writes into a large file being staged, reads
/// through another handle while it is written, then truncate and append.
#[tokio::test]
async fn large_staged_file_random_writes_reads_truncate_append() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "part_size=4M");
    let client = client_for(&server);
    let f = m.path("big.bin");
    let mut model = random_bytes(20 * MIB + 7);
    let mut w = fs::File::create(&f).unwrap();
    let r = fs::File::open(&f).unwrap();
    for (i, c) in model.chunks(MIB).enumerate() {
        w.write_all(c).unwrap();
        // Read while writing: the newest bytes may still be buffered.
        let end = ((i + 1) * MIB).min(model.len());
        let from = end.saturating_sub(3 * MIB + 5);
        let mut got = vec![0u8; end - from];
        r.read_exact_at(&mut got, from as u64).unwrap();
        assert!(
            got == model[from..end],
            "read [{from}, {end}) while writing"
        );
    }
    // Overlapping writes at random places (one past the end, too).
    let patches = [
        (5usize, 3 * MIB),
        (MIB + 1, 10),
        (12 * MIB - 3, 2 * MIB),
        (20 * MIB, 7),
        (model.len() - 2, 5000),
    ];
    for (k, (off, len)) in patches.into_iter().enumerate() {
        let p = random_bytes(len + k);
        w.write_all_at(&p, off as u64).unwrap();
        if model.len() < off + p.len() {
            model.resize(off + p.len(), 0);
        }
        model[off..off + p.len()].copy_from_slice(&p);
    }
    // Sequential appends again, long enough to switch back to O_DIRECT.
    w.seek(SeekFrom::End(0)).unwrap();
    let more = random_bytes(10 * MIB + 3);
    w.write_all(&more).unwrap();
    model.extend_from_slice(&more);
    drop(w);
    drop(r);
    assert!(fs::read(&f).unwrap() == model);
    let crc = |d: &[u8]| Some(ContentHashes::of(d).crc64_string());
    assert_eq!(server_crc(&client, "big.bin").await, crc(&model));

    // Truncate a large staged file while it is written, then append.
    let mut w = fs::OpenOptions::new().write(true).open(&f).unwrap();
    w.seek(SeekFrom::End(0)).unwrap();
    let more = random_bytes(9 * MIB);
    w.write_all(&more).unwrap();
    model.extend_from_slice(&more);
    w.set_len(25 * MIB as u64 + 1).unwrap();
    model.truncate(25 * MIB + 1);
    w.seek(SeekFrom::End(0)).unwrap();
    let more = random_bytes(9 * MIB + 4095);
    w.write_all(&more).unwrap();
    model.extend_from_slice(&more);
    drop(w);
    let mut a = fs::OpenOptions::new().append(true).open(&f).unwrap();
    a.write_all(b"tail").unwrap();
    model.extend_from_slice(b"tail");
    drop(a);
    assert_eq!(fs::metadata(&f).unwrap().len(), model.len() as u64);
    let got = fs::read(&f).unwrap();
    assert!(
        got == model,
        "read back {} bytes of {}, first difference at {:?}",
        got.len(),
        model.len(),
        got.iter().zip(&model).position(|(a, b)| a != b)
    );
    assert_eq!(server_crc(&client, "big.bin").await, crc(&model));
}

/// Write-only handles bypass the kernel page cache: readers through
/// cached handles, stat, appends, truncates and mmap must still agree.
#[tokio::test]
async fn write_only_direct_handles_agree_with_cached_ones() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "");
    let f = m.path("coh.txt");
    fs::write(&f, vec![b'a'; 10_000]).unwrap();
    let r = fs::File::open(&f).unwrap();
    let mut got = [0u8; 8];
    r.read_exact_at(&mut got, 0).unwrap();
    assert_eq!(&got, b"aaaaaaaa");
    // Overwrite and extend through a write-only handle, still open.
    let w = fs::OpenOptions::new().write(true).open(&f).unwrap();
    w.write_all_at(b"XXXX", 0).unwrap();
    w.write_all_at(b"END", 10_000).unwrap();
    r.read_exact_at(&mut got, 0).unwrap();
    assert_eq!(&got, b"XXXXaaaa", "cached reader sees the direct write");
    assert_eq!(fs::metadata(&f).unwrap().len(), 10_003);
    assert_eq!(r.metadata().unwrap().len(), 10_003);
    let mut tail = [0u8; 8];
    r.read_exact_at(&mut tail, 9_995).unwrap();
    assert_eq!(&tail, b"aaaaaEND");
    drop(w);
    // O_APPEND on a write-only handle goes to the current end.
    let mut a = fs::OpenOptions::new().append(true).open(&f).unwrap();
    a.write_all(b"APP").unwrap();
    drop(a);
    assert_eq!(fs::metadata(&f).unwrap().len(), 10_006);
    // Truncate, then write at the (write-only) handle's offset.
    let mut w = fs::OpenOptions::new().write(true).open(&f).unwrap();
    w.set_len(5).unwrap();
    w.write_all(b"zz").unwrap();
    drop(w);
    assert_eq!(fs::read(&f).unwrap(), b"zzXXa");
    // A read-write handle stays cached, so shared mmap works.
    let rw = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f)
        .unwrap();
    // SAFETY: a fresh shared mapping of 5 bytes of an open 5-byte file;
    // the 2 bytes copied fit in it, and it is unmapped before `rw` closes.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            5,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&rw),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
        std::ptr::copy_nonoverlapping(b"MM".as_ptr(), p.cast::<u8>(), 2);
        assert_eq!(libc::msync(p, 5, libc::MS_SYNC), 0);
        libc::munmap(p, 5);
    }
    drop(rw);
    drop(r);
    assert_eq!(fs::read(&f).unwrap(), b"MMXXa");
}
