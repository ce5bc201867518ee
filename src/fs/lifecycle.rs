//! The daemon's end of life: in-flight uploads and waiting for them.
//!
//! `upload_locked` holds an [`InFlight`] guard for the duration of an upload;
//! unmount and SIGTERM call [`SmhFs::wait_idle`] before the process exits so a
//! close() that is still uploading finishes (bounded by `unmount_timeout`).
//! Staged files of uploads that did not finish are never deleted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::Arc;

use super::core::SmhFs;

/// Counts uploads and kernel requests in flight; wakes waiters when both
/// drop to zero.
#[derive(Default)]
pub struct InFlight {
    uploads: AtomicUsize,
    ops: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Decrements the upload counter when dropped (also on error or cancellation).
pub struct InFlightGuard<'a>(&'a InFlight);

/// A kernel request being served (taken when it arrives, before its task
/// runs, so a release read just before the session ended is still waited for).
pub struct OpGuard(Arc<SmhFs>);

impl InFlight {
    pub fn begin(&self) -> InFlightGuard<'_> {
        self.uploads.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self)
    }

    /// Uploads plus requests.
    pub fn count(&self) -> usize {
        self.uploads.load(Ordering::SeqCst) + self.ops.load(Ordering::SeqCst)
    }

    fn done(&self, c: &AtomicUsize) {
        c.fetch_sub(1, Ordering::SeqCst);
        if self.count() == 0 {
            self.idle.notify_waiters();
        }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.done(&self.0.uploads);
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        self.0.in_flight.done(&self.0.in_flight.ops);
    }
}

impl SmhFs {
    /// Uploads running right now.
    pub fn uploads_in_flight(&self) -> usize {
        self.in_flight.uploads.load(Ordering::SeqCst)
    }

    /// Marks a kernel request as being served until the guard drops.
    pub fn op_guard(self: &Arc<Self>) -> OpGuard {
        self.in_flight.ops.fetch_add(1, Ordering::SeqCst);
        OpGuard(self.clone())
    }

    /// At exit, for files the kernel never released (a lazy unmount can
    /// drop the last RELEASE): staged copies the server confirmed are removed,
    /// unconfirmed ones are kept and named in the log.
    pub fn discard_confirmed_staged(&self) {
        let files: Vec<_> = self
            .files
            .lock()
            .iter()
            .map(|(i, f)| (*i, f.clone()))
            .collect();
        for (ino, f) in files {
            let Ok(mut of) = f.try_lock() else {
                continue;
            };
            if of.is_dirty() {
                // Still open: kept like any file being written at a crash.
                if let Err(e) = self.spill(ino, &mut of, false) {
                    tracing::error!(ino, "cannot keep a file held in memory: {e}");
                }
                if let Some(st) = &of.staged {
                    tracing::warn!(staged = %st.path().display(), "unmounted with an unconfirmed upload; its data is kept in the staged file");
                }
                continue;
            }
            if let Some(st) = of.staged.take() {
                st.remove();
            }
        }
    }

    /// Waits until no upload (and no request) is in flight; false if
    /// `timeout` passed first.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.in_flight.idle.notified();
            tokio::pin!(idle);
            // Register before checking, so a wake-up between the two is not lost.
            idle.as_mut().enable();
            if self.in_flight.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.in_flight.count() == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter() {
        let f = InFlight::default();
        assert_eq!(f.count(), 0);
        let g = f.begin();
        let h = f.begin();
        assert_eq!(f.count(), 2);
        drop(g);
        drop(h);
        assert_eq!(f.count(), 0);
    }
}
