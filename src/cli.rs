//! Mount arguments and `-o` options.
//!
//! `smhfs mount SOURCE MOUNTPOINT [-o OPTIONS] [-f]`, also reached as
//! `smhfs SOURCE MOUNTPOINT -o OPTIONS` (the argv `mount -t fuse.smhfs` and
//! fstab pass). Everything is checked here, before any mount is attempted,
//! so a bad option fails with one line on stderr and a non-zero exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::smh::{ConflictStrategy, Credentials, SmhPath};

const OPTIONS_HELP: &str = r#"Mount options (-o, comma separated, may be repeated):
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
  rw                      read-write mount (the default; ro wins if both are given)
  noexec, exec            passed to the kernel (nodev and nosuid are always set)
  xattr                   show upload progress as read-only extended attributes
                          user.smhfs.status (root) and user.smhfs.upload (a file); off by
                          default because answering getxattr makes `ls -l` ask twice per
                          entry (`smhfs status MOUNTPOINT` needs no xattrs)
  debug                   verbose logging
  foreground              same as -f: stay attached, log to stderr
  log_file=PATH           when detached, log here instead of syslog
  pid_file=PATH           write the daemon's pid here once mounted (removed at exit)
  unmount_timeout=SECS    at unmount or SIGTERM, wait this long for uploads still
                          in flight before exiting (default 300)
  nofail                  a failed mount is reported on stderr but exits 0 (mount -a goes on)
  (also accepted and ignored: defaults, auto, noauto, user, nouser, users, owner, group,
   _netdev, dev, nodev, suid, nosuid, atime, noatime, relatime, sync, async, x-*, comment=*)

Escaping: options are split at ',' ; a value may contain ',' as '\,' (or inside double
quotes: credentials="/etc/a,b.cred"), '\\' is a backslash, '\"' a double quote. Only the
first '=' separates key and value, so '=' needs no escape. In /etc/fstab write a space as \040.

Daemon: without -f the command detaches and its exit status tells whether the mount is
live (0) or failed (1, with the reason on stderr). Logs then go to log_file=, else to syslog
(/dev/log, i.e. journald), else to CACHE_DIR/smhfs.log when no syslog socket exists.
umount, fusermount3 -u, SIGTERM and SIGINT unmount and end the daemon; uploads in flight
finish first (unmount_timeout). A mount point left dead by a killed daemon ("Transport
endpoint is not connected") is detached automatically at the next mount if it was smhfs.

As a mount helper (/sbin/mount.fuse.smhfs, `mount -t fuse.smhfs`, /etc/fstab):
  mount.fuse.smhfs SOURCE DIR [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t fuse.smhfs]
  (-f there means a fake mount: check everything, mount nothing.)
"#;

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
    pub noexec: bool,
    /// `user.smhfs.*` status attributes (see `fs::control` for why not by default).
    pub xattr: bool,
    pub nofail: bool,
    pub log_file: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub unmount_timeout: Duration,
}

/// Options ignored on purpose: mount(8) and fstab pass them to every helper.
/// (`dev`/`suid` too: smhfs always mounts nodev,nosuid; SMH holds no devices
/// or setuid files.)
const IGNORED: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "_netdev",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "atime",
    "noatime",
    "relatime",
    "strictatime",
    "nodiratime",
    "async",
    "sync",
    "loud",
    "silent",
];

/// Splits an `-o` value at unescaped commas. `\,` `\\` `\"` `\=` are escapes;
/// double quotes group (and are removed), as libmount allows `key="a,b"`.
pub fn split_options(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ (',' | '\\' | '"' | '=')) => cur.push(e),
                Some(e) => {
                    return Err(format!(
                        "invalid escape '\\{e}' in options {s:?} (escape only , \\ \" =)"
                    ))
                }
                None => return Err(format!("options {s:?} end with a lone backslash")),
            },
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("unbalanced double quote in options {s:?}"));
    }
    out.push(cur);
    Ok(out)
}

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
        // SAFETY: getuid/getgid take no pointers and always succeed.
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
            noexec: false,
            xattr: false,
            nofail: false,
            log_file: None,
            pid_file: None,
            unmount_timeout: Duration::from_secs(300),
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
        let mut items = Vec::new();
        for o in opts {
            items.extend(split_options(o)?);
        }
        for item in &items {
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
                // mount(8) may add `rw` on its own: `ro` anywhere wins.
                "rw" => {}
                "noexec" => o.noexec = true,
                "xattr" => o.xattr = true,
                "exec" => o.noexec = false,
                "nofail" => o.nofail = true,
                "remount" => {
                    return Err(
                        "remount is not supported: umount the mount point and mount it again"
                            .into(),
                    )
                }
                "log_file" => o.log_file = Some(PathBuf::from(need(k, v)?)),
                "pid_file" => o.pid_file = Some(PathBuf::from(need(k, v)?)),
                "unmount_timeout" => o.unmount_timeout = secs(k, need(k, v)?)?,
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
                k if IGNORED.contains(&k) || k.starts_with("x-") || k == "comment" => {}
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

/// Inserts `mount` into the mount-helper argv. Called as `mount.fuse.smhfs`
/// (argv0 `mount.*`, what mount(8) runs), the helper flags of mount(8) are
/// translated: `-f` means a fake mount there, and `-sfnv` may come bundled.
pub fn normalize_argv(mut argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let helper = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("mount."));
    if helper {
        let mut out: Vec<std::ffi::OsString> = vec![argv[0].clone(), "mount".into()];
        let mut i = 1;
        while i < argv.len() {
            let a = argv[i].to_str().unwrap_or("");
            if matches!(a, "-o" | "-N" | "-t") {
                out.push(argv[i].clone());
                if let Some(v) = argv.get(i + 1) {
                    out.push(v.clone());
                }
                i += 2;
                continue;
            }
            if a.len() >= 2
                && a.starts_with('-')
                && !a.starts_with("--")
                && a[1..].chars().all(|c| "sfnvh".contains(c))
            {
                for c in a[1..].chars() {
                    out.push(if c == 'f' {
                        "--fake".into()
                    } else {
                        format!("-{c}").into()
                    });
                }
            } else {
                out.push(argv[i].clone());
            }
            i += 1;
        }
        return out;
    }
    if let Some(first) = argv.get(1).and_then(|a| a.to_str()) {
        if !first.starts_with('-') && !SUBCOMMANDS.contains(&first) {
            argv.insert(1, "mount".into());
        }
    }
    argv
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
    use std::os::unix::fs::PermissionsExt;

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
        Some(&mut opts.cache_dir),
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
    std::fs::create_dir_all(&opts.cache_dir)
        .and_then(|_| {
            std::fs::set_permissions(&opts.cache_dir, std::fs::Permissions::from_mode(0o700))
        })
        .map_err(|e| format!("cache_dir {}: {e}", opts.cache_dir.display()))?;
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
            &crate::logging::LogTarget::detached(opts.log_file.as_deref(), &opts.cache_dir),
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

/// The mount point must exist, be a directory and not be mounted on yet. A
/// dead smhfs mount left by a killed daemon (ENOTCONN) is detached first.
fn check_mountpoint(dir: &Path) -> Result<PathBuf, String> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("mount point {shown} is not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("mount point {shown} does not exist"))
        }
        // ENOTCONN; ECONNABORTED right after the daemon died.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTCONN | libc::ECONNABORTED)) => {
            // The path cannot be canonicalized through a dead mount: use it
            // as given, made absolute.
            let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            let fstype = mount_at(&abs).unwrap_or_default();
            if fstype != "fuse.smhfs" {
                return Err(format!(
                    "mount point {shown} is a dead FUSE mount ({fstype}: transport endpoint is \
                     not connected); run: fusermount3 -u {shown}"
                ));
            }
            lazy_detach(&abs).map_err(|e| {
                format!(
                    "mount point {shown} is a dead smhfs mount (its daemon died) and detaching \
                     it failed ({e}); run: fusermount3 -u {shown}"
                )
            })?;
            eprintln!("smhfs: {shown} was a dead smhfs mount (its daemon died); detached it");
            return check_mountpoint(dir);
        }
        Err(e) => return Err(format!("mount point {shown}: {e}")),
    }
    // Absolute, so unmounting works whatever the working directory becomes.
    let abs = std::fs::canonicalize(dir).map_err(|e| format!("mount point {shown}: {e}"))?;
    if let Some(t) = mount_at(&abs) {
        return Err(format!(
            "mount point {shown} is busy: already mounted ({t}); unmount it first"
        ));
    }
    Ok(abs)
}

/// The type of the topmost mount whose mount point is exactly `dir`.
pub fn mount_at(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = dir.to_str()?;
    let mut found = None;
    for l in info.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.len() > 4 && unescape_mountinfo(f[4]) == want {
            found = f.get(sep + 1).map(|t| t.to_string());
        }
    }
    found
}

/// mountinfo writes space, tab, newline and backslash as `\\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn lazy_detach(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    // Not root: fusermount3 may still detach our own mount.
    let ok = std::process::Command::new("fusermount3")
        .arg("-uz")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(err)
    }
}

/// mount(8)'s `-N NS`: a pid or a path to a mount namespace file.
fn enter_mount_namespace(ns: &str) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let path = if ns.chars().all(|c| c.is_ascii_digit()) {
        format!("/proc/{ns}/ns/mnt")
    } else {
        ns.to_string()
    };
    let f = std::fs::File::open(&path).map_err(|e| format!("namespace {path}: {e}"))?;
    // SAFETY: setns takes an fd we own (open for the call) and no pointers;
    // still single-threaded here, as a mount namespace switch requires.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNS) } != 0 {
        return Err(format!(
            "cannot enter namespace {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
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
        init_logging(true);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name("smhfs-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;

    let cc = client_config(opts, &source, creds);
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
    let fs_cfg = fs_config(opts, &source);
    // One process per journal (checked after the access check, so a wrong
    // endpoint is reported as such).
    let _cache_lock = crate::fs::journal::lock_cache_dir(&opts.cache_dir)?;
    let mut fs = crate::fs::SmhFs::new(client, fs_cfg);
    fs.set_durability(durability_options(opts));
    let fs = std::sync::Arc::new(fs);
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
    let fuse = crate::fs::fuse::SmhFuse::new(
        fs,
        rt.handle().clone(),
        crate::fs::fuse::Presentation {
            uid: opts.uid,
            gid: opts.gid,
            umask: opts.umask,
        },
    )
    .with_status_xattrs(opts.xattr);
    let mcfg = crate::fs::fuse::MountConfig {
        mountpoint: mountpoint.clone(),
        allow_other: opts.allow_other,
        read_only: opts.read_only,
        threads: 4,
        noexec: opts.noexec,
        fsname: args.source.clone(),
        unmount_timeout: opts.unmount_timeout,
    };
    tracing::info!(
        source = %args.source,
        endpoint = %endpoint,
        conflict = %opts.conflict,
        cache_dir = %opts.cache_dir.display(),
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
    drop(control);
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

/// The client for a mount (and for `smhfs resume` of its journal).
fn client_config(
    opts: &MountOptions,
    source: &Source,
    creds: CredentialsFile,
) -> crate::smh::ClientConfig {
    let mut cc = crate::smh::ClientConfig::new(
        opts.endpoint.clone(),
        &source.library,
        &source.space,
        creds.credentials,
    );
    cc.user_id = creds.user_id;
    cc
}

/// The filesystem core's settings from the mount options.
fn fs_config(opts: &MountOptions, source: &Source) -> crate::fs::FsConfig {
    crate::fs::FsConfig {
        root: source.path.clone(),
        conflict: opts.conflict,
        cache_dir: opts.cache_dir.clone(),
        read_only: opts.read_only,
        attr_timeout: opts.attr_timeout,
        dir_timeout: opts.dir_timeout,
        part_size: opts.part_size,
        upload_concurrency: opts.upload_concurrency,
        permanent_delete: opts.permanent_delete,
    }
}

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
    let client = crate::smh::SmhClient::new(client_config(&opts, &source, creds))
        .map_err(|e| e.to_string())?;
    // Resuming uploads needs write access whatever the mount used.
    let fs_cfg = crate::fs::FsConfig {
        read_only: false,
        ..fs_config(&opts, &source)
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
    crate::logging::init(debug, &crate::logging::LogTarget::Stderr);
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
    fn option_escaping() {
        let v = |s: &str| split_options(s).unwrap();
        assert_eq!(v("a,b=c"), ["a", "b=c"]);
        assert_eq!(
            v(r"credentials=/etc/a\,b.cred,ro"),
            ["credentials=/etc/a,b.cred", "ro"]
        );
        assert_eq!(v(r#"k="x,y=z",ro"#), ["k=x,y=z", "ro"]);
        assert_eq!(v(r#"k=a\\b\=c\"d"#), [r#"k=a\b=c"d"#]);
        assert_eq!(v("k=a=b"), ["k=a=b"]);
        assert!(split_options(r"k=a\x").unwrap_err().contains("escape"));
        assert!(split_options(r"k=a\").is_err());
        assert!(split_options(r#"k="open"#).is_err());
        let o = opts(r"endpoint=http://h,credentials=/c\,d,cache_dir=/x\,y").unwrap();
        assert_eq!(o.credentials_file, PathBuf::from("/c,d"));
        assert_eq!(o.cache_dir, PathBuf::from("/x,y"));
    }

    #[test]
    fn fstab_and_lifecycle_options() {
        let o = opts("endpoint=http://h,credentials=/c").unwrap();
        assert_eq!(o.unmount_timeout, Duration::from_secs(300));
        assert!(!o.read_only && !o.noexec && !o.nofail);
        let o = opts("endpoint=http://h,credentials=/c,ro,rw,noexec,nofail,unmount_timeout=7,log_file=/l,pid_file=/p,_netdev,x-systemd.automount,x-systemd.requires=network-online.target,comment=x,users,defaults,nosuid,nodev,suid,dev,auto,noauto,sync")
            .unwrap();
        assert!(o.read_only, "ro wins over rw");
        assert!(o.noexec && o.nofail);
        assert_eq!(o.unmount_timeout, Duration::from_secs(7));
        assert_eq!(o.log_file.as_deref(), Some(Path::new("/l")));
        assert_eq!(o.pid_file.as_deref(), Some(Path::new("/p")));
        assert!(
            opts("endpoint=http://h,credentials=/c,rw,ro")
                .unwrap()
                .read_only
        );
        assert!(opts("endpoint=http://h,credentials=/c,unmount_timeout=x").is_err());
        assert!(opts("endpoint=http://h,credentials=/c,remount,ro")
            .unwrap_err()
            .contains("remount is not supported"));
    }

    #[test]
    fn mount_helper_argv() {
        let v = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(
            normalize_argv(v(&[
                "/sbin/mount.fuse.smhfs",
                "l:-/p",
                "/mnt",
                "-sfnv",
                "-o",
                "a,-f",
                "-t",
                "fuse.smhfs"
            ])),
            v(&[
                "/sbin/mount.fuse.smhfs",
                "mount",
                "l:-/p",
                "/mnt",
                "-s",
                "--fake",
                "-n",
                "-v",
                "-o",
                "a,-f",
                "-t",
                "fuse.smhfs"
            ])
        );
        assert_eq!(
            normalize_argv(v(&[
                "mount.fuse.smhfs",
                "l",
                "/mnt",
                "-N",
                "123",
                "-o",
                "x"
            ])),
            v(&[
                "mount.fuse.smhfs",
                "mount",
                "l",
                "/mnt",
                "-N",
                "123",
                "-o",
                "x"
            ])
        );
        // Parses with clap as `smhfs mount`.
        #[derive(clap::Parser)]
        struct T {
            #[command(flatten)]
            m: MountArgs,
        }
        use clap::Parser;
        let argv = normalize_argv(v(&[
            "mount.fuse.smhfs",
            "l",
            "/mnt",
            "-f",
            "-o",
            "x",
            "-t",
            "fuse.smhfs",
        ]));
        let t = T::try_parse_from(argv.into_iter().skip(1)).unwrap();
        assert!(t.m.fake && !t.m.foreground);
        assert_eq!(t.m.fstype.as_deref(), Some("fuse.smhfs"));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo(r"/mnt/x\134y"), r"/mnt/x\y");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(mount_at(Path::new("/proc")).as_deref(), Some("proc"));
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
