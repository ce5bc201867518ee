//! How long the mount trusts what it cached about the server: THE rule for
//! attribute and listing lifetimes.
//!
//! - Feed not followed (off, absent, lost cursor, failing polls): the
//!   configured `attr_timeout` / `dir_timeout`, as without a feed.
//! - Feed followed (the last poll succeeded): `max(timeout, 10 ×
//!   poll_interval)` for what was cached since the feed was followed. The
//!   feed is then the source of truth for changes made elsewhere (each one
//!   drops the names it touched); the longer timeout stays a bounded safety
//!   net for what the feed cannot name (items the mount knows no server
//!   inode of), at most ten polls (20 s with the defaults) late. Entries
//!   cached before the feed was followed keep the configured timeout: a
//!   change between their fetch and the cursor is reported by no entry.
//!
//! A timeout of 0 (no caching) stays 0, and "missing" answers keep their
//! own short lifetime (`cache::NEGATIVE_TTL`). Losing the feed applies the
//! configured timeouts to every entry at once (lifetimes are worked out at
//! lookup, from when an entry was stored).

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The feed's timeout is this many poll intervals.
pub const FEED_TTL_POLLS: u32 = 10;

/// Whether (since when) the change feed is followed.
#[derive(Debug, Default)]
pub struct Freshness {
    feed_ttl: Duration,
    since: Mutex<Option<Instant>>,
}

impl Freshness {
    pub fn new(poll_interval: Duration) -> Self {
        Self {
            feed_ttl: poll_interval * FEED_TTL_POLLS,
            since: Mutex::new(None),
        }
    }

    /// A poll succeeded (`true`) or the feed is lost or failing (`false`).
    pub fn following(&self, on: bool) {
        let mut s = self.since.lock();
        match (on, s.is_some()) {
            (true, false) => *s = Some(Instant::now()),
            (false, true) => *s = None,
            _ => {}
        }
    }

    pub fn is_following(&self) -> bool {
        self.since.lock().is_some()
    }

    /// The lifetime of an entry stored at `stored` under a `configured`
    /// timeout.
    pub fn ttl(&self, configured: Duration, stored: Instant) -> Duration {
        if configured.is_zero() {
            return configured;
        }
        match *self.since.lock() {
            Some(since) if stored >= since => configured.max(self.feed_ttl),
            _ => configured,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_lengthens_what_it_covers_and_losing_it_reverts() {
        let f = Freshness::new(Duration::from_secs(2));
        let s = Duration::from_secs;
        let before = Instant::now();
        assert_eq!(f.ttl(s(1), before), s(1), "not followed yet");
        std::thread::sleep(Duration::from_millis(2));
        f.following(true);
        let after = Instant::now();
        assert_eq!(f.ttl(s(1), after), s(20));
        assert_eq!(f.ttl(s(60), after), s(60), "never shorter than configured");
        assert_eq!(f.ttl(s(1), before), s(1), "cached before the cursor");
        assert_eq!(f.ttl(Duration::ZERO, after), Duration::ZERO);
        f.following(true); // later polls keep the start
        assert_eq!(f.ttl(s(1), after), s(20));
        f.following(false);
        assert_eq!(f.ttl(s(1), after), s(1), "lost: configured timeouts");
        assert!(!f.is_following());
    }
}
