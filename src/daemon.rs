//! Detaching from the terminal the way `mount(8)` needs it: the parent exits 0
//! only once the filesystem is live, or non-zero with the child's error, so
//! `mount` and fstab boot lines report failures instead of hiding them.
//!
//! The fork happens before any thread (and so before the tokio runtime)
//! exists; the child reports over a pipe.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

/// The child's end of the readiness pipe.
pub struct Readiness {
    pipe: Option<File>,
}

impl Readiness {
    /// For a process that did not detach: reports go nowhere.
    pub fn foreground() -> Self {
        Self { pipe: None }
    }

    pub fn is_detached(&self) -> bool {
        self.pipe.is_some()
    }

    /// The mount is live: let the parent exit 0.
    pub fn ready(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"ok\n");
        }
    }

    /// Setting up failed: the parent prints `message` and exits 1.
    pub fn failed(&mut self, message: &str) {
        if let Some(mut p) = self.pipe.take() {
            let line = message.replace('\n', " ");
            let _ = p.write_all(format!("err {line}\n").as_bytes());
        }
    }
}

/// Forks. Returns in the child (new session, stdio on /dev/null) with its
/// [`Readiness`]; the parent never returns: it exits with the child's verdict.
///
/// Must be called before any thread is started.
pub fn detach() -> std::io::Result<Readiness> {
    detach_with(false)
}

/// Like [`detach`]; with `nofail` (the fstab option) a failure is still
/// printed but the parent exits 0, so `mount -a` goes on.
pub fn detach_with(nofail: bool) -> std::io::Result<Readiness> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two ints into `fds`, a live array of two.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nothing
    // else; each goes to exactly one OwnedFd.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fork is sound while no other thread exists (this function's
    // documented precondition), so no lock can be held in the child.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid > 0 {
        drop(write_end);
        parent_wait(File::from(read_end), pid, nofail);
    }
    drop(read_end);
    // SAFETY: the child of a single-threaded fork may call any
    // async-signal-safe function; these are, and they get NUL-terminated
    // literals and fds of this process only. Their failures are not fatal.
    unsafe {
        libc::setsid();
        // Hold no directory busy (paths were made absolute before).
        libc::chdir(c"/".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(Readiness {
        pipe: Some(File::from(write_end)),
    })
}

fn parent_wait(mut pipe: File, child: libc::pid_t, nofail: bool) -> ! {
    let mut msg = String::new();
    let _ = pipe.read_to_string(&mut msg);
    let line = msg.lines().next().unwrap_or("");
    if line == "ok" {
        std::process::exit(0);
    }
    let fail = || -> ! {
        if nofail {
            eprintln!("smhfs: nofail is set: not mounted, exit status 0");
            std::process::exit(0);
        }
        std::process::exit(1);
    };
    if let Some(err) = line.strip_prefix("err ") {
        eprintln!("smhfs: {err}");
        fail();
    }
    // The child died without a word: report how.
    let mut status = 0;
    // SAFETY: `status` is a writable int; waitpid only reaps our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    if libc::WIFSIGNALED(status) {
        eprintln!(
            "smhfs: the filesystem process was killed by signal {}",
            libc::WTERMSIG(status)
        );
    } else {
        eprintln!(
            "smhfs: the filesystem process exited with status {} before the mount was ready",
            libc::WEXITSTATUS(status)
        );
    }
    fail();
}

/// Replaces SIGHUP's default (terminate) with a log line: the daemon has
/// no terminal whose hangup should end it, and no configuration to reload.
/// Registered before this returns, so no hangup after it can kill the process.
pub fn log_hangups(rt: &tokio::runtime::Handle) {
    use tokio::signal::unix::{signal, SignalKind};
    let _ctx = rt.enter();
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            rt.spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP received; ignored (umount or SIGTERM ends the mount)");
                }
            });
        }
        Err(e) => tracing::warn!("cannot handle SIGHUP: {e}"),
    }
}
