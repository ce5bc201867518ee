//! The upload journal: one small JSON file per staged file whose content
//! is not on the server yet, `CACHE_DIR/staged-XXXX.journal` next to the
//! staged file `CACHE_DIR/staged-XXXX` (so an idle cache directory is empty).
//!
//! An entry is written when a staged file first becomes dirty (no plan: the
//! upload has not begun) and again, with the [`UploadPlan`] (path, size,
//! hashes, CRC-64, confirmKey, part size), once the server handed out the
//! upload ticket and before the first part is sent. It is removed only after
//! the server confirmed the upload. Every write is atomic and durable:
//! temp file + fsync + rename + fsync of the directory, so after a crash an
//! entry is either the old or the new one, never half of one.
//!
//! A small file held in memory (`memstage.rs`) has no entry until it moves
//! to a staged file (it grew, or its upload failed).
//!
//! At mount (and with `smhfs resume`) every entry is continued: with a plan,
//! the server's `?upload` status says which parts it holds and only the
//! missing ones are sent; without, the staged file is uploaded from scratch.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::cachedir;

use crate::smh::types::MetaData;
use crate::smh::{ConflictStrategy, SmhPath, UploadPlan};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalEntry {
    /// File name of the staged file (unique within the cache directory).
    pub id: String,
    pub library: String,
    pub space: String,
    /// Where the content goes, in the space (not relative to the mount).
    pub path: SmhPath,
    pub staged: PathBuf,
    pub strategy: ConflictStrategy,
    #[serde(default)]
    pub mtime: Option<SystemTime>,
    /// Mode/owner to store with the content (`fs::posix`).
    #[serde(default, skip_serializing_if = "MetaData::is_empty")]
    pub meta: MetaData,
    /// Known once the upload began: resume sends only missing parts.
    #[serde(default)]
    pub plan: Option<UploadPlan>,
    /// Set when the upload failed for good (e.g. EEXIST with conflict=ask);
    /// such entries are shown by `smhfs status` and not retried
    /// automatically (`smhfs resume --retry-failed` does).
    #[serde(default)]
    pub failed: Option<String>,
    /// The content is as of a close(), fsync() or truncate(2): complete.
    /// An entry written while the file was still being written (the
    /// daemon died before the close) is not uploaded on its own: that
    /// would store a truncated file (`smhfs resume --retry-failed` does).
    #[serde(default)]
    pub complete: bool,
    /// A streamed upload (a file larger than the cache, sent while it was
    /// written): its sent parts are only on the server, so the staged file
    /// has holes there and is never uploaded from scratch. Not complete at
    /// resume: the task is aborted (a file never closed is not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamRecord>,
}

/// The streamed task of a [`JournalEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    pub confirm_key: String,
    pub part_size: u64,
    /// Parts the server accepted (1..=parts_sent).
    pub parts_sent: u32,
}

/// The journal directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    /// fsync entries and their directory. Needed where `close()` acknowledges
    /// data before the server has it (write-back): it must then survive power
    /// loss. In close-synchronous mode nothing is acknowledged before the
    /// server confirmed, and an atomic rename already survives a daemon crash
    /// (the page cache outlives the process), so the fsyncs would only cost
    /// (about 2 ms per small file).
    durable: bool,
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Journal {
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            dir: cache_dir.to_path_buf(),
            durable: true,
        }
    }

    /// Whether entries are fsynced (see the field).
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.journal"))
    }

    fn ensure_dir(&self) -> std::io::Result<()> {
        if !self.dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)?;
            if let Some(parent) = self.dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Writes (or replaces) `e` atomically and durably.
    pub fn write(&self, e: &JournalEntry) -> std::io::Result<()> {
        self.ensure_dir()?;
        let json = serde_json::to_vec_pretty(e).map_err(std::io::Error::other)?;
        let tmp = self.dir.join(format!(".{}.journal.tmp", e.id));
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&json)?;
            if self.durable {
                f.sync_all()?;
            }
            std::fs::rename(&tmp, self.file(&e.id))?;
            if self.durable {
                sync_dir(&self.dir)?;
            }
            Ok(())
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    /// Removes the entry (after a confirmed upload, or a deleted file).
    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.file(id)) {
            Ok(()) if self.durable => sync_dir(&self.dir),
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn get(&self, id: &str) -> Option<JournalEntry> {
        self.read_trusted(&self.file(id)).ok()
    }

    /// Reads one entry under the rules of [`super::cachedir`]: the entry
    /// and its staged file are ours and inside the directory (`staged` is
    /// returned as a path inside it).
    fn read_trusted(&self, p: &Path) -> Result<JournalEntry, String> {
        let b = cachedir::read_entry(p).map_err(|e| format!("entry {e}"))?;
        let mut e: JournalEntry = serde_json::from_slice(&b).map_err(|e| e.to_string())?;
        e.staged = cachedir::staged_in(&self.dir, &e.staged)
            .map_err(|why| format!("its staged file {} {why}", e.staged.display()))?;
        Ok(e)
    }

    /// How many entries there are (not read: for the gauge).
    pub fn count(&self) -> usize {
        std::fs::read_dir(&self.dir).map_or(0, |rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
                .count()
        })
    }

    /// All entries; leftover temp files are removed, unreadable or
    /// untrusted entries are logged and skipped (never deleted: a human may
    /// want them).
    pub fn load(&self) -> Vec<JournalEntry> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ent in rd.flatten() {
            let p = ent.path();
            let name = ent.file_name().to_string_lossy().to_string();
            if name.starts_with('.') && name.ends_with(".journal.tmp") {
                let _ = std::fs::remove_file(&p);
                continue;
            }
            if !name.ends_with(".journal") {
                continue;
            }
            match self.read_trusted(&p) {
                Ok(e) => out.push(e),
                Err(e) => tracing::error!(
                    entry = %p.display(),
                    "journal entry skipped (not uploaded, not deleted): {e}"
                ),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

/// An exclusive `flock` on the cache directory itself, held for the life
/// of the process: two daemons (or a mount and `smhfs resume`) must not
/// continue the same journal.
pub fn lock_cache_dir(cache_dir: &Path) -> Result<File, String> {
    use std::os::fd::AsRawFd;
    let f = File::open(cache_dir)
        .map_err(|e| format!("cannot open cache_dir {}: {e}", cache_dir.display()))?;
    // SAFETY: flock takes no pointers; `f` keeps the descriptor open.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "cache_dir {} is in use by another smhfs process (mount or resume); give each mount its own cache_dir",
            cache_dir.display()
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_cache_dir(dir.path()).unwrap();
        assert!(lock_cache_dir(dir.path()).unwrap_err().contains("in use"));
        drop(held);
        lock_cache_dir(dir.path()).unwrap();
    }

    #[test]
    fn write_replace_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        assert!(j.load().is_empty());
        let mut e = JournalEntry {
            id: "staged-abc".into(),
            library: "lib".into(),
            space: "-".into(),
            path: SmhPath::parse("a/b.txt").unwrap(),
            staged: dir.path().join("staged-abc"),
            strategy: ConflictStrategy::Overwrite,
            mtime: Some(SystemTime::now()),
            meta: Default::default(),
            plan: None,
            failed: None,
            complete: false,
            stream: None,
        };
        j.write(&e).unwrap();
        e.failed = Some("x".into());
        j.write(&e).unwrap();
        let all = j.load();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].failed.as_deref(), Some("x"));
        assert_eq!(all[0].path.to_string(), "a/b.txt");
        std::fs::write(j.dir().join(".x.journal.tmp"), b"half").unwrap();
        assert_eq!(j.load().len(), 1);
        assert!(!j.dir().join(".x.journal.tmp").exists());
        j.remove("staged-abc").unwrap();
        j.remove("staged-abc").unwrap();
        assert!(j.load().is_empty());
    }
}
