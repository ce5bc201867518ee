//! The registry of live upload tasks' files, and removing the files of
//! tasks that are done (confirmed, aborted, expired) or left by a crash.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;

use super::{load_part_recs, Finished, Loc, PartRec, TaskFiles, TaskShape};
use crate::server::error::SResult;
use crate::server::store::Store;

/// The files of every live upload task.
#[derive(Default)]
pub struct Tasks {
    map: Mutex<HashMap<String, Arc<TaskFiles>>>,
}

impl Tasks {
    /// A task just begun (nothing stored yet).
    pub fn begun(&self, key: &str, shape: TaskShape) {
        self.map.lock().insert(
            key.to_string(),
            Arc::new(TaskFiles::new(key, shape, Vec::new())),
        );
    }

    /// The files of a task, loaded from the database after a restart.
    pub fn get(&self, c: &Connection, key: &str, shape: TaskShape) -> SResult<Arc<TaskFiles>> {
        let mut m = self.map.lock();
        if let Some(t) = m.get(key) {
            return Ok(t.clone());
        }
        let parts = load_part_recs(c, key)?;
        let t = Arc::new(TaskFiles::new(key, shape, parts));
        m.insert(key.to_string(), t.clone());
        Ok(t)
    }

    /// Whether confirming `key` is only a rename: a simple upload whose
    /// hashes were computed while it was received.
    pub fn hashed_simple(&self, key: &str) -> bool {
        let Some(t) = self.map.lock().get(key).cloned() else {
            return false;
        };
        let simple = !t.inner.lock().multipart;
        simple && t.hash.try_lock().is_some_and(|h| h.done.len() == 1)
    }

    /// Forgets a task (confirmed, aborted, expired); running writers and
    /// hashers stop at their next step.
    pub fn remove(&self, key: &str) {
        if let Some(t) = self.map.lock().remove(key) {
            t.kill();
        }
    }
}

/// Removes the files of a task that no longer exists: task blob, fallback
/// files of `parts` and the legacy part directory.
pub fn remove_task_files(store: &Store, key: &str, parts: &[PartRec]) {
    let _ = std::fs::remove_file(store.task_blob(key));
    remove_part_files(store, key, parts, None);
}

fn remove_part_files(store: &Store, key: &str, parts: &[PartRec], keep: Option<&PathBuf>) {
    let mut legacy = false;
    for p in parts {
        match &p.loc {
            Loc::File(f) => {
                let path = store.part_file(f);
                if Some(&path) != keep {
                    let _ = std::fs::remove_file(path);
                }
            }
            Loc::Legacy => legacy = true,
            // Rows go with the task's rows (or become the file's blob).
            Loc::Blob(_) | Loc::Db(_) => {}
        }
    }
    if legacy {
        let _ = std::fs::remove_dir_all(store.upload_dir(key));
    }
}

impl Finished {
    /// After the commit: removes what the blob was not made of.
    pub fn cleanup(&self, store: &Store, key: &str, parts: &[PartRec]) {
        let tb = store.task_blob(key);
        if self.renamed_from.as_ref() != Some(&tb) {
            let _ = std::fs::remove_file(&tb);
        }
        remove_part_files(store, key, parts, self.renamed_from.as_ref());
        for p in parts {
            if let Loc::Db(id) = &p.loc {
                if *id != self.blob {
                    let _ = store.with(|c| {
                        c.prepare_cached("DELETE FROM blobdata WHERE id=?1")?
                            .execute([id])?;
                        Ok(())
                    });
                }
            }
        }
    }
}

/// Removes staging files left by a previous run.
pub fn clean_staging(store: &Store) {
    if let Ok(rd) = std::fs::read_dir(store.dir.join("blobs")) {
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".asm") || name.ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
