//! Where the mount's logs go: stderr in the foreground; when detached, a
//! `log_file=PATH`, else syslog/journald through `/dev/log`, else
//! `CACHE_DIR/smhfs.log` (when no syslog socket exists, e.g. in containers);
//! as text or as one JSON object per line ([`LogFormat`]).

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How each log event is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `LEVEL target: message key=value ...`, for people.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `message`,
    /// the event's fields, and `span` with the current FUSE request), for
    /// log collectors.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?} (text or json)")),
        }
    }
}

/// A chosen log destination.
pub enum LogTarget {
    Stderr,
    File(PathBuf),
    Syslog,
}

impl LogTarget {
    /// The destination for a detached daemon.
    pub fn detached(log_file: Option<&Path>, cache_dir: &Path) -> Self {
        match log_file {
            Some(p) => LogTarget::File(p.to_path_buf()),
            None if Path::new("/dev/log").exists() => LogTarget::Syslog,
            None => LogTarget::File(cache_dir.join("smhfs.log")),
        }
    }
}

/// Installs the mount's global subscriber (once; later calls do nothing).
/// With syslog, panics are logged too (a log file also receives stderr).
pub fn init(debug: bool, format: LogFormat, target: &LogTarget) {
    let default = if debug {
        "smhfs=debug,info"
    } else {
        // fuser warns "Failed to umount" after every external umount: noise.
        "smhfs=info,fuser::session=error,warn"
    };
    install(default, format, target);
}

/// `smhfs serve`'s subscriber: warnings on stderr unless `RUST_LOG` says more.
pub fn init_serve(format: LogFormat) {
    install("warn", format, &LogTarget::Stderr);
}

/// One boxed fmt layer, whatever the writer and format.
type BoxedLayer = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

fn layer<W>(writer: W, format: LogFormat, ansi: bool, time: bool) -> BoxedLayer
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let l = tracing_subscriber::fmt::layer().with_writer(writer);
    match (format, time) {
        (LogFormat::Json, _) => l
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        (LogFormat::Text, true) => l.with_ansi(ansi).boxed(),
        (LogFormat::Text, false) => l.with_ansi(ansi).without_time().boxed(),
    }
}

fn install(default: &str, format: LogFormat, target: &LogTarget) {
    if matches!(target, LogTarget::Syslog) {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            tracing::error!("panic: {info}");
            default_hook(info);
        }));
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let layer = match target {
        LogTarget::Stderr => layer(
            std::io::stderr,
            format,
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            true,
        ),
        LogTarget::File(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p);
            match f {
                Ok(f) => {
                    // Detached: stderr is /dev/null; send stray output
                    // (panics, libraries) to the log file as well.
                    use std::os::fd::AsRawFd;
                    // SAFETY: dup2 takes no pointers; `f` is open, and fd 2
                    // is replaced atomically (no Rust object owns it).
                    unsafe { libc::dup2(f.as_raw_fd(), 2) };
                    layer(Arc::new(f), format, false, true)
                }
                Err(_) => return,
            }
        }
        LogTarget::Syslog => match Syslog::connect() {
            Ok(s) => layer(s, format, false, false),
            Err(_) => return,
        },
    };
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
}

/// RFC 3164 lines over the `/dev/log` datagram socket (facility daemon).
#[derive(Clone)]
pub struct Syslog {
    sock: Arc<UnixDatagram>,
    pid: u32,
}

impl Syslog {
    pub fn connect() -> std::io::Result<Self> {
        Self::connect_to(Path::new("/dev/log"))
    }

    pub fn connect_to(path: &Path) -> std::io::Result<Self> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(path)?;
        Ok(Self {
            sock: Arc::new(sock),
            pid: std::process::id(),
        })
    }
}

/// One formatted event (fmt writes each event with one `write_all`).
pub struct SyslogLine(Syslog);

impl Write for SyslogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let text = text.trim();
        // Severity from the level fmt printed first (or the JSON `level`):
        // daemon.err .. daemon.debug.
        let level = text
            .strip_prefix("{")
            .and_then(|_| text.split_once("\"level\":\""))
            .map_or(text, |(_, rest)| rest);
        let sev = [
            ("ERROR", 3),
            ("WARN", 4),
            ("INFO", 6),
            ("DEBUG", 7),
            ("TRACE", 7),
        ]
        .iter()
        .find(|(l, _)| level.starts_with(l))
        .map(|(_, s)| *s)
        .unwrap_or(6);
        let msg = format!("<{}>smhfs[{}]: {}", 3 * 8 + sev, self.0.pid, text);
        let _ = self.0.sock.send(msg.as_bytes());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;
    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn syslog_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let rx = UnixDatagram::bind(&path).unwrap();
        let s = Syslog::connect_to(&path).unwrap();
        s.make_writer()
            .write_all(b" WARN smhfs::fs: slow\n")
            .unwrap();
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert_eq!(
            got,
            format!("<28>smhfs[{}]: WARN smhfs::fs: slow", std::process::id())
        );
        let json = br#"{"timestamp":"t","level":"ERROR","message":"x"}"#;
        s.make_writer().write_all(json).unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("<27>smhfs["));
    }

    #[test]
    fn log_formats_parse() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("text".parse::<LogFormat>(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn detached_target() {
        let t = LogTarget::detached(Some(Path::new("/x.log")), Path::new("/c"));
        assert!(matches!(t, LogTarget::File(p) if p == Path::new("/x.log")));
        let t = LogTarget::detached(None, Path::new("/c"));
        match t {
            LogTarget::Syslog => assert!(Path::new("/dev/log").exists()),
            LogTarget::File(p) => assert_eq!(p, Path::new("/c/smhfs.log")),
            LogTarget::Stderr => panic!("stderr when detached"),
        }
    }
}
