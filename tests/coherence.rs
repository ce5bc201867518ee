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
