//! The daemon's end of life: in-flight uploads and waiting for them.
//!
//! `upload_locked` holds an [`InFlight`] guard for the duration of an upload;
//! unmount and SIGTERM call [`SmhFs::wait_idle`] before the process exits so a
//! close() that is still uploading finishes (bounded by `unmount_timeout`).
//! Staged files of uploads that did not finish are never deleted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::core::SmhFs;

/// Counts uploads in flight; wakes waiters when it drops to zero.
#[derive(Default)]
pub struct InFlight {
    n: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Decrements the counter when dropped (also on error or cancellation).
pub struct InFlightGuard<'a>(&'a InFlight);

impl InFlight {
    pub fn begin(&self) -> InFlightGuard<'_> {
        self.n.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self)
    }

    pub fn count(&self) -> usize {
        self.n.load(Ordering::SeqCst)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl SmhFs {
    /// Uploads running right now.
    pub fn uploads_in_flight(&self) -> usize {
        self.in_flight.count()
    }

    /// Waits until no upload is in flight; false if `timeout` passed first.
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

    #[tokio::test]
    async fn counter_and_wakeup() {
        let f = std::sync::Arc::new(InFlight::default());
        assert_eq!(f.count(), 0);
        let g = f.begin();
        assert_eq!(f.count(), 1);
        drop(g);
        assert_eq!(f.count(), 0);
    }
}
