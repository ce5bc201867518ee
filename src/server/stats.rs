//! Request counters for `GET /__stats`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Every operation name `/__stats` reports.
pub const OPS: &[&str] = &[
    "token_create",
    "token_renew",
    "token_delete",
    "dir_list",
    "dir_info",
    "dir_head",
    "dir_create",
    "dir_delete",
    "dir_move",
    "dir_copy",
    "file_info",
    "file_head",
    "file_download",
    "file_delete",
    "file_move",
    "file_copy",
    "file_symlink",
    "inode_info",
    "upload_begin",
    "upload_confirm",
    "upload_status",
    "upload_renew",
    "upload_abort",
    "part_put",
    "object_put",
    "object_get",
    "usage",
    "space_size",
    "space_create",
    "space_list",
    "space_delete",
    "quota",
    "recycled_list",
    "batch_delete",
    "batch_move",
    "batch_copy",
    "task_query",
];

#[derive(Default)]
pub struct Stats {
    requests: Mutex<BTreeMap<&'static str, u64>>,
    pub part_bytes: AtomicU64,
    pub instant_upload_hits: AtomicU64,
    pub object_bytes_served: AtomicU64,
}

impl Stats {
    /// Counts one request of `name`, which also becomes the `op` label of
    /// the request's metrics ([`super::telemetry`]).
    pub fn op(&self, name: &'static str) {
        *self.requests.lock().entry(name).or_insert(0) += 1;
        super::telemetry::name_request(name);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.requests.lock().clear();
        self.part_bytes.store(0, Ordering::Relaxed);
        self.instant_upload_hits.store(0, Ordering::Relaxed);
        self.object_bytes_served.store(0, Ordering::Relaxed);
    }

    pub fn json(&self) -> serde_json::Value {
        let req = self.requests.lock();
        let mut map = serde_json::Map::new();
        for op in OPS {
            map.insert(
                op.to_string(),
                serde_json::Value::from(req.get(op).copied().unwrap_or(0)),
            );
        }
        serde_json::json!({
            "requests": map,
            "part_bytes": self.part_bytes.load(Ordering::Relaxed),
            "instant_upload_hits": self.instant_upload_hits.load(Ordering::Relaxed),
            "object_bytes_served": self.object_bytes_served.load(Ordering::Relaxed),
        })
    }
}
