//! Creates many entries in one directory of an SMH library through the API
//! (not through a mount), with bounded concurrency. Used by `scripts/bench.sh`
//! for the 10,000-entry listing workload.
//!
//! ```sh
//! cargo run --release --example populate -- \
//!     --endpoint http://127.0.0.1:8720 --library smhlocal --secret smhlocal-secret \
//!     --dir w5/big --count 10000 --kind file --concurrency 32
//! ```
//!
//! `--kind file` uploads tiny files (`--size` bytes each, default 16; below
//! 1 MiB so no instant upload applies), `--kind dir` creates empty
//! directories. Entries are named `e00000`, `e00001`, ... (plus `.bin` for
//! files). Existing entries are skipped, so a rerun only fills the gaps.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures::StreamExt;
use smhfs::smh::{
    ClientConfig, ConflictStrategy, ContentHasher, Credentials, RetryPolicy, SmhClient, SmhPath,
    UploadOptions,
};

#[derive(Parser, Debug)]
struct Args {
    /// Server base URL, e.g. http://127.0.0.1:8720
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value = "smhlocal")]
    library: String,
    #[arg(long, default_value = "-")]
    space: String,
    #[arg(long, default_value = "smhlocal-secret")]
    secret: String,
    /// Directory (inside the space) to fill; created if missing.
    #[arg(long)]
    dir: String,
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// `file` or `dir`.
    #[arg(long, default_value = "file")]
    kind: String,
    /// Bytes per file for `--kind file`.
    #[arg(long, default_value_t = 16)]
    size: usize,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.kind != "file" && args.kind != "dir" {
        bail!("--kind must be `file` or `dir`");
    }
    let mut cfg = ClientConfig::new(
        args.endpoint.parse().context("bad --endpoint")?,
        &args.library,
        &args.space,
        Credentials::LibrarySecret(args.secret.clone()),
    );
    cfg.retry = RetryPolicy {
        max_retries: 8,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
    };
    let client = SmhClient::new(cfg)?;
    let dir = SmhPath::parse(&args.dir).context("bad --dir")?;
    if !client.dir_exists(&dir).await? {
        client.create_dir(&dir, ConflictStrategy::Rename).await?;
    }
    let existing: std::collections::HashSet<String> = client
        .list_all(&dir)
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();

    // One staged source for all files; its hashes are computed once.
    let staging = tempfile::tempdir()?;
    let source: PathBuf = staging.path().join("entry");
    let data: Vec<u8> = (0..args.size).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &data)?;
    let hashes = {
        let mut h = ContentHasher::new();
        h.update(&data);
        h.finish()
    };
    let opts = UploadOptions::default();

    let names: Vec<String> = (0..args.count)
        .map(|i| {
            if args.kind == "file" {
                format!("e{i:05}.bin")
            } else {
                format!("e{i:05}")
            }
        })
        .filter(|n| !existing.contains(n))
        .collect();
    let todo = names.len();
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let results = futures::stream::iter(names.into_iter().map(|name| {
        let client = client.clone();
        let path = SmhPath::parse(&format!("{}/{}", args.dir.trim_matches('/'), name));
        let kind = args.kind.clone();
        let source = source.clone();
        let hashes = hashes.clone();
        let opts = opts.clone();
        let done = done.clone();
        async move {
            let path = path?;
            if kind == "file" {
                client
                    .upload_file(&path, &source, Some(hashes), &opts)
                    .await
                    .with_context(|| format!("upload {name}"))?;
            } else {
                client
                    .create_dir(&path, ConflictStrategy::Ask)
                    .await
                    .with_context(|| format!("mkdir {name}"))?;
            }
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n % 1000 == 0 {
                eprintln!("populate: {n}/{todo}");
            }
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(args.concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    for r in results {
        r?;
    }
    let total = client.list_all(&dir).await?.len();
    eprintln!(
        "populate: created {todo} in {:.1}s; {} now holds {total} entries",
        started.elapsed().as_secs_f64(),
        args.dir
    );
    if total < args.count {
        bail!(
            "{} holds {total} entries, expected at least {}",
            args.dir,
            args.count
        );
    }
    Ok(())
}
