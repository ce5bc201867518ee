//! The daemon's end of life: in-flight uploads and waiting for them.
//!
//! A leaf: `upload_locked` holds an [`InFlight`] guard for the duration of an upload;
//! unmount and SIGTERM call `SmhFs::wait_idle` before the process exits so a
//! close() that is still uploading finishes (bounded by `unmount_timeout`).
//! Staged files of uploads that did not finish are never deleted.

use std::sync::atomic::{AtomicUsize, Ordering};

use std::sync::Arc;

/// Counts uploads and kernel requests in flight; wakes waiters when both
/// drop to zero.
#[derive(Default)]
pub struct InFlight {
    pub(crate) uploads: AtomicUsize,
    pub(crate) ops: AtomicUsize,
    pub(crate) idle: tokio::sync::Notify,
}

/// Decrements the upload counter when dropped (also on error or cancellation).
pub struct InFlightGuard<'a>(&'a InFlight);

/// A kernel request being served (taken when it arrives, before its task
/// runs, so a release read just before the session ended is still waited for).
pub struct OpGuard(pub(crate) Arc<InFlight>);

impl InFlight {
    pub fn begin(&self) -> InFlightGuard<'_> {
        self.uploads.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self)
    }

    /// Uploads plus requests.
    pub fn count(&self) -> usize {
        self.uploads.load(Ordering::SeqCst) + self.ops.load(Ordering::SeqCst)
    }

    pub(crate) fn done(&self, c: &AtomicUsize) {
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
        self.0.done(&self.0.ops);
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
