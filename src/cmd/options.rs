//! THE mount option table: every `-o` option is declared once in
//! [`OPTIONS`] (name, value form, default, scope, help, setter). The
//! `smhfs mount --help` text, the parser, the defaults of [`MountOptions`]
//! and the configs of the filesystem ([`FsConfig`], [`DurabilityOptions`])
//! all come from it; a unit test checks that the README lists the same names.

use std::path::PathBuf;
use std::time::Duration;

use super::fstab::split_options;
use super::optspec::{int, parse_size, path, secs, DefaultIs, Form, Invalid, OptionSpec, Scope};
use super::source::{CredentialsFile, Source};
use crate::fs::writeback::DurabilityOptions;
use crate::fs::FsConfig;
use crate::smh::{ConflictStrategy, SmhPath};

/// Files the write-back queue uploads at once (fixed, not an option; each
/// with up to `upload_concurrency` parts in flight).
pub const UPLOAD_JOBS: usize = 4;

/// Parsed `-o` options (the table's defaults where not given).
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// Required: `parse` fails without it.
    endpoint: Option<url::Url>,
    /// Required: `parse` fails without it.
    pub credentials_file: PathBuf,
    /// The core's settings (`conflict`, `cache_dir`, `ro`, timeouts, part
    /// shape, `permanent_delete`); its `root` is set by [`Self::fs_config`].
    pub fs: FsConfig,
    pub uid: u32,
    pub gid: u32,
    pub umask: u32,
    /// `umask` was given: it then also masks the modes of new entries.
    pub umask_given: bool,
    pub allow_other: bool,
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
    pub log_format: crate::logging::LogFormat,
    /// Where Prometheus scrapes the daemon's metrics (off by default).
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub pid_file: Option<PathBuf>,
    pub unmount_timeout: Duration,
}

fn endpoint(v: &str) -> Result<url::Url, Invalid> {
    let u = url::Url::parse(v).map_err(|e| format!("invalid endpoint {v:?}: {e}"))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!("invalid endpoint {v:?}: expected http(s)://").into());
    }
    Ok(u)
}

fn log_format(v: &str) -> Result<crate::logging::LogFormat, Invalid> {
    Ok(v.parse()?)
}

fn metrics_addr(v: &str) -> Result<std::net::SocketAddr, Invalid> {
    Ok(crate::obs::parse_addr(v)?)
}

fn default_cache_dir(o: &mut MountOptions) {
    let var = |k| std::env::var_os(k).filter(|v| !v.is_empty());
    o.fs.cache_dir = if let Some(x) = var("XDG_CACHE_HOME") {
        PathBuf::from(x).join("smhfs")
    } else if let Some(h) = var("HOME") {
        PathBuf::from(h).join(".cache").join("smhfs")
    } else {
        PathBuf::from("/var/cache/smhfs")
    };
}

fn mounting_uid(o: &mut MountOptions) {
    // SAFETY: getuid takes no pointers and always succeeds.
    o.uid = unsafe { libc::getuid() };
}

fn mounting_gid(o: &mut MountOptions) {
    // SAFETY: getgid takes no pointers and always succeeds.
    o.gid = unsafe { libc::getgid() };
}

const fn mount(
    name: &'static str,
    form: Form<MountOptions>,
    default: DefaultIs<MountOptions>,
    help: &'static str,
) -> OptionSpec<MountOptions> {
    OptionSpec {
        name,
        form,
        default,
        scope: Scope::Mount,
        help,
    }
}

const fn fstab(
    name: &'static str,
    form: Form<MountOptions>,
    help: &'static str,
) -> OptionSpec<MountOptions> {
    OptionSpec {
        name,
        form,
        default: DefaultIs::None,
        scope: Scope::Fstab,
        help,
    }
}

const fn ignored(name: &'static str, help: &'static str) -> OptionSpec<MountOptions> {
    OptionSpec {
        name,
        form: Form::Any,
        default: DefaultIs::None,
        scope: Scope::Ignored,
        help,
    }
}

/// A setter storing `PARSE(value)` (or `Some(PARSE(value))`) in a field.
macro_rules! store {
    ($($field:ident).+ = Some($parse:expr)) => {
        |o, v| {
            o.$($field).+ = Some($parse(v)?);
            Ok(())
        }
    };
    ($($field:ident).+ = $parse:expr) => {
        |o, v| {
            o.$($field).+ = $parse(v)?;
            Ok(())
        }
    };
}

/// Every mount option, in `--help` order.
pub static OPTIONS: &[OptionSpec<MountOptions>] = &[
    mount(
        "endpoint",
        Form::Value("URL", store!(endpoint = Some(endpoint))),
        DefaultIs::Required,
        "SMH API endpoint, e.g. https://LIB.api.tencentsmh.cn",
    ),
    mount(
        "credentials",
        Form::Value("FILE", store!(credentials_file = path)),
        DefaultIs::Required,
        "key=value file: library_secret= or access_token=, optional user_id=;\n\
         '#' starts a comment; must not be group/world readable",
    ),
    mount(
        "conflict",
        Form::Value("MODE", |o, v| {
            o.fs.conflict = v.parse::<ConflictStrategy>()?;
            Ok(())
        }),
        DefaultIs::Value("overwrite"),
        "overwrite: close() replaces an existing file;\n\
         rename: keep both, the new content gets a free name 'a (1).txt';\n\
         ask: never replace; uploads onto an existing name fail with EEXIST and\n\
         opening an existing file for writing fails with EEXIST.\n\
         rename(2) follows the same mode.",
    ),
    mount(
        "update_conflict",
        Form::Value("MODE", |o, v| {
            o.fs.update_conflict = v.parse()?;
            Ok(())
        }),
        DefaultIs::Value("copy"),
        "a file replaced on the server while open here for writing:\n\
         copy: keep both, ours is stored as 'name (conflict DATE TIME).ext';\n\
         fail: close()/fsync() fail with ESTALE, the data stays in cache_dir;\n\
         overwrite: last writer wins",
    ),
    mount(
        "cache_dir",
        Form::Value("DIR", store!(fs.cache_dir = path)),
        DefaultIs::Computed(
            "$XDG_CACHE_HOME/smhfs, else $HOME/.cache/smhfs, else /var/cache/smhfs",
            default_cache_dir,
        ),
        "staged (written) files live here; created with mode 0700 if missing;\n\
         an existing one must be a real directory (no symlink) owned by the\n\
         mounting user and not writable by group or others",
    ),
    mount(
        "uid",
        Form::Value("N", store!(uid = int)),
        DefaultIs::Computed("the mounting user", mounting_uid),
        "owner shown for entries without a stored owner",
    ),
    mount(
        "gid",
        Form::Value("N", store!(gid = int)),
        DefaultIs::Computed("the mounting user's group", mounting_gid),
        "group shown for entries without a stored group",
    ),
    mount(
        "umask",
        Form::Value("OCTAL", |o, v| {
            o.umask = u32::from_str_radix(v, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| format!("invalid umask {v:?} (octal, e.g. 022)"))?;
            o.umask_given = true;
            Ok(())
        }),
        DefaultIs::Value("022"),
        "mask applied to 0755 (dirs) and 0644 (files) of entries without a stored\n\
         mode; when given, also to the modes new files and directories get",
    ),
    mount(
        "allow_other",
        Form::Flag(|o| o.allow_other = true),
        DefaultIs::None,
        "let other users access the mount",
    ),
    mount(
        "ro",
        Form::Flag(|o| o.fs.read_only = true),
        DefaultIs::None,
        "read-only mount",
    ),
    // mount(8) may add `rw` on its own: `ro` anywhere wins.
    fstab(
        "rw",
        Form::Flag(|_| {}),
        "read-write mount (the default; ro wins if both are given)",
    ),
    mount(
        "attr_timeout",
        Form::Value("SECS", store!(fs.attr_timeout = secs)),
        DefaultIs::Value("1"),
        "how long attributes are cached (at least 10 × poll_interval while the change feed is followed; see Coherence)",
    ),
    mount(
        "dir_timeout",
        Form::Value("SECS", store!(fs.dir_timeout = secs)),
        DefaultIs::Value("5"),
        "how long directory listings are cached (likewise; then revalidated with If-None-Match)",
    ),
    mount(
        "dir_cache_entries",
        Form::Value("N", |o, v| {
            o.fs.dir_cache_entries = int(v)? as usize;
            Ok(())
        }),
        DefaultIs::Value("100000"),
        "listing entries cached at most, over all directories (about 400 bytes\n\
         each; 0: listings are not cached); a longer directory is streamed\n\
         from the server at each listing",
    ),
    mount(
        "poll_interval",
        Form::Value("SECS", store!(fs.poll_interval = secs)),
        DefaultIs::Value("2"),
        "how often the server's change feed is polled (0: off); a change\n\
         made elsewhere shows within about this long. Without a feed on the\n\
         server, the timeouts above apply",
    ),
    mount(
        "part_size",
        Form::Value("BYTES", |o, v| {
            let s = parse_size(v)?;
            if !(1 << 20..=5 << 30).contains(&s) {
                return Err(format!("part_size must be between 1M and 5G, got {s}").into());
            }
            o.fs.part_size = s;
            Ok(())
        }),
        DefaultIs::Value("8M"),
        "upload part size, suffixes K, M, G (1M..5G)",
    ),
    mount(
        "upload_concurrency",
        Form::Value("N", |o, v| {
            let n = int(v)?;
            if !(1..=64).contains(&n) {
                return Err(format!("upload_concurrency must be 1..64, got {n}").into());
            }
            o.fs.upload_concurrency = n as usize;
            Ok(())
        }),
        DefaultIs::Value("4"),
        "part uploads in flight per file",
    ),
    mount(
        "permanent_delete",
        Form::Flag(|o| o.fs.permanent_delete = true),
        DefaultIs::None,
        "delete for good instead of moving to the recycle bin",
    ),
    mount(
        "write_back",
        Form::Optional("DELAY", |o, v| {
            o.write_back = Some(if v.is_empty() {
                Duration::ZERO
            } else {
                secs(v)?
            });
            Ok(())
        }),
        DefaultIs::None,
        "close() returns once the data is staged and journaled in cache_dir;\n\
         the upload runs in the background DELAY seconds later (default 0),\n\
         retried until it succeeds; unmount waits for the queue",
    ),
    mount(
        "cache_size",
        Form::Value("BYTES", store!(cache_size = Some(parse_size))),
        DefaultIs::AtMount("min(50% of the free space under cache_dir, 10G)"),
        "bound on staged bytes in cache_dir (suffixes K, M, G; at least one part);\n\
         writers past it wait up to cache_wait for uploads to free room, then get ENOSPC",
    ),
    mount(
        "cache_wait",
        Form::Value("SECS", store!(cache_wait = secs)),
        DefaultIs::Value("30"),
        "see cache_size",
    ),
    mount(
        "noexec",
        Form::Flag(|o| o.noexec = true),
        DefaultIs::None,
        "passed to the kernel (nodev and nosuid are always set)",
    ),
    mount(
        "exec",
        Form::Flag(|o| o.noexec = false),
        DefaultIs::None,
        "undoes an earlier noexec",
    ),
    mount(
        "xattr",
        Form::Flag(|o| o.xattr = true),
        DefaultIs::None,
        "show upload progress as read-only extended attributes\n\
         user.smhfs.status (root) and user.smhfs.upload (a file); off by\n\
         default because answering getxattr makes `ls -l` ask twice per\n\
         entry (`smhfs status MOUNTPOINT` needs no xattrs)",
    ),
    mount(
        "debug",
        Form::Flag(|o| o.debug = true),
        DefaultIs::None,
        "verbose logging",
    ),
    mount(
        "foreground",
        Form::Flag(|o| o.foreground = true),
        DefaultIs::None,
        "same as -f: stay attached, log to stderr",
    ),
    mount(
        "log_file",
        Form::Value("PATH", store!(log_file = Some(path))),
        DefaultIs::None,
        "when detached, log here instead of syslog",
    ),
    mount(
        "log_format",
        Form::Value("FORMAT", store!(log_format = log_format)),
        DefaultIs::Value("text"),
        "text, or json: one JSON object per line (each FUSE request in a\n\
         span with its request id, operation, inode and pid)",
    ),
    mount(
        "metrics_addr",
        Form::Value("ADDR", store!(metrics_addr = Some(metrics_addr))),
        DefaultIs::None,
        "serve Prometheus metrics on http://ADDR/metrics; ADDR is PORT or\n\
         localhost:PORT (loopback) or IP:PORT (0.0.0.0:PORT serves every\n\
         interface)",
    ),
    mount(
        "pid_file",
        Form::Value("PATH", store!(pid_file = Some(path))),
        DefaultIs::None,
        "write the daemon's pid here once mounted (removed at exit)",
    ),
    mount(
        "unmount_timeout",
        Form::Value("SECS", store!(unmount_timeout = secs)),
        DefaultIs::Value("300"),
        "at unmount or SIGTERM, wait this long for uploads still\n\
         in flight before exiting",
    ),
    fstab(
        "nofail",
        Form::Flag(|o| o.nofail = true),
        "a failed mount is reported on stderr but exits 0 (mount -a goes on)",
    ),
    OptionSpec {
        name: "remount",
        form: Form::Any,
        default: DefaultIs::None,
        scope: Scope::Refused,
        help: "umount the mount point and mount it again",
    },
    ignored("defaults", "fstab placeholder"),
    ignored("auto", "mount -a mounts it (mount(8) decides)"),
    ignored("noauto", "mount -a skips it (mount(8) decides)"),
    ignored("user", "user mounts (mount(8) decides)"),
    ignored("nouser", "user mounts (mount(8) decides)"),
    ignored("users", "user mounts (mount(8) decides)"),
    ignored("owner", "user mounts (mount(8) decides)"),
    ignored("group", "user mounts (mount(8) decides)"),
    ignored("_netdev", "systemd orders it after the network"),
    // smhfs always mounts nodev,nosuid: SMH holds no devices or setuid files.
    ignored("dev", "smhfs always mounts nodev"),
    ignored("nodev", "always set"),
    ignored("suid", "smhfs always mounts nosuid"),
    ignored("nosuid", "always set"),
    ignored("atime", "smhfs never updates atime"),
    ignored("noatime", "always set"),
    ignored("relatime", "smhfs never updates atime"),
    ignored("strictatime", "smhfs never updates atime"),
    ignored("nodiratime", "smhfs never updates atime"),
    ignored("async", "uploads follow close(), fsync() and write_back"),
    ignored("sync", "uploads follow close(), fsync() and write_back"),
    ignored("loud", "mount(8) verbosity"),
    ignored("silent", "mount(8) verbosity"),
    ignored("comment", "fstab comment (comment=...)"),
    ignored(
        "x-*",
        "options for systemd and other tools (x-systemd.automount, ...)",
    ),
];

/// The declared option for `key`.
pub fn lookup(key: &str) -> Option<&'static OptionSpec<MountOptions>> {
    OPTIONS.iter().find(|s| s.matches(key))
}

impl MountOptions {
    /// Every option at its declared default (required ones unset).
    pub fn defaults() -> Self {
        let mut o = MountOptions::default();
        for spec in OPTIONS {
            match spec.default {
                DefaultIs::Value(v) => spec
                    .apply(&mut o, Some(v))
                    .expect("the option table's defaults parse"),
                DefaultIs::Computed(_, f) => f(&mut o),
                DefaultIs::None | DefaultIs::Required | DefaultIs::AtMount(_) => {}
            }
        }
        // Set only by a `umask` the user gave, not by its default.
        o.umask_given = false;
        o
    }

    /// Parses the `-o` values (each may hold several comma-separated options).
    pub fn parse(opts: &[String], foreground: bool) -> Result<Self, String> {
        let mut o = Self::defaults();
        o.foreground = foreground;
        let mut given = Vec::new();
        for item in opts.iter().map(|s| split_options(s)) {
            for item in item? {
                let item = item.trim();
                if item.is_empty() {
                    continue;
                }
                let (k, v) = match item.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (item, None),
                };
                let spec =
                    lookup(k).ok_or_else(|| format!("unknown mount option {k:?} (see --help)"))?;
                spec.apply(&mut o, v)?;
                given.push(spec.name);
            }
        }
        for spec in OPTIONS {
            if matches!(spec.default, DefaultIs::Required) && !given.contains(&spec.name) {
                return Err(format!("missing required option {}", spec.usage()));
            }
        }
        o.check()
    }

    /// The API endpoint (required: `parse` refuses options without it).
    pub fn endpoint(&self) -> Result<&url::Url, String> {
        self.endpoint
            .as_ref()
            .ok_or_else(|| "missing required option endpoint=URL".to_string())
    }

    /// The API client for `source` (a mount, or `smhfs resume` of its journal).
    pub fn client_config(
        &self,
        source: &Source,
        creds: CredentialsFile,
    ) -> Result<crate::smh::ClientConfig, String> {
        let mut cc = crate::smh::ClientConfig::new(
            self.endpoint()?.clone(),
            &source.library,
            &source.space,
            creds.credentials,
        );
        cc.user_id = creds.user_id;
        Ok(cc)
    }

    /// Refuses combinations no single option can judge.
    fn check(self) -> Result<Self, String> {
        if let Some(size) = self.cache_size {
            if size < self.fs.part_size {
                return Err(format!(
                    "cache_size={size} is smaller than one upload part (part_size={}): \
                     nothing could be staged; give cache_size={}M or more",
                    self.fs.part_size,
                    self.fs.part_size >> 20
                ));
            }
        }
        Ok(self)
    }

    /// The filesystem core's settings for the mounted directory `root`.
    pub fn fs_config(&self, root: SmhPath) -> FsConfig {
        FsConfig {
            root,
            look: crate::fs::metastate::Presentation {
                uid: self.uid,
                gid: self.gid,
                umask: self.umask,
                mask_new: self.umask_given,
                creators_own: self.allow_other,
            },
            ..self.fs.clone()
        }
    }

    /// The staged bytes allowed: `cache_size=`, else the table's at-mount
    /// default for `cache_dir`.
    pub fn cache_bound(&self) -> u64 {
        self.cache_size
            .unwrap_or_else(|| crate::fs::writeback::default_cache_size(&self.fs.cache_dir))
    }

    /// Write-back and cache settings.
    pub fn durability(&self) -> DurabilityOptions {
        self.durability_with(self.cache_bound())
    }

    fn durability_with(&self, cache_size: u64) -> DurabilityOptions {
        DurabilityOptions {
            write_back: self.write_back,
            cache_size,
            cache_wait: self.cache_wait,
            jobs: UPLOAD_JOBS,
        }
    }
}

/// The core's settings before a mount sets its own: the table's defaults,
/// with no cache bound (the free space is only known at mount).
impl Default for DurabilityOptions {
    fn default() -> Self {
        MountOptions::defaults().durability_with(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::optspec::help_text;
    use std::path::Path;

    fn opts(s: &str) -> Result<MountOptions, String> {
        MountOptions::parse(&[s.to_string()], false)
    }

    #[test]
    fn options_defaults_and_values() {
        let o = opts("endpoint=http://127.0.0.1:1,credentials=/c").unwrap();
        assert_eq!(o.fs.conflict, ConflictStrategy::Overwrite);
        assert_eq!(o.fs.attr_timeout, Duration::from_secs(1));
        assert_eq!(o.fs.dir_timeout, Duration::from_secs(5));
        assert_eq!(o.umask, 0o022);
        assert_eq!(o.fs.part_size, 8 << 20);
        assert_eq!(o.fs.upload_concurrency, 4);
        assert_eq!(o.cache_wait, Duration::from_secs(30));
        let o = opts("endpoint=http://h,credentials=/c,conflict=ask,uid=5,gid=6,umask=077,ro,allow_other,part_size=16M,upload_concurrency=2,attr_timeout=0.5,permanent_delete,debug,rw,nodev,_netdev")
            .unwrap();
        assert_eq!(o.fs.conflict, ConflictStrategy::Ask);
        assert_eq!((o.uid, o.gid, o.umask), (5, 6, 0o077));
        assert!(o.fs.read_only && o.allow_other && o.fs.permanent_delete && o.debug);
        assert_eq!(o.fs.part_size, 16 << 20);
        assert_eq!(o.fs.upload_concurrency, 2);
        assert_eq!(o.fs.attr_timeout, Duration::from_millis(500));
        let o = opts("endpoint=http://h,credentials=/c,write_back").unwrap();
        assert_eq!(o.write_back, Some(Duration::ZERO));
        let o = opts("endpoint=http://h,credentials=/c,write_back=2.5").unwrap();
        assert_eq!(o.write_back, Some(Duration::from_millis(2500)));
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
        assert_eq!(
            opts("endpoint=http://h,credentials=/c,ro=1").unwrap_err(),
            "option ro takes no value"
        );
        assert_eq!(
            opts("endpoint=http://h,credentials=/c,cache_wait=x").unwrap_err(),
            "invalid value for cache_wait: \"x\""
        );
    }

    #[test]
    fn observability_options() {
        let o = opts("endpoint=http://h,credentials=/c").unwrap();
        assert_eq!(o.log_format, crate::logging::LogFormat::Text);
        assert_eq!(o.metrics_addr, None);
        let o = opts("endpoint=http://h,credentials=/c,log_format=json,metrics_addr=9100").unwrap();
        assert_eq!(o.log_format, crate::logging::LogFormat::Json);
        assert_eq!(o.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
        let e = opts("endpoint=http://h,credentials=/c,metrics_addr=example.com:1").unwrap_err();
        assert!(e.contains("invalid metrics address"), "{e}");
        let e = opts("endpoint=http://h,credentials=/c,log_format=xml").unwrap_err();
        assert!(e.contains("unknown log format"), "{e}");
    }

    #[test]
    fn option_escaping_reaches_values() {
        let o = opts(r"endpoint=http://h,credentials=/c\,d,cache_dir=/x\,y").unwrap();
        assert_eq!(o.credentials_file, PathBuf::from("/c,d"));
        assert_eq!(o.fs.cache_dir, PathBuf::from("/x,y"));
    }

    #[test]
    fn fstab_and_lifecycle_options() {
        let o = opts("endpoint=http://h,credentials=/c").unwrap();
        assert_eq!(o.unmount_timeout, Duration::from_secs(300));
        assert!(!o.fs.read_only && !o.noexec && !o.nofail);
        let o = opts("endpoint=http://h,credentials=/c,ro,rw,noexec,nofail,unmount_timeout=7,log_file=/l,pid_file=/p,_netdev,x-systemd.automount,x-systemd.requires=network-online.target,comment=x,users,defaults,nosuid,nodev,suid,dev,auto,noauto,sync")
            .unwrap();
        assert!(o.fs.read_only, "ro wins over rw");
        assert!(o.noexec && o.nofail);
        assert_eq!(o.unmount_timeout, Duration::from_secs(7));
        assert_eq!(o.log_file.as_deref(), Some(Path::new("/l")));
        assert_eq!(o.pid_file.as_deref(), Some(Path::new("/p")));
        assert!(
            opts("endpoint=http://h,credentials=/c,rw,ro")
                .unwrap()
                .fs
                .read_only
        );
        assert!(opts("endpoint=http://h,credentials=/c,unmount_timeout=x").is_err());
        assert!(opts("endpoint=http://h,credentials=/c,remount,ro")
            .unwrap_err()
            .contains("remount is not supported"));
    }

    #[test]
    fn configs_come_from_the_table() {
        let o = MountOptions::defaults();
        let fs = o.fs_config(SmhPath::root());
        assert_eq!(fs.upload_concurrency, o.fs.upload_concurrency);
        assert_eq!(fs.part_size, o.fs.part_size);
        let d = DurabilityOptions::default();
        assert_eq!(d.cache_wait, o.cache_wait);
        assert_eq!(d.jobs, UPLOAD_JOBS);
        assert!(d.write_back.is_none());
    }

    #[test]
    fn help_lists_every_option_once() {
        let h = help_text(OPTIONS);
        for spec in OPTIONS.iter().filter(|s| s.scope != Scope::Ignored) {
            let head = format!("  {}", spec.usage());
            assert_eq!(
                h.lines()
                    .filter(|l| l.starts_with(&format!("{head} ")))
                    .count(),
                1,
                "{head} in:\n{h}"
            );
        }
        assert!(h.contains("cache_wait=SECS") && h.contains("[30]"));
        assert!(h.contains("x-*"));
    }

    /// README rule: the table under "### Mount options" has one row per
    /// declared option; its first cell is the option written as `usage()`
    /// shows it (`name`, `name=VALUE`, `name[=VALUE]`), in backticks.
    #[test]
    fn readme_lists_every_option() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n### Mount options\n")
            .nth(1)
            .expect("README has a '### Mount options' section");
        let rows: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .collect();
        let mut listed: Vec<String> = rows
            .iter()
            .map(|r| {
                let cell = r.split('|').nth(1).unwrap_or("").trim();
                cell.trim_matches('`').to_string()
            })
            .collect();
        let mut declared: Vec<String> = OPTIONS.iter().map(|s| s.usage()).collect();
        listed.sort();
        declared.sort();
        assert_eq!(listed, declared, "README mount option table vs OPTIONS");
    }
}
