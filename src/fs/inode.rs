//! Inode numbers <-> paths, with the kernel's lookup counts.
//!
//! SMH has no stable inode numbers we can rely on across renames, so inodes
//! are ours: one per path the kernel knows about, dropped when the kernel
//! forgets it. Renames move the path (and every path below it) in place, so
//! open handles keep working.

use std::collections::HashMap;

use crate::smh::SmhPath;

pub const ROOT_INO: u64 = 1;

#[derive(Debug)]
struct Node {
    path: SmhPath,
    lookups: u64,
}

/// An inode number as the core hands it out (the kernel's node id); the
/// adapter converts to and from fuser's types at the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InodeNo(pub u64);

impl InodeNo {
    pub const ROOT: InodeNo = InodeNo(ROOT_INO);
}

/// An open file or directory handle as the core hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileHandle(pub u64);

#[derive(Debug)]
pub struct InodeTable {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<SmhPath, u64>,
    next: u64,
}

impl InodeTable {
    pub fn new(root: SmhPath) -> Self {
        let mut t = Self {
            nodes: HashMap::new(),
            by_path: HashMap::new(),
            next: ROOT_INO + 1,
        };
        t.by_path.insert(root.clone(), ROOT_INO);
        t.nodes.insert(
            ROOT_INO,
            Node {
                path: root,
                lookups: 1,
            },
        );
        t
    }

    /// Inodes known (the root included).
    pub fn count(&self) -> usize {
        self.nodes.len()
    }

    pub fn path(&self, ino: u64) -> Option<SmhPath> {
        self.nodes.get(&ino).map(|n| n.path.clone())
    }

    pub fn ino_of(&self, path: &SmhPath) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// The inode for `path`, created if needed; counts one kernel lookup
    /// when `count` (replies that hand an entry to the kernel).
    pub fn lookup(&mut self, path: &SmhPath, count: bool) -> u64 {
        let ino = match self.by_path.get(path) {
            Some(i) => *i,
            None => {
                let ino = self.next;
                self.next += 1;
                self.by_path.insert(path.clone(), ino);
                self.nodes.insert(
                    ino,
                    Node {
                        path: path.clone(),
                        lookups: 0,
                    },
                );
                ino
            }
        };
        if count {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.lookups += 1;
            }
        }
        ino
    }

    /// Drops `n` lookups; the inode goes away when none remain (unless
    /// `pinned`, e.g. a file still open).
    pub fn forget(&mut self, ino: u64, n: u64, pinned: bool) {
        if ino == ROOT_INO {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 && !pinned {
            let path = node.path.clone();
            self.nodes.remove(&ino);
            if self.by_path.get(&path) == Some(&ino) {
                self.by_path.remove(&path);
            }
        }
    }

    /// Moves `from` and everything below it to `to`. An inode already at
    /// `to` (the replaced target) loses its path.
    pub fn rename(&mut self, from: &SmhPath, to: &SmhPath) {
        if let Some(old) = self.by_path.remove(to) {
            // The replaced inode stays valid for open handles but is unlinked.
            if let Some(n) = self.nodes.get_mut(&old) {
                n.path = unlinked_path(old);
            }
        }
        let moved: Vec<(SmhPath, u64)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, ino) in moved {
            self.by_path.remove(&p);
            let rest = &p.segments()[from.segments().len()..];
            let mut segs = to.segments().to_vec();
            segs.extend(rest.iter().cloned());
            let Ok(np) = SmhPath::from_segments(segs) else {
                continue;
            };
            self.by_path.insert(np.clone(), ino);
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.path = np;
            }
        }
    }

    /// The path is gone on the server; its inode stays for open handles.
    pub fn unlink(&mut self, path: &SmhPath) {
        if let Some(ino) = self.by_path.remove(path) {
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.path = unlinked_path(ino);
            }
        }
    }
}

/// A path no server entry can have (names cannot contain NUL), so an
/// unlinked inode never aliases a live one.
fn unlinked_path(ino: u64) -> SmhPath {
    SmhPath::from_segments(vec![format!(".smhfs-unlinked-{ino}")]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SmhPath {
        SmhPath::parse(s).unwrap()
    }

    #[test]
    fn lookup_forget_rename() {
        let mut t = InodeTable::new(SmhPath::root());
        let a = t.lookup(&p("a"), true);
        let ab = t.lookup(&p("a/b"), true);
        assert_eq!(t.lookup(&p("a"), true), a);
        t.rename(&p("a"), &p("z"));
        assert_eq!(t.path(ab).unwrap(), p("z/b"));
        assert_eq!(t.ino_of(&p("z")), Some(a));
        assert_eq!(t.ino_of(&p("a")), None);
        t.forget(a, 1, false);
        assert!(t.path(a).is_some());
        t.forget(a, 1, false);
        assert!(t.path(a).is_none());
        t.forget(ab, 1, true);
        assert!(t.path(ab).is_some());
    }

    #[test]
    fn rename_over_existing_unlinks_target() {
        let mut t = InodeTable::new(SmhPath::root());
        let a = t.lookup(&p("a"), true);
        let b = t.lookup(&p("b"), true);
        t.rename(&p("a"), &p("b"));
        assert_eq!(t.ino_of(&p("b")), Some(a));
        assert_ne!(t.path(b).unwrap(), p("b"));
    }
}
