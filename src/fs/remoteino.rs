//! Server inodes → paths, learned from listings and `?info`, so the change
//! feed's entries can be placed (`follow.rs`) and native links resolved
//! (`links.rs`). Directories are kept while the mount runs (a feed entry
//! names its parent directory's inode); files only as the most recent
//! [`FILES_KEPT`]: a feed entry about a file is placed by its parent and
//! name, and listing a huge tree must not keep a path per file.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;

use crate::smh::SmhPath;

/// Files remembered at most (as many as the attribute cache holds).
pub const FILES_KEPT: usize = 100_000;

pub struct RemoteInodes {
    dirs: HashMap<String, SmhPath>,
    files: LruCache<String, SmhPath>,
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
        if is_dir {
            self.files.pop(&inode);
            self.dirs.insert(inode, path);
        } else if let Some(p) = self.dirs.get_mut(&inode) {
            // Known as a directory (a link's target is inserted as a file).
            *p = path;
        } else {
            self.files.put(inode, path);
        }
    }

    pub fn get(&self, inode: &str) -> Option<&SmhPath> {
        self.dirs.get(inode).or_else(|| self.files.peek(inode))
    }

    pub fn remove(&mut self, inode: &str) {
        self.dirs.remove(inode);
        self.files.pop(inode);
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&SmhPath) -> bool) {
        self.dirs.retain(|_, p| keep(p));
        let gone: Vec<String> = self
            .files
            .iter()
            .filter(|(_, p)| !keep(p))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.files.pop(&k);
        }
    }

    /// Every path known.
    pub fn paths(&self) -> Vec<SmhPath> {
        self.dirs
            .values()
            .chain(self.files.iter().map(|(_, p)| p))
            .cloned()
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
        assert_eq!(m.get("d"), Some(&p("d")));
        assert!(m.get("f0").is_none(), "the oldest file went");
        assert!(m.get(&format!("f{}", FILES_KEPT + 9)).is_some());
        m.retain(|q| !q.starts_with(&p("d")));
        assert!(m.paths().is_empty());
    }
}
