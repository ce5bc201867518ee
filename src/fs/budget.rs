//! `CacheBudget`: the bound on staged bytes (`-o cache_size`), shared by
//! every staged file of a mount.

use std::sync::Arc;
use std::time::Duration;

/// The bound on staged bytes (`-o cache_size`). Writers that would go past
/// it wait (bounded) for uploads to free room, then get ENOSPC.
#[derive(Debug)]
pub struct CacheBudget {
    limit: u64,
    used: parking_lot::Mutex<u64>,
    freed: tokio::sync::Notify,
    wait: Duration,
}

impl CacheBudget {
    pub fn new(limit: u64, wait: Duration) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: parking_lot::Mutex::new(0),
            freed: tokio::sync::Notify::new(),
            wait,
        })
    }

    pub fn unlimited() -> Arc<Self> {
        Self::new(u64::MAX, Duration::ZERO)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn used(&self) -> u64 {
        *self.used.lock()
    }

    fn try_take(&self, n: u64) -> bool {
        let mut u = self.used.lock();
        if u.saturating_add(n) <= self.limit {
            *u += n;
            true
        } else {
            false
        }
    }

    /// Takes `n` bytes of room if there is some now.
    pub fn try_reserve(&self, n: u64, own: u64) -> bool {
        own.saturating_add(n) <= self.limit && self.try_take(n)
    }

    /// Counts `n` bytes without waiting (data already on disk).
    pub fn force(&self, n: u64) {
        let mut u = self.used.lock();
        *u = u.saturating_add(n);
    }

    pub fn release(&self, n: u64) {
        if n == 0 {
            return;
        }
        {
            let mut u = self.used.lock();
            *u = u.saturating_sub(n);
        }
        self.freed.notify_waiters();
    }

    /// Takes `n` bytes of room, waiting up to the configured time for
    /// uploads to free some. `own` is what the caller's file already holds:
    /// if `own + n` alone exceeds the bound, waiting cannot help.
    pub async fn reserve(&self, n: u64, own: u64) -> std::io::Result<()> {
        let enospc = || std::io::Error::from_raw_os_error(libc::ENOSPC);
        if n == 0 {
            return Ok(());
        }
        if own.saturating_add(n) > self.limit {
            return Err(enospc());
        }
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_take(n) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return if self.try_take(n) {
                    Ok(())
                } else {
                    Err(enospc())
                };
            }
        }
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[tokio::test]
    async fn reserve_waits_for_room_then_gives_enospc() {
        let b = CacheBudget::new(100, Duration::from_millis(300));
        b.reserve(60, 0).await.unwrap();
        // Larger than the whole bound with what the file holds: at once.
        let e = b.reserve(50, 60).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        // Room freed while waiting.
        let b2 = b.clone();
        let t = tokio::spawn(async move { b2.reserve(50, 0).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.release(30);
        t.await.unwrap().unwrap();
        assert_eq!(b.used(), 80);
        // No room in time.
        let e = b.reserve(30, 0).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    }
}
