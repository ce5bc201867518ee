//! Content hashes of a local file and of what the server stores, the
//! latter downloaded through the API (never read back through a mount).

use std::io::Read;
use std::os::unix::fs::MetadataExt;
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

/// Bytes the cache directory's files occupy on disk (`du`: st_blocks).
pub fn allocated(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::symlink_metadata(e.path()).ok())
                .filter(|m| m.is_file())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}
