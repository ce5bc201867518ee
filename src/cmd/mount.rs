//! `smhfs mount`: checks everything before any mount is attempted (so a bad
//! option fails with one line on stderr and a non-zero exit), detaches
//! (unless `-f`), proves access, mounts, serves until unmounted.
//!
//! Also reached as `smhfs SOURCE MOUNTPOINT -o OPTIONS` (the argv
//! `mount -t fuse.smhfs` and fstab pass; see [`super::fstab`]).

use std::path::PathBuf;
use std::time::Duration;

use super::mountinfo::{check_mountpoint, enter_mount_namespace};
use super::options::MountOptions;
use super::source::{CredentialsFile, Source};

/// What `smhfs mount --help` shows after the arguments: the option table,
/// then escaping, daemon and mount-helper notes.
pub fn after_help() -> String {
    format!(
        "{}\n{MOUNT_NOTES}",
        super::optspec::help_text(super::options::OPTIONS)
    )
}

const MOUNT_NOTES: &str = r#"Escaping: options are split at ',' ; a value may contain ',' as '\,' (or inside double
quotes: credentials="/etc/a,b.cred"), '\\' is a backslash, '\"' a double quote. Only the
first '=' separates key and value, so '=' needs no escape. In /etc/fstab write a space as \040.

Daemon: without -f the command detaches and its exit status tells whether the mount is
live (0) or failed (1, with the reason on stderr). Logs then go to log_file=, else to syslog
(/dev/log, i.e. journald), else to CACHE_DIR/smhfs.log when no syslog socket exists.
umount, fusermount3 -u, SIGTERM and SIGINT unmount and end the daemon; uploads in flight
finish first (unmount_timeout). SIGHUP is logged and ignored. A mount point left dead by a
killed daemon ("Transport endpoint is not connected") is detached automatically at the next
mount if it was smhfs.

As a mount helper (/sbin/mount.fuse.smhfs, `mount -t fuse.smhfs`, /etc/fstab):
  mount.fuse.smhfs SOURCE DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t fuse.smhfs]
  (-f there means a fake mount: check everything, mount nothing.)
"#;

/// `smhfs mount`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = after_help())]
pub struct MountArgs {
    /// `LIBRARY[:SPACE][/PATH]`; SPACE defaults to `-`, PATH mounts a sub-directory.
    pub source: String,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// Mount options, see below.
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Stay in the foreground (do not detach; log to stderr).
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,
    /// Mount helper `-f`: check everything, mount nothing.
    #[arg(long = "fake", hide = true)]
    pub fake: bool,
    /// Mount helper flags: sloppy, no mtab, verbose (accepted, no effect).
    #[arg(short = 's', hide = true)]
    pub sloppy: bool,
    #[arg(short = 'n', hide = true)]
    pub no_mtab: bool,
    #[arg(short = 'v', hide = true)]
    pub verbose: bool,
    /// Mount helper `-N NS`: mount in this mount namespace (a pid or a path).
    #[arg(short = 'N', hide = true)]
    pub namespace: Option<String>,
    /// Mount helper `-t TYPE` (fuse.smhfs).
    #[arg(short = 't', hide = true)]
    pub fstype: Option<String>,
}

/// Runs `smhfs mount`: checks everything, detaches (unless `-f`), proves
/// access, mounts, serves until unmounted. Errors are returned as one line
/// for stderr. With `nofail` a failure is printed and `Ok` returned.
pub fn run(args: MountArgs) -> Result<(), String> {
    let opts = MountOptions::parse(&args.options, args.foreground)?;
    let nofail = opts.nofail;
    match run_opts(args, opts) {
        Err(e) if nofail => {
            eprintln!("smhfs: {e}");
            eprintln!("smhfs: nofail is set: not mounted, exit status 0");
            Ok(())
        }
        r => r,
    }
}

fn run_opts(args: MountArgs, opts: MountOptions) -> Result<(), String> {
    let source = Source::parse(&args.source)?;
    if let Some(t) = args.fstype.as_deref() {
        if t != "fuse.smhfs" && t != "smhfs" {
            return Err(format!(
                "unexpected filesystem type {t:?} (expected fuse.smhfs)"
            ));
        }
    }
    if let Some(ns) = args.namespace.as_deref() {
        enter_mount_namespace(ns)?;
    }
    let creds = CredentialsFile::load(&opts.credentials_file)?;
    let mountpoint = check_mountpoint(&args.mountpoint)?;
    // The daemon runs in `/`: relative paths must not change meaning.
    let mut opts = opts;
    for p in [
        Some(&mut opts.fs.cache_dir),
        opts.log_file.as_mut(),
        opts.pid_file.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        if let Ok(abs) = std::path::absolute(&*p) {
            *p = abs;
        }
    }
    crate::fs::cachedir::prepare(&opts.fs.cache_dir)?;
    if args.fake {
        return Ok(());
    }

    // Fork now, while no thread exists; from here on errors reach the
    // waiting parent through `readiness`.
    let mut readiness = if opts.foreground {
        crate::daemon::Readiness::foreground()
    } else {
        let r =
            crate::daemon::detach_with(opts.nofail).map_err(|e| format!("cannot detach: {e}"))?;
        crate::logging::init(
            opts.debug,
            opts.log_format,
            &crate::logging::LogTarget::detached(opts.log_file.as_deref(), &opts.fs.cache_dir),
        );
        r
    };
    let res = serve(&args, &opts, source, creds, mountpoint, &mut readiness);
    if let Err(e) = &res {
        tracing::error!("{e}");
        readiness.failed(e);
    }
    res
}

fn serve(
    args: &MountArgs,
    opts: &MountOptions,
    source: Source,
    creds: CredentialsFile,
    mountpoint: PathBuf,
    readiness: &mut crate::daemon::Readiness,
) -> Result<(), String> {
    if opts.debug && !readiness.is_detached() {
        super::init_logging(true, opts.log_format);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("smhfs-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    // A hangup (a closed terminal, a stray `kill -HUP`) must not end the mount.
    crate::daemon::log_hangups(rt.handle());

    let cc = opts.client_config(&source, creds)?;
    let client = crate::smh::SmhClient::new(cc.clone()).map_err(|e| e.to_string())?;
    // The access check fails fast: a wrong endpoint should not take a minute.
    let mut quick = cc;
    quick.retry.max_retries = 1;
    quick.request_timeout = Duration::from_secs(15);
    let checker = crate::smh::SmhClient::new(quick).map_err(|e| e.to_string())?;
    let endpoint = crate::smh::redact::redact_url(opts.endpoint()?.as_str());
    rt.block_on(async {
        checker.check_access().await.map_err(|e| {
            format!(
                "cannot access library {} space {} at {endpoint}: {e}",
                source.library, source.space
            )
        })?;
        if !source.path.is_root() {
            match checker.stat(&source.path).await {
                Ok(Some(i)) if i.kind.is_dir() => Ok(()),
                Ok(_) => Err(format!("{} is not a directory in the space", source.path)),
                Err(e) => Err(format!("cannot stat {}: {e}", source.path)),
            }
        } else {
            Ok(())
        }
    })?;

    // Before this point failures are one line on stderr (retry chatter of the
    // access check stays quiet unless `debug`).
    super::init_logging(opts.debug, opts.log_format);
    // Recorded only when asked for (then also in `smhfs status --json`):
    // without a recorder the `metrics` macros cost nothing.
    if let Some(addr) = opts.metrics_addr {
        let metrics = crate::obs::install(rt.handle());
        crate::obs::serve(metrics, addr, rt.handle())?;
    }
    let fs_cfg = opts.fs_config(source.path.clone());
    // One process per journal (checked after the access check, so a wrong
    // endpoint is reported as such).
    let _cache_lock = crate::fs::journal::lock_cache_dir(&opts.fs.cache_dir)?;
    let mut fs = crate::fs::SmhFs::new(client, fs_cfg);
    fs.set_durability(opts.durability());
    let fs = std::sync::Arc::new(fs);
    {
        let fs = std::sync::Arc::downgrade(&fs);
        crate::obs::on_collect(move || {
            if let Some(fs) = fs.upgrade() {
                fs.publish_gauges();
            }
        });
    }
    // Journaled uploads of an earlier run continue in the background.
    fs.start_background(rt.handle());
    {
        let fs = fs.clone();
        rt.spawn(async move { fs.resume_journal(false) });
    }
    let fs_keep = fs.clone();
    let control = match crate::fs::control::serve(fs.clone(), &mountpoint, rt.handle()) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("no status socket (`smhfs status` will not see this mount): {e}");
            None
        }
    };
    let look = fs.config().look;
    let fuse =
        crate::fs::fuse::SmhFuse::new(fs, rt.handle().clone(), look).with_status_xattrs(opts.xattr);
    let mcfg = crate::fs::fuse::MountConfig {
        mountpoint: mountpoint.clone(),
        allow_other: opts.allow_other,
        read_only: opts.fs.read_only,
        threads: 4,
        noexec: opts.noexec,
        fsname: args.source.clone(),
        unmount_timeout: opts.unmount_timeout,
    };
    tracing::info!(
        source = %args.source,
        endpoint = %endpoint,
        conflict = %opts.fs.conflict,
        cache_dir = %opts.fs.cache_dir.display(),
        "mounting"
    );
    let pid_file = opts.pid_file.clone();
    let res = crate::fs::fuse::mount_and_serve(fuse, &mcfg, || {
        if let Some(p) = &pid_file {
            if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
                tracing::warn!("cannot write pid_file {}: {e}", p.display());
            }
        }
        readiness.ready();
    });
    if let Some(p) = &opts.pid_file {
        let _ = std::fs::remove_file(p);
    }
    // The kernel side is gone; finish what the write-back queue holds
    // (what is left stays journaled for the next mount or `smhfs resume`).
    let left = rt.block_on(fs_keep.drain_uploads(opts.unmount_timeout));
    // Only now is "unconfirmed" true of what is left.
    fs_keep.discard_confirmed_staged();
    drop(control);
    if left > 0 {
        tracing::error!(
            left,
            cache_dir = %opts.fs.cache_dir.display(),
            "uploads left unfinished; run `smhfs resume` or mount again to continue them"
        );
    }
    rt.shutdown_timeout(Duration::from_secs(5));
    res.map_err(|e| format!("mount on {} failed: {e}", args.mountpoint.display()))?;
    tracing::info!("unmounted");
    Ok(())
}
