//! `smhfs resume`: continues the journaled uploads of a cache directory
//! without mounting.

use std::time::Duration;

use super::options::MountOptions;
use super::source::{CredentialsFile, Source};
use crate::smh::SmhPath;

/// `smhfs resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    /// `LIBRARY[:SPACE]` the uploads belong to.
    pub source: String,
    /// The same options as the mount (endpoint, credentials, cache_dir, ...).
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Also retry uploads that failed for good earlier (e.g. EEXIST).
    #[arg(long)]
    pub retry_failed: bool,
    /// Give up after this many seconds (what is left stays journaled).
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}

/// Runs `smhfs resume`: continues every journaled upload of `cache_dir`
/// without mounting; exits non-zero if some are left.
pub fn run_resume(args: ResumeArgs) -> Result<(), String> {
    let opts = MountOptions::parse(&args.options, true)?;
    let mut source = Source::parse(&args.source)?;
    source.path = SmhPath::root();
    super::init_logging(opts.debug, opts.log_format);
    let creds = CredentialsFile::load(&opts.credentials_file)?;
    // Entries record absolute paths: compare like with like.
    let mut opts = opts;
    if let Ok(abs) = std::path::absolute(&opts.fs.cache_dir) {
        opts.fs.cache_dir = abs;
    }
    crate::fs::cachedir::verify(&opts.fs.cache_dir)?;
    let _cache_lock = crate::fs::journal::lock_cache_dir(&opts.fs.cache_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    let client = crate::smh::SmhClient::new(opts.client_config(&source, creds)?)
        .map_err(|e| e.to_string())?;
    // Resuming uploads needs write access whatever the mount used.
    let fs_cfg = crate::fs::FsConfig {
        read_only: false,
        ..opts.fs_config(source.path.clone())
    };
    let mut fs = crate::fs::SmhFs::new(client, fs_cfg);
    let mut d = opts.durability();
    d.write_back = Some(Duration::ZERO);
    fs.set_durability(d);
    let fs = std::sync::Arc::new(fs);
    let before = crate::fs::writeback::journal_status(&opts.fs.cache_dir).len();
    eprintln!(
        "smhfs: resuming {before} journaled upload(s) from {}",
        opts.fs.cache_dir.display()
    );
    fs.start_background(rt.handle());
    fs.resume_journal(args.retry_failed);
    let left = rt.block_on(fs.drain_uploads(Duration::from_secs(args.timeout)));
    let after = crate::fs::writeback::journal_status(&opts.fs.cache_dir);
    rt.shutdown_timeout(Duration::from_secs(5));
    if left > 0 || !after.is_empty() {
        for u in &after {
            eprintln!(
                "smhfs: not uploaded: {} ({}){}",
                u.path,
                u.state,
                u.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
        return Err(format!("{} upload(s) left in the journal", after.len()));
    }
    eprintln!("smhfs: all journaled uploads are on the server");
    Ok(())
}
