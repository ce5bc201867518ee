//! `smhfs serve`: an SMH-compatible server on local disk.
//!
//! Requests enter at [`routes`], which hands them to one module per API
//! area ([`tokens`], [`directories`], [`files`], [`uploads`], [`spaces`],
//! [`recycled`], [`admin`]) or to the object-store data plane ([`cos`]).
//! Handlers share the HTTP context [`http`] and [`entries`]; below them sit
//! [`tasks`] (upload task records), [`assemble`] (where upload bytes land),
//! [`store`] (SQLite + blobs), [`auth`], [`faults`], [`stats`], [`error`];
//! [`telemetry`] measures and logs every request.

pub mod actor;
pub mod admin;
pub mod assemble;
pub mod auth;
pub mod batch;
pub mod changes;
pub mod cors;
pub mod cos;
pub mod delta;
pub mod directories;
pub mod entries;
pub mod error;
pub mod faults;
pub mod files;
pub mod http;
pub mod links;
pub mod meta;
pub mod recycled;
pub mod routes;
pub mod schema;
pub mod setup;
pub mod spaces;
pub mod stats;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod tokens;
pub mod tree;
pub mod uploads;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use parking_lot::Mutex;
use rusqlite::Connection;

use auth::Token;
use error::SResult;
use faults::Faults;
use stats::Stats;
use store::Store;

/// Arguments of `smhfs serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port). Prints
    /// `listening on http://IP:PORT` once bound.
    #[arg(long, default_value = "127.0.0.1:8720")]
    pub listen: String,
    /// Data directory (SQLite metadata and blob files); created if missing.
    #[arg(long, default_value = "./smh-data")]
    pub data: PathBuf,
    /// Library id clients must use.
    #[arg(long, default_value = "smhlocal")]
    pub library: String,
    /// File holding the library secret (first line). Without it: the
    /// `SMHFS_SECRET` environment variable, then `--secret`, then a secret
    /// generated on the first start and kept in DATA/secret (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Library secret on the command line (visible to every local user in
    /// `ps`; prefer --secret-file or SMHFS_SECRET).
    #[arg(long, value_name = "SECRET", hide_default_value = true)]
    pub secret: Option<Redacted>,
    /// Serve the test knobs (/__stats, /__stats/reset, /__fault, /__latency,
    /// /__faults/clear, /__revoke-tokens); without it they are 404.
    #[arg(long)]
    pub test_endpoints: bool,
    /// A request whose body sends nothing for this long fails (408) and its
    /// connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub body_timeout: u64,
    /// What part and object PUTs answer as `ETag`: `md5` (what COS
    /// answers), or `crc` (`"<crc64>-<size>"`, no MD5 pass over the bytes).
    /// `crc` is for benchmarks, where this server stands in for COS on the
    /// same machine as the client: COS hashes on its own machines, and MD5
    /// (the slowest hash here) would be charged to the client's workload.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = PartEtag::Md5)]
    pub part_etag: PartEtag,
    /// Batches (POST /api/v1/batch/...) of more items than this run as a
    /// task (202 + taskId) instead of before the reply.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub batch_sync_max: usize,
    /// CORS: origins allowed to call the server from a browser
    /// (comma-separated; default: any, the request's origin is echoed).
    #[arg(long, value_name = "ORIGINS", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
    /// Multi-tenant library: spaces are created with the space API (otherwise
    /// the only space is `-`).
    #[arg(long)]
    pub multi_space: bool,
    /// Quota per space in bytes; uploads beyond it fail with QuotaLimitReached.
    #[arg(long, value_name = "BYTES")]
    pub capacity: Option<u64>,
    /// Lifetime of upload ticket credentials, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub ticket_ttl: u64,
    /// Caps access-token lifetime and disables auto-extension on use.
    #[arg(long, value_name = "SECS")]
    pub token_ttl: Option<u64>,
    /// Deletes are permanent (204) instead of going to the recycle bin.
    #[arg(long)]
    pub no_recycle_bin: bool,
    /// Keep no change feed: `fs-delta` answers FunctionNotEnabled (like a
    /// server without the feature).
    #[arg(long)]
    pub no_delta: bool,
    /// Entries the change feed keeps; a cursor older than that is expired.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub delta_history: u64,
    /// Inject failures: TARGET:STATUS:COUNT, TARGET one of api, token, list,
    /// begin, confirm, confirm_reply (after the commit), part, download,
    /// delta; COUNT `N` (next N requests) or `N%` (probability). Repeatable.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<String>,
    /// Delay each request of TARGET by MS milliseconds (TARGET:MS). Repeatable.
    #[arg(long = "latency", value_name = "TARGET:MS")]
    pub latency: Vec<String>,
    /// Serve Prometheus metrics of the requests on http://ADDR/metrics
    /// (PORT or localhost:PORT: loopback; IP:PORT as given).
    #[arg(long, value_name = "ADDR", value_parser = crate::obs::parse_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `text`, or `json` (one JSON object per line).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: crate::logging::LogFormat,
}

/// A command-line secret: shown as `***` in debug output.
#[derive(Clone)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Redacted {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Redacted(s.to_string()))
    }
}

/// Shared server state.
pub struct App {
    pub args: ServeArgs,
    /// The library secret (see [`setup::resolve_secret`]).
    pub secret: String,
    pub store: Arc<Store>,
    pub faults: Faults,
    pub stats: Stats,
    pub tokens: Mutex<HashMap<String, Token>>,
    pub spaces: Mutex<HashSet<String>>,
    pub sign_key: String,
    /// Files of live upload tasks (task blobs, fallback parts, hashers).
    pub tasks: assemble::Tasks,
    /// Batch tasks (202 replies of the batch API).
    pub batch_tasks: batch::BatchTasks,
    /// Confirm keys being confirmed right now.
    pub confirming: Mutex<HashSet<String>>,
}

impl App {
    /// Runs `f` in a database transaction on the blocking pool.
    pub async fn db<T, F>(&self, f: F) -> SResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> SResult<T> + Send + 'static,
    {
        let s = self.store.clone();
        tokio::task::spawn_blocking(actor::carry(move || s.tx(f))).await?
    }

    /// Like [`App::db`] for a transaction of a few cached statements: runs
    /// it right here when the database is free, since the trip to the
    /// blocking pool (two thread wake-ups) costs more than the work.
    pub async fn db_small<T, F>(&self, f: F) -> SResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> SResult<T> + Send + 'static,
    {
        if self.store.busy() {
            self.db(f).await
        } else {
            self.store.tx(f)
        }
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    crate::logging::init_serve(args.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    rt.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let faults = Faults::default();
    for f in &args.faults {
        faults.add(faults::parse_fault(f).map_err(anyhow::Error::msg)?);
    }
    for l in &args.latency {
        let (t, ms) = faults::parse_latency(l).map_err(anyhow::Error::msg)?;
        faults.add_latency(t, ms);
    }
    let cors = cors::layer(&args.cors_origin)?;
    setup::private_umask();
    setup::prepare_data_dir(&args.data)?;
    let (secret, secret_source) = setup::resolve_secret(
        args.secret_file.as_deref(),
        args.secret.as_ref().map(|s| s.0.as_str()),
        &args.data,
    )?;
    if secret_source == setup::SecretSource::Argv {
        eprintln!(
            "warning: --secret is visible to every local user (ps); use --secret-file or ${}",
            setup::SECRET_ENV
        );
    }
    let feed = (!args.no_delta).then_some(args.delta_history);
    let store = Arc::new(Store::open(&args.data, feed).context("opening the database")?);
    let (sign_key, spaces) = store
        .tx(|c| {
            let key = store::meta_get_or_init(c, "sign_key", || store::random_hex(32))?;
            delta::install(c, feed)?;
            if !args.multi_space {
                store::ensure_space(c, "-")?;
            }
            let mut stmt = c.prepare("SELECT id FROM spaces")?;
            let ids = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<HashSet<_>, _>>()?;
            // Upload tasks outlive tickets, but not forever.
            tasks::delete_expired(c, tasks::expiry_cutoff())?;
            Ok((key, ids))
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    assemble::clean_staging(&store);
    tasks::clean_upload_dirs(&store);
    let tokens = auth::load_tokens(&store).map_err(|e| anyhow::anyhow!("{e}"))?;

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let metrics = match args.metrics_addr {
        Some(a) => {
            let rt = tokio::runtime::Handle::current();
            let handle = crate::obs::install(&rt);
            Some(crate::obs::serve(handle, a, &rt).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        if let Some(m) = metrics {
            writeln!(out, "metrics: http://{m}/metrics")?;
        }
        writeln!(out, "library: {}", args.library)?;
        writeln!(out, "{}", setup::secret_line(&secret, &secret_source))?;
        writeln!(out, "data: {}", args.data.display())?;
        out.flush()?;
    }
    let app = Arc::new(App {
        args,
        secret,
        store,
        faults,
        stats: Stats::default(),
        tokens: Mutex::new(tokens),
        spaces: Mutex::new(spaces),
        sign_key,
        tasks: assemble::Tasks::default(),
        confirming: Mutex::new(HashSet::new()),
        batch_tasks: batch::BatchTasks::default(),
    });
    tokio::spawn(tasks::expire_tasks(app.clone()));
    let api = axum::Router::new()
        .fallback(routes::dispatch)
        .with_state(app)
        .layer(axum::middleware::from_fn(telemetry::observe));
    let router = cors::for_cross_origin(api, cors);
    // Small replies (begin, confirm) must not wait for Nagle.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // Graceful shutdown on SIGTERM/SIGINT: stop accepting, let requests in
    // flight finish, but give up on them after ten seconds.
    let stopping = Arc::new(tokio::sync::Notify::new());
    let stopping2 = stopping.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown_signal().await;
        stopping2.notify_one();
    });
    tokio::select! {
        r = server => r?,
        _ = async {
            stopping.notified().await;
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        } => {
            eprintln!("shutdown: requests still running after 10 s; exiting anyway");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `--part-etag`: how PUT replies compute their `ETag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PartEtag {
    /// `"<md5 hex>"`, as COS answers.
    Md5,
    /// `"<crc64 hex>-<size>"`: no MD5 pass (benchmarks).
    Crc,
}
