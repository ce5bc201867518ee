//! Upload progress: the tracker the uploads update and the typed status
//! report that the control socket, the `user.smhfs.*` attributes and
//! `smhfs status` share (serialised once, parsed back into these types).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::journal::Journal;
use crate::smh::SmhPath;

/// The whole status of a mount (or of a cache directory's journal).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusReport {
    /// Uploads queued or running.
    pub pending: usize,
    #[serde(default)]
    pub write_back: bool,
    #[serde(default)]
    pub cache_used: u64,
    /// Bound on staged bytes (`u64::MAX`: none).
    #[serde(default = "unbounded")]
    pub cache_size: u64,
    pub cache_dir: String,
    pub uploads: Vec<UploadInfo>,
    /// Conflict copies this mount stored (`update_conflict=copy`), oldest
    /// first; the last [`MAX_CONFLICTS`] of them.
    #[serde(default)]
    pub conflicts: Vec<ConflictCopy>,
    /// The daemon's metrics (`name{labels}` -> value, as Prometheus scrapes
    /// them); only in the status socket's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<serde_json::Map<String, serde_json::Value>>,
    /// What the daemon holds in memory for the tree (#15: it follows what
    /// the kernel holds, not what was ever listed).
    #[serde(default)]
    pub memory: MemoryReport,
}

/// The daemon's tree state in memory, as `smhfs status --json` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemoryReport {
    /// Inode-table entries (the root included).
    pub known_inodes: u64,
    /// Directories with a cached listing.
    pub listing_dirs: u64,
    /// Entries across the cached listings.
    pub listing_entries: u64,
    /// Attribute-cache entries (bounded, see `cache.rs`).
    #[serde(default)]
    pub attr_entries: u64,
    /// Server inodes whose path is known (`remoteino.rs`).
    #[serde(default)]
    pub server_inodes: u64,
}

fn unbounded() -> u64 {
    u64::MAX
}

impl StatusReport {
    /// The status of a cache directory's journal, read directly (no mount
    /// running): every listed upload not failed counts as pending.
    pub fn of_cache_dir(cache_dir: &std::path::Path) -> Self {
        let uploads = journal_status(cache_dir);
        Self {
            pending: uploads
                .iter()
                .filter(|u| u.state != UploadState::Failed)
                .count(),
            cache_dir: cache_dir.display().to_string(),
            uploads,
            cache_size: u64::MAX,
            ..Default::default()
        }
    }

    pub fn failed(&self) -> usize {
        self.uploads
            .iter()
            .filter(|u| u.state == UploadState::Failed)
            .count()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    /// Read from a journal on disk: complete, waiting for a mount.
    Journaled,
    /// Read from a journal on disk: still being written at a crash.
    Partial,
    Queued,
    Uploading,
    Retrying,
    Failed,
}

impl std::fmt::Display for UploadState {
    /// The name `smhfs status` prints (the same as in the JSON).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UploadState::Journaled => "journaled",
            UploadState::Partial => "partial",
            UploadState::Queued => "queued",
            UploadState::Uploading => "uploading",
            UploadState::Retrying => "retrying",
            UploadState::Failed => "failed",
        })
    }
}

/// Conflict copies remembered for `smhfs status`.
pub const MAX_CONFLICTS: usize = 100;

/// Our version of a file stored next to it because another client changed
/// the file while it was open here (`fs::lostupdate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictCopy {
    /// The file another client changed (it keeps their version).
    pub path: String,
    /// Where ours is.
    pub copy: String,
    /// When it was stored (RFC 3339, UTC).
    pub time: String,
}

/// One upload as `smhfs status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct UploadInfo {
    pub path: String,
    pub size: u64,
    pub sent: u64,
    pub state: UploadState,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub staged: String,
}

struct Item {
    path: String,
    size: u64,
    sent: Arc<AtomicU64>,
    state: UploadState,
    attempts: u32,
    error: Option<String>,
    staged: String,
}

/// Progress of every upload that is not finished, by journal id.
#[derive(Default)]
pub struct Tracker {
    items: Mutex<HashMap<String, Item>>,
    conflicts: Mutex<std::collections::VecDeque<ConflictCopy>>,
}

impl Tracker {
    pub fn queued(&self, id: &str, path: &SmhPath, size: u64, staged: &std::path::Path) {
        let mut m = self.items.lock();
        let it = m.entry(id.to_string()).or_insert_with(|| Item {
            path: path.to_string(),
            size,
            sent: Arc::new(AtomicU64::new(0)),
            state: UploadState::Queued,
            attempts: 0,
            error: None,
            staged: staged.display().to_string(),
        });
        it.path = path.to_string();
        it.size = size;
        if it.state != UploadState::Uploading {
            it.state = UploadState::Queued;
        }
    }

    /// An attempt starts: returns the sent-bytes counter (reset).
    pub fn start(
        &self,
        id: &str,
        path: &SmhPath,
        size: u64,
        staged: &std::path::Path,
    ) -> Arc<AtomicU64> {
        self.queued(id, path, size, staged);
        let mut m = self.items.lock();
        let it = m.get_mut(id).expect("just inserted");
        it.state = UploadState::Uploading;
        it.attempts += 1;
        it.sent = Arc::new(AtomicU64::new(0));
        it.sent.clone()
    }

    pub fn failed(&self, id: &str, error: String, permanent: bool) {
        if let Some(it) = self.items.lock().get_mut(id) {
            it.state = if permanent {
                UploadState::Failed
            } else {
                UploadState::Retrying
            };
            it.error = Some(error);
        }
    }

    pub fn done(&self, id: &str) {
        self.items.lock().remove(id);
    }

    pub fn get(&self, id: &str) -> Option<UploadInfo> {
        self.items.lock().get(id).map(Self::info)
    }

    fn info(it: &Item) -> UploadInfo {
        UploadInfo {
            path: it.path.clone(),
            size: it.size,
            sent: it.sent.load(Ordering::Relaxed).min(it.size),
            state: it.state,
            attempts: it.attempts,
            error: it.error.clone(),
            staged: it.staged.clone(),
        }
    }

    /// Ours of `path` was stored as `copy`.
    pub fn conflict(&self, path: &SmhPath, copy: &SmhPath) {
        let mut c = self.conflicts.lock();
        if c.len() == MAX_CONFLICTS {
            c.pop_front();
        }
        c.push_back(ConflictCopy {
            path: path.to_string(),
            copy: copy.to_string(),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
    }

    pub fn conflicts(&self) -> Vec<ConflictCopy> {
        self.conflicts.lock().iter().cloned().collect()
    }

    pub fn all(&self) -> Vec<UploadInfo> {
        let mut v: Vec<UploadInfo> = self.items.lock().values().map(Self::info).collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }
}

/// Reads the journal of `cache_dir` directly (the mount is not running).
pub fn journal_status(cache_dir: &std::path::Path) -> Vec<UploadInfo> {
    Journal::new(cache_dir)
        .load()
        .into_iter()
        .map(|e| {
            let size = std::fs::metadata(&e.staged).map(|m| m.len()).unwrap_or(0);
            UploadInfo {
                path: e.path.to_string(),
                size,
                sent: 0,
                state: if e.failed.is_some() {
                    UploadState::Failed
                } else if !e.complete && e.plan.is_none() {
                    UploadState::Partial
                } else {
                    UploadState::Journaled
                },
                attempts: 0,
                error: e.failed,
                staged: e.staged.display().to_string(),
            }
        })
        .collect()
}
