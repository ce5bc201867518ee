//! The mount's state as Prometheus gauges, worked out when they are read
//! (a scrape or `smhfs status`), never on the hot path: upload queue
//! depth, journal entries, cache bytes used and bound, known inodes, open
//! handles.

use std::sync::atomic::Ordering;

use super::SmhFs;

impl SmhFs {
    /// Sets every gauge from the current state.
    pub fn publish_gauges(&self) {
        let set = |name: &'static str, v: usize| metrics::gauge!(name).set(v as f64);
        set("smhfs_upload_queue_depth", self.pending_uploads());
        set(
            "smhfs_uploads_running",
            self.in_flight.uploads.load(Ordering::SeqCst),
        );
        set("smhfs_journal_entries", self.dur.journal.count());
        metrics::gauge!("smhfs_cache_used_bytes").set(self.dur.budget.used() as f64);
        let bound = self.dur.budget.limit();
        if bound != u64::MAX {
            metrics::gauge!("smhfs_cache_bound_bytes").set(bound as f64);
        }
        set("smhfs_known_inodes", self.inodes.lock().count());
        let files = self.handles.lock().len();
        let dirs = self.dir_handles.lock().len();
        metrics::gauge!("smhfs_open_handles", "kind" => "file").set(files as f64);
        metrics::gauge!("smhfs_open_handles", "kind" => "dir").set(dirs as f64);
    }
}
