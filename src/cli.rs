//! Mount arguments and `-o` options.
//!
//! `smhfs mount SOURCE MOUNTPOINT [-o OPTIONS] [-f]`, also reached as
//! `smhfs SOURCE MOUNTPOINT -o OPTIONS` (the argv `mount -t fuse.smhfs` and
//! fstab pass). Everything is checked here, before any mount is attempted,
//! so a bad option fails with one line on stderr and a non-zero exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::smh::{ConflictStrategy, Credentials, SmhPath};

const OPTIONS_HELP: &str = "\
Mount options (-o, comma separated, may be repeated):
  endpoint=URL            SMH API endpoint (required), e.g. https://LIB.api.tencentsmh.cn
  credentials=FILE        key=value file: library_secret= or access_token=, optional user_id=;
                          '#' starts a comment; must not be group/world readable (required)
  conflict=MODE           overwrite (default): close() replaces an existing file;
                          rename: keep both, the new content gets a free name 'a (1).txt';
                          ask: never replace; uploads onto an existing name fail with EEXIST and
                          opening an existing file for writing fails with EEXIST.
                          rename(2) follows the same mode.
  cache_dir=DIR           staged (written) files live here; created with mode 0700
                          (default: $XDG_CACHE_HOME/smhfs, else $HOME/.cache/smhfs,
                          else /var/cache/smhfs)
  uid=N, gid=N            owner shown for every entry (default: the mounting user)
  umask=OCTAL             mask applied to 0755 (dirs) and 0644 (files) (default 022)
  allow_other             let other users access the mount
  ro                      read-only mount
  attr_timeout=SECS       how long attributes are cached (default 1)
  dir_timeout=SECS        how long directory listings are cached (default 5)
  part_size=BYTES         upload part size, suffixes K, M, G (default 8M)
  upload_concurrency=N    part uploads in flight per file (default 4)
  permanent_delete        delete for good instead of moving to the recycle bin
  write_back[=DELAY]      close() returns once the data is staged and journaled in cache_dir;
                          the upload runs in the background DELAY seconds later (default 0),
                          retried until it succeeds; unmount waits for the queue
  cache_size=BYTES        bound on staged bytes in cache_dir (suffixes K, M, G; default
                          min(50% of the free space under cache_dir, 10G)); writers past it
                          wait up to cache_wait for uploads to free room, then get ENOSPC
  cache_wait=SECS         see cache_size (default 30)
  debug                   verbose logging to stderr
  foreground              same as -f (smhfs always stays in the foreground for now)
  (also accepted and ignored: rw, defaults, auto, noauto, user, nouser, _netdev, nofail, dev,
   nodev, suid, nosuid, exec, noexec, atime, noatime, x-systemd.*)
";

/// `smhfs mount`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = OPTIONS_HELP)]
pub struct MountArgs {
    /// `LIBRARY[:SPACE][/PATH]`; SPACE defaults to `-`, PATH mounts a sub-directory.
    pub source: String,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// Mount options, see below.
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Stay in the foreground (the only mode for now).
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,
}

/// `LIBRARY[:SPACE][/PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub library: String,
    pub space: String,
    pub path: SmhPath,
}

impl Source {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (head, path) = match s.split_once('/') {
            Some((h, p)) => (h, p),
            None => (s, ""),
        };
        let (library, space) = match head.split_once(':') {
            Some((l, sp)) => (l, sp),
            None => (head, "-"),
        };
        let ok = |v: &str| {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        };
        if !ok(library) {
            return Err(format!(
                "invalid source {s:?}: expected LIBRARY[:SPACE][/PATH]"
            ));
        }
        if !ok(space) {
            return Err(format!("invalid space in source {s:?}"));
        }
        let path =
            SmhPath::parse(path).map_err(|e| format!("invalid path in source {s:?}: {e}"))?;
        Ok(Self {
            library: library.to_string(),
            space: space.to_string(),
            path,
        })
    }
}

/// Parsed `-o` options with their defaults.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub endpoint: url::Url,
    pub credentials_file: PathBuf,
    pub conflict: ConflictStrategy,
    pub cache_dir: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
    pub allow_other: bool,
    pub read_only: bool,
    pub attr_timeout: Duration,
    pub dir_timeout: Duration,
    pub part_size: u64,
    pub upload_concurrency: usize,
    pub permanent_delete: bool,
    pub debug: bool,
    pub foreground: bool,
    /// `Some(delay)` with `write_back[=DELAY]`.
    pub write_back: Option<Duration>,
    /// `None`: the default fraction of free space (decided at mount).
    pub cache_size: Option<u64>,
    pub cache_wait: Duration,
}

/// Options ignored on purpose: mount(8) and fstab pass them to every helper.
const IGNORED: &[&str] = &[
    "rw", "defaults", "auto", "noauto", "user", "nouser", "users", "_netdev", "nofail", "dev",
    "nodev", "suid", "nosuid", "exec", "noexec", "atime", "noatime", "relatime", "async",
];

fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("smhfs");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".cache").join("smhfs");
    }
    PathBuf::from("/var/cache/smhfs")
}

/// `8M`, `512K`, `1G`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'B' => 1,
                _ => return Err(format!("invalid size {s:?}")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

impl MountOptions {
    /// Parses the `-o` values (each may hold several comma-separated options).
    pub fn parse(opts: &[String], foreground: bool) -> Result<Self, String> {
        let mut endpoint = None;
        let mut credentials_file = None;
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut o = MountOptions {
            endpoint: url::Url::parse("http://invalid/").map_err(|e| e.to_string())?,
            credentials_file: PathBuf::new(),
            conflict: ConflictStrategy::Overwrite,
            cache_dir: default_cache_dir(),
            uid,
            gid,
            umask: 0o022,
            allow_other: false,
            read_only: false,
            attr_timeout: Duration::from_secs(1),
            dir_timeout: Duration::from_secs(5),
            part_size: 8 << 20,
            upload_concurrency: 4,
            permanent_delete: false,
            debug: false,
            foreground,
            write_back: None,
            cache_size: None,
            cache_wait: Duration::from_secs(30),
        };
        let secs = |k: &str, v: &str| -> Result<Duration, String> {
            let f: f64 = v
                .parse()
                .map_err(|_| format!("invalid value for {k}: {v:?}"))?;
            if !(0.0..=86400.0 * 365.0).contains(&f) {
                return Err(format!("invalid value for {k}: {v:?}"));
            }
            Ok(Duration::from_secs_f64(f))
        };
        let int = |k: &str, v: &str| -> Result<u32, String> {
            v.parse()
                .map_err(|_| format!("invalid value for {k}: {v:?}"))
        };
        for item in opts.iter().flat_map(|s| s.split(',')) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (k, v) = match item.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (item, None),
            };
            fn need<'a>(k: &str, v: Option<&'a str>) -> Result<&'a str, String> {
                v.ok_or_else(|| format!("option {k} needs a value"))
            }
            match k {
                "endpoint" => {
                    let v = need(k, v)?;
                    let u =
                        url::Url::parse(v).map_err(|e| format!("invalid endpoint {v:?}: {e}"))?;
                    if u.scheme() != "http" && u.scheme() != "https" {
                        return Err(format!("invalid endpoint {v:?}: expected http(s)://"));
                    }
                    endpoint = Some(u);
                }
                "credentials" => credentials_file = Some(PathBuf::from(need(k, v)?)),
                "conflict" => o.conflict = need(k, v)?.parse()?,
                "cache_dir" => o.cache_dir = PathBuf::from(need(k, v)?),
                "uid" => o.uid = int(k, need(k, v)?)?,
                "gid" => o.gid = int(k, need(k, v)?)?,
                "umask" => {
                    let v = need(k, v)?;
                    o.umask = u32::from_str_radix(v, 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| format!("invalid umask {v:?} (octal, e.g. 022)"))?;
                }
                "allow_other" => o.allow_other = true,
                "ro" => o.read_only = true,
                "attr_timeout" => o.attr_timeout = secs(k, need(k, v)?)?,
                "dir_timeout" => o.dir_timeout = secs(k, need(k, v)?)?,
                "part_size" => {
                    let s = parse_size(need(k, v)?)?;
                    if !(1 << 20..=5 << 30).contains(&s) {
                        return Err(format!("part_size must be between 1M and 5G, got {s}"));
                    }
                    o.part_size = s;
                }
                "upload_concurrency" => {
                    let n = int(k, need(k, v)?)?;
                    if !(1..=64).contains(&n) {
                        return Err(format!("upload_concurrency must be 1..64, got {n}"));
                    }
                    o.upload_concurrency = n as usize;
                }
                "permanent_delete" => o.permanent_delete = true,
                "write_back" => {
                    o.write_back = Some(match v {
                        Some(v) => secs(k, v)?,
                        None => Duration::ZERO,
                    })
                }
                "cache_size" => o.cache_size = Some(parse_size(need(k, v)?)?),
                "cache_wait" => o.cache_wait = secs(k, need(k, v)?)?,
                "debug" => o.debug = true,
                "foreground" => o.foreground = true,
                k if IGNORED.contains(&k)
                    || k.starts_with("x-systemd.")
                    || k.starts_with("comment=") => {}
                _ => return Err(format!("unknown mount option {k:?} (see --help)")),
            }
        }
        o.endpoint = endpoint.ok_or("missing required option endpoint=URL")?;
        o.credentials_file = credentials_file.ok_or("missing required option credentials=FILE")?;
        Ok(o)
    }
}

/// What the credentials file holds.
#[derive(Debug, Clone)]
pub struct CredentialsFile {
    pub credentials: Credentials,
    pub user_id: Option<String>,
}

impl CredentialsFile {
    /// Reads the file, refusing it when others could read the secret.
    pub fn load(path: &Path) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "credentials file {} is readable by group or others; run: chmod 600 {}",
                path.display(),
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("credentials file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut secret = None;
        let mut token = None;
        let mut user_id = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("line {}: expected key=value", n + 1));
            };
            let (k, v) = (k.trim(), v.trim().to_string());
            if v.is_empty() {
                return Err(format!("line {}: empty value for {k}", n + 1));
            }
            match k {
                "library_secret" => secret = Some(v),
                "access_token" => token = Some(v),
                "user_id" => user_id = Some(v),
                _ => return Err(format!("line {}: unknown key {k:?}", n + 1)),
            }
        }
        let credentials = match (secret, token) {
            (Some(s), None) => Credentials::LibrarySecret(s),
            (None, Some(t)) => Credentials::AccessToken(t),
            (Some(_), Some(_)) => {
                return Err("give library_secret or access_token, not both".into())
            }
            (None, None) => return Err("no library_secret= or access_token= line".into()),
        };
        Ok(Self {
            credentials,
            user_id,
        })
    }
}

/// Subcommands `main` knows; any other first argument that is not a flag
/// means the mount-helper form `smhfs SOURCE MOUNTPOINT -o ...`.
pub const SUBCOMMANDS: &[&str] = &["mount", "serve", "help", "status", "resume"];

/// Inserts `mount` into the mount-helper argv.
pub fn normalize_argv(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if let Some(first) = argv.get(1).and_then(|a| a.to_str()) {
        if !first.starts_with('-') && !SUBCOMMANDS.contains(&first) {
            argv.insert(1, "mount".into());
        }
    }
    argv
}

/// Runs `smhfs mount`: checks everything, proves access, mounts, serves
/// until unmounted. Errors are returned as one line for stderr.
pub fn run(args: MountArgs) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;

    let opts = MountOptions::parse(&args.options, args.foreground)?;
    let source = Source::parse(&args.source)?;
    if opts.debug {
        init_logging(true);
    }
    let creds = CredentialsFile::load(&opts.credentials_file)?;
    if !args.mountpoint.is_dir() {
        return Err(format!(
            "mount point {} is not a directory",
            args.mountpoint.display()
        ));
    }
    // Absolute, so unmounting works whatever the working directory becomes.
    let mountpoint = std::fs::canonicalize(&args.mountpoint)
        .map_err(|e| format!("mount point {}: {e}", args.mountpoint.display()))?;
    std::fs::create_dir_all(&opts.cache_dir)
        .and_then(|_| {
            std::fs::set_permissions(&opts.cache_dir, std::fs::Permissions::from_mode(0o700))
        })
        .map_err(|e| format!("cache_dir {}: {e}", opts.cache_dir.display()))?;
    let _cache_lock = crate::fs::journal::lock_cache_dir(&opts.cache_dir)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("smhfs-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;

    let mut cc = crate::smh::ClientConfig::new(
        opts.endpoint.clone(),
        &source.library,
        &source.space,
        creds.credentials,
    );
    cc.user_id = creds.user_id;
    let client = crate::smh::SmhClient::new(cc.clone()).map_err(|e| e.to_string())?;
    // The access check fails fast: a wrong endpoint should not take a minute.
    let mut quick = cc;
    quick.retry.max_retries = 1;
    quick.request_timeout = Duration::from_secs(15);
    let checker = crate::smh::SmhClient::new(quick).map_err(|e| e.to_string())?;
    let endpoint = crate::smh::redact::redact_url(opts.endpoint.as_str());
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
    init_logging(opts.debug);
    let fs_cfg = crate::fs::FsConfig {
        root: source.path.clone(),
        conflict: opts.conflict,
        cache_dir: opts.cache_dir.clone(),
        read_only: opts.read_only,
        attr_timeout: opts.attr_timeout,
        dir_timeout: opts.dir_timeout,
        part_size: opts.part_size,
        upload_concurrency: opts.upload_concurrency,
        permanent_delete: opts.permanent_delete,
    };
    let mut fs = crate::fs::SmhFs::new(client, fs_cfg);
    fs.set_durability(durability_options(&opts));
    let fs = std::sync::Arc::new(fs);
    // Journaled uploads of an earlier run continue in the background.
    fs.start_background(rt.handle());
    {
        let fs = fs.clone();
        rt.spawn(async move { fs.resume_journal(false) });
    }
    let fs_keep = fs.clone();
    let fuse = crate::fs::fuse::SmhFuse::new(
        fs,
        rt.handle().clone(),
        crate::fs::fuse::Presentation {
            uid: opts.uid,
            gid: opts.gid,
            umask: opts.umask,
        },
    );
    let mcfg = crate::fs::fuse::MountConfig {
        mountpoint,
        allow_other: opts.allow_other,
        read_only: opts.read_only,
        threads: 4,
    };
    tracing::info!(
        source = %args.source,
        endpoint = %endpoint,
        conflict = %opts.conflict,
        cache_dir = %opts.cache_dir.display(),
        "mounting"
    );
    let res = crate::fs::fuse::mount_and_serve(fuse, &mcfg);
    // The kernel side is gone; finish what the write-back queue holds.
    let left = rt.block_on(fs_keep.drain_uploads(UPLOAD_DRAIN_TIMEOUT));
    if left > 0 {
        tracing::error!(
            left,
            cache_dir = %opts.cache_dir.display(),
            "uploads left unfinished; run `smhfs resume` or mount again to continue them"
        );
    }
    rt.shutdown_timeout(Duration::from_secs(5));
    res.map_err(|e| format!("mount on {} failed: {e}", args.mountpoint.display()))?;
    tracing::info!("unmounted");
    Ok(())
}

/// How long unmount waits for background uploads.
const UPLOAD_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

fn durability_options(opts: &MountOptions) -> crate::fs::writeback::DurabilityOptions {
    crate::fs::writeback::DurabilityOptions {
        write_back: opts.write_back,
        cache_size: opts
            .cache_size
            .unwrap_or_else(|| crate::fs::writeback::default_cache_size(&opts.cache_dir)),
        cache_wait: opts.cache_wait,
        jobs: 4,
    }
}

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
    init_logging(opts.debug);
    let creds = CredentialsFile::load(&opts.credentials_file)?;
    let _cache_lock = crate::fs::journal::lock_cache_dir(&opts.cache_dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    let mut cc = crate::smh::ClientConfig::new(
        opts.endpoint.clone(),
        &source.library,
        &source.space,
        creds.credentials,
    );
    cc.user_id = creds.user_id;
    let client = crate::smh::SmhClient::new(cc).map_err(|e| e.to_string())?;
    let fs_cfg = crate::fs::FsConfig {
        root: source.path.clone(),
        conflict: opts.conflict,
        cache_dir: opts.cache_dir.clone(),
        read_only: false,
        attr_timeout: opts.attr_timeout,
        dir_timeout: opts.dir_timeout,
        part_size: opts.part_size,
        upload_concurrency: opts.upload_concurrency,
        permanent_delete: opts.permanent_delete,
    };
    let mut fs = crate::fs::SmhFs::new(client, fs_cfg);
    let mut d = durability_options(&opts);
    d.write_back = Some(Duration::ZERO);
    fs.set_durability(d);
    let fs = std::sync::Arc::new(fs);
    let before = crate::fs::writeback::journal_status(&opts.cache_dir).len();
    eprintln!(
        "smhfs: resuming {before} journaled upload(s) from {}",
        opts.cache_dir.display()
    );
    fs.start_background(rt.handle());
    fs.resume_journal(args.retry_failed);
    let left = rt.block_on(fs.drain_uploads(Duration::from_secs(args.timeout)));
    let after = crate::fs::writeback::journal_status(&opts.cache_dir);
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

fn init_logging(debug: bool) {
    let default = if debug {
        "smhfs=debug,info"
    } else {
        "smhfs=info,warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> Result<MountOptions, String> {
        MountOptions::parse(&[s.to_string()], false)
    }

    #[test]
    fn source_forms() {
        let s = Source::parse("lib").unwrap();
        assert_eq!((s.library.as_str(), s.space.as_str()), ("lib", "-"));
        assert!(s.path.is_root());
        let s = Source::parse("lib:sp1/a/b").unwrap();
        assert_eq!(s.space, "sp1");
        assert_eq!(s.path.to_string(), "a/b");
        assert!(Source::parse("").is_err());
        assert!(Source::parse(":x").is_err());
        assert!(Source::parse("lib:").is_err());
        assert!(Source::parse("lib/a/../b").is_err());
    }

    #[test]
    fn options_defaults_and_values() {
        let o = opts("endpoint=http://127.0.0.1:1,credentials=/c").unwrap();
        assert_eq!(o.conflict, ConflictStrategy::Overwrite);
        assert_eq!(o.attr_timeout, Duration::from_secs(1));
        assert_eq!(o.dir_timeout, Duration::from_secs(5));
        assert_eq!(o.umask, 0o022);
        let o = opts("endpoint=http://h,credentials=/c,conflict=ask,uid=5,gid=6,umask=077,ro,allow_other,part_size=16M,upload_concurrency=2,attr_timeout=0.5,permanent_delete,debug,rw,nodev,_netdev")
            .unwrap();
        assert_eq!(o.conflict, ConflictStrategy::Ask);
        assert_eq!((o.uid, o.gid, o.umask), (5, 6, 0o077));
        assert!(o.read_only && o.allow_other && o.permanent_delete && o.debug);
        assert_eq!(o.part_size, 16 << 20);
        assert_eq!(o.upload_concurrency, 2);
        assert_eq!(o.attr_timeout, Duration::from_millis(500));
    }

    #[test]
    fn options_errors() {
        assert!(opts("credentials=/c").unwrap_err().contains("endpoint"));
        assert!(opts("endpoint=http://h")
            .unwrap_err()
            .contains("credentials"));
        assert!(opts("endpoint=http://h,credentials=/c,bogus")
            .unwrap_err()
            .contains("bogus"));
        assert!(opts("endpoint=ftp://h,credentials=/c").is_err());
        assert!(opts("endpoint=http://h,credentials=/c,conflict=maybe").is_err());
        assert!(opts("endpoint=http://h,credentials=/c,umask=999").is_err());
        assert!(opts("endpoint=http://h,credentials=/c,part_size=1K").is_err());
        assert!(opts("endpoint=http://h,credentials=/c,uid").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8M").unwrap(), 8 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("M").is_err());
        assert!(parse_size("8X").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn credentials_file() {
        let c = CredentialsFile::parse("# c\nlibrary_secret = s3\nuser_id=bob\n").unwrap();
        assert!(matches!(c.credentials, Credentials::LibrarySecret(ref s) if s == "s3"));
        assert_eq!(c.user_id.as_deref(), Some("bob"));
        let c = CredentialsFile::parse("access_token=t").unwrap();
        assert!(matches!(c.credentials, Credentials::AccessToken(_)));
        assert!(CredentialsFile::parse("").is_err());
        assert!(CredentialsFile::parse("garbage").is_err());
        assert!(CredentialsFile::parse("library_secret=a\naccess_token=b").is_err());
        assert!(CredentialsFile::parse("color=blue").is_err());
    }

    #[test]
    fn credentials_file_mode_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        std::fs::write(&p, "library_secret=x\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(CredentialsFile::load(&p).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(CredentialsFile::load(&p).is_ok());
    }

    #[test]
    fn helper_argv() {
        let v = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(
            normalize_argv(v(&["smhfs", "lib", "/mnt", "-o", "x"])),
            v(&["smhfs", "mount", "lib", "/mnt", "-o", "x"])
        );
        assert_eq!(
            normalize_argv(v(&["smhfs", "serve"])),
            v(&["smhfs", "serve"])
        );
        assert_eq!(
            normalize_argv(v(&["smhfs", "--help"])),
            v(&["smhfs", "--help"])
        );
    }
}
