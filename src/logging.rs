//! Where the mount's logs go: stderr in the foreground; when detached, a
//! `log_file=PATH`, else syslog/journald through `/dev/log`, else
//! `CACHE_DIR/smhfs.log` (when no syslog socket exists, e.g. in containers).

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Installs the global subscriber (once; later calls do nothing). With
/// syslog, panics are logged too (a log file also receives stderr).
pub fn init(debug: bool, target: &LogTarget) {
    if matches!(target, LogTarget::Syslog) {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            tracing::error!("panic: {info}");
            default_hook(info);
        }));
    }
    let default = if debug {
        "smhfs=debug,info"
    } else {
        // fuser warns "Failed to umount" after every external umount: noise.
        "smhfs=info,fuser::session=error,warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match target {
        LogTarget::Stderr => b
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
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
                    b.with_writer(Arc::new(f)).with_ansi(false).try_init()
                }
                Err(_) => return,
            }
        }
        LogTarget::Syslog => match Syslog::connect() {
            Ok(s) => b.with_writer(s).with_ansi(false).without_time().try_init(),
            Err(_) => return,
        },
    };
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
        // Severity from the level fmt printed first: daemon.err .. daemon.debug.
        let sev = [
            ("ERROR", 3),
            ("WARN", 4),
            ("INFO", 6),
            ("DEBUG", 7),
            ("TRACE", 7),
        ]
        .iter()
        .find(|(l, _)| text.starts_with(l))
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
