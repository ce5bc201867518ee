//! Content hashes of a local file and of what the server stores, the
//! latter downloaded through the API (never read back through a mount).

use std::io::Read;
use std::path::Path;

use smhfs::smh::{ContentHasher, ContentHashes, SmhClient};

use super::mount::p;

pub fn hash_file(path: &Path) -> ContentHashes {
    let mut f = std::fs::File::open(path).unwrap();
    let mut h = ContentHasher::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finish()
}

/// Hashes of what the server serves for `path` (downloaded in 8 MiB ranges).
pub async fn server_hashes(client: &SmhClient, path: &str) -> ContentHashes {
    let head = client
        .head_file(&p(path))
        .await
        .unwrap()
        .expect("on server");
    let url = client.download_url(&p(path)).await.unwrap();
    let mut h = ContentHasher::new();
    let mut at = 0u64;
    while at < head.size {
        let chunk = client
            .read_range(&url, at, (8 << 20).min(head.size - at))
            .await
            .unwrap();
        assert!(!chunk.is_empty(), "short read at {at}");
        at += chunk.len() as u64;
        h.update(&chunk);
    }
    h.finish()
}
