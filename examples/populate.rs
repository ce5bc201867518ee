//! Creates many entries in one directory of an SMH library through the API
//! (not through a mount), with bounded concurrency. Used by `scripts/bench.sh`
//! for the 10,000-entry listing workload and by `scripts/bench-scale.sh` for
//! the 200,000-entry directory (W8) and the 1,000 × 1,000 tree (W7,
//! `--dirs 1000 --count 1000`).
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
//! files; six digits from 100,000 entries on). With `--dirs N`, `--dir` gets
//! N sub-directories `d0000`, `d0001`, ... and each gets `--count` entries;
//! all uploads of the tree share one bounded pool, so the directories fill in
//! parallel. Existing entries are skipped, so a rerun only fills the gaps.

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
    /// Tree mode: this many sub-directories of `--dir`, `--count` entries each.
    #[arg(long, default_value_t = 0)]
    dirs: usize,
}

/// Names of the `count` entries of one directory: `e00000(.bin)`, wide
/// enough that they sort in creation order.
fn entry_names(count: usize, kind: &str) -> impl Iterator<Item = String> + '_ {
    let width = count.saturating_sub(1).to_string().len().max(5);
    (0..count).map(move |i| {
        if kind == "file" {
            format!("e{i:0width$}.bin")
        } else {
            format!("e{i:0width$}")
        }
    })
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
    let top = args.dir.trim_matches('/').to_string();
    // The directories to fill (relative to the space root).
    let dirs: Vec<String> = if args.dirs == 0 {
        vec![top.clone()]
    } else {
        let width = args.dirs.saturating_sub(1).to_string().len().max(4);
        (0..args.dirs)
            .map(|j| format!("{top}/d{j:0width$}"))
            .collect()
    };
    // Create the sub-directories (tree mode) and list what each already holds.
    let existing = futures::stream::iter(dirs.iter().map(|d| {
        let client = client.clone();
        let tree = args.dirs > 0;
        async move {
            let path = SmhPath::parse(d).context("bad directory")?;
            if tree && !client.dir_exists(&path).await? {
                client.create_dir(&path, ConflictStrategy::Ask).await?;
                return anyhow::Ok(std::collections::HashSet::new());
            }
            let names = client.list_all(&path).await?.into_iter().map(|e| e.name);
            anyhow::Ok(names.collect::<std::collections::HashSet<String>>())
        }
    }))
    .buffered(args.concurrency.max(1))
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<_>>>()?;

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

    let names: Vec<String> = dirs
        .iter()
        .zip(&existing)
        .flat_map(|(d, have)| {
            entry_names(args.count, &args.kind)
                .filter(|n| !have.contains(n))
                .map(move |n| format!("{d}/{n}"))
        })
        .collect();
    let todo = names.len();
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let results = futures::stream::iter(names.into_iter().map(|name| {
        let client = client.clone();
        let path = SmhPath::parse(&name);
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
            if n % 10_000 == 0 || (todo < 100_000 && n % 1000 == 0) {
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
    // Count what the server now lists, directory by directory.
    let counts = futures::stream::iter(dirs.iter().map(|d| {
        let client = client.clone();
        async move {
            let n = client.list_all(&SmhPath::parse(d)?).await?.len();
            anyhow::Ok((d.clone(), n))
        }
    }))
    .buffered(args.concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    let mut total = 0;
    for c in counts {
        let (d, n) = c?;
        if n < args.count {
            bail!("{d} holds {n} entries, expected at least {}", args.count);
        }
        total += n;
    }
    eprintln!(
        "populate: created {todo} in {:.1}s; {} directories under {top} now hold {total} entries",
        started.elapsed().as_secs_f64(),
        dirs.len()
    );
    Ok(())
}
