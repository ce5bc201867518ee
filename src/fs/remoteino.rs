//! Server inodes → paths, learned from listings and `?info`, so the change
//! feed's entries can be placed (`follow.rs`) and native links resolved
//! (`links.rs`). Directories are kept while the mount runs (a feed entry
//! names its parent directory's inode); files only as the most recent
//! [`FILES_KEPT`]: a feed entry about a file is placed by its parent and
//! name, and listing a huge tree must not keep a path per file. Inodes
//! and paths are kept boxed ([`PathKey`]): one allocation each.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;

use super::packmeta::PathKey;
use crate::smh::SmhPath;

/// Files remembered at most. Only a native link's `st_size` before its
/// first readlink needs a file's path (its target's, if listed recently);
/// at 100,000 (the attribute cache's bound) they were ~17 MB of a
/// 200,000-entry `ls -l` (issue 15, W8).
pub const FILES_KEPT: usize = 10_000;

pub struct RemoteInodes {
    dirs: HashMap<Box<str>, PathKey>,
    files: LruCache<Box<str>, PathKey>,
}

impl Default for RemoteInodes {
    fn default() -> Self {
        Self {
            dirs: HashMap::new(),
            files: LruCache::new(NonZeroUsize::new(FILES_KEPT).unwrap_or(NonZeroUsize::MIN)),
        }
    }
}

impl RemoteInodes {
    pub fn insert(&mut self, inode: String, path: SmhPath, is_dir: bool) {
        let path = PathKey::of(&path);
        if is_dir {
            self.files.pop(inode.as_str());
            self.dirs.insert(inode.into(), path);
        } else if let Some(p) = self.dirs.get_mut(inode.as_str()) {
            // Known as a directory (a link's target is inserted as a file).
            *p = path;
        } else {
            self.files.put(inode.into(), path);
        }
    }

    pub fn get(&self, inode: &str) -> Option<SmhPath> {
        self.dirs
            .get(inode)
            .or_else(|| self.files.peek(inode))
            .map(PathKey::path)
    }

    pub fn remove(&mut self, inode: &str) {
        self.dirs.remove(inode);
        self.files.pop(inode);
    }

    /// Keeps only the entries `keep` says yes to (by key: no path is
    /// rebuilt per entry).
    pub fn retain(&mut self, mut keep: impl FnMut(&PathKey) -> bool) {
        self.dirs.retain(|_, p| keep(p));
        let gone: Vec<Box<str>> = self
            .files
            .iter()
            .filter(|(_, p)| !keep(p))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.files.pop(&k);
        }
    }

    /// Inodes known (directories and files).
    pub fn count(&self) -> usize {
        self.dirs.len() + self.files.len()
    }

    /// Every path known.
    pub fn paths(&self) -> Vec<SmhPath> {
        self.dirs
            .values()
            .chain(self.files.iter().map(|(_, p)| p))
            .map(PathKey::path)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_kept_files_bounded() {
        let mut m = RemoteInodes::default();
        let p = |s: &str| SmhPath::parse(s).unwrap();
        m.insert("d".into(), p("d"), true);
        for i in 0..FILES_KEPT + 10 {
            m.insert(format!("f{i}"), p(&format!("d/f{i}")), false);
        }
        assert_eq!(m.get("d"), Some(p("d")));
        assert!(m.get("f0").is_none(), "the oldest file went");
        assert!(m.get(&format!("f{}", FILES_KEPT + 9)).is_some());
        let d = PathKey::of(&p("d"));
        m.retain(|q| !q.within(&d));
        assert!(m.paths().is_empty());
    }
}
