//! Inode numbers <-> paths, with the kernel's lookup counts.
//!
//! SMH has no stable inode numbers we can rely on across renames, so inodes
//! are ours: one per name the kernel holds (or that is open or waiting for
//! its upload), dropped when the kernel forgets it. Listing a directory
//! creates none (see `dirs.rs`), so memory follows what the kernel holds,
//! not what was ever listed.
//!
//! The table is a tree: a node keeps its parent's inode and its own name,
//! never a full path, and `path(ino)` walks up to the root. A directory
//! node stays while a child node does (the kernel holds parents of what it
//! holds anyway; a file waiting for its upload may outlive its parent's
//! lookup). Renames move one node (the subtree follows it), so open
//! handles keep working and the cost is the depth of the two paths, not
//! the number of known inodes.

use std::hash::BuildHasher;

use hashbrown::hash_table::{Entry, HashTable};

use super::packmeta::Name;
use crate::smh::SmhPath;

pub const ROOT_INO: u64 = 1;

/// Parent of a node no longer in the tree (unlinked, or replaced by a
/// rename): it stays for open handles under a name nothing else has.
const DETACHED: u64 = 0;

#[derive(Debug)]
struct Node {
    parent: u64,
    /// Inline when short: one allocation less per node (`packmeta.rs`).
    name: Name,
    lookups: u64,
    /// Child nodes naming this one as parent.
    children: u32,
    /// The slot's generation (see [`Slab`]).
    gen: u32,
}

/// A slot of the slab: a node, or free with the generation its next node
/// gets.
#[derive(Debug)]
enum Slot {
    Used(Node),
    Free { gen: u32 },
}

/// The nodes, in slots of one vector. An inode number is its slot (+1)
/// with the slot's generation in the high half, so a number is never
/// handed out twice while slots are reused. A hash map from number to
/// node costs about twice as much per node (its load factor and its
/// power-of-two growth), which at a million known inodes is the biggest
/// item in the daemon's memory (issue 15, W7).
#[derive(Debug, Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

/// Generations stay below this, so inode numbers keep the top bit clear
/// (`dirs.rs` uses it for names no inode exists for).
const GEN_LIMIT: u32 = 1 << 31;

impl Slab {
    fn ino(slot: u32, gen: u32) -> u64 {
        (u64::from(gen) << 32) | (u64::from(slot) + 1)
    }

    fn slot_of(ino: u64) -> Option<(u32, u32)> {
        let low = (ino & 0xffff_ffff).checked_sub(1)?;
        Some((low as u32, (ino >> 32) as u32))
    }

    fn get(&self, ino: u64) -> Option<&Node> {
        let (slot, gen) = Self::slot_of(ino)?;
        match self.slots.get(slot as usize)? {
            Slot::Used(n) if n.gen == gen => Some(n),
            _ => None,
        }
    }

    fn get_mut(&mut self, ino: u64) -> Option<&mut Node> {
        let (slot, gen) = Self::slot_of(ino)?;
        match self.slots.get_mut(slot as usize)? {
            Slot::Used(n) if n.gen == gen => Some(n),
            _ => None,
        }
    }

    /// The node in `slot` and its inode number (the index holds slots).
    fn at(&self, slot: u32) -> Option<(u64, &Node)> {
        match self.slots.get(slot as usize)? {
            Slot::Used(n) => Some((Self::ino(slot, n.gen), n)),
            Slot::Free { .. } => None,
        }
    }

    /// Stores a node (its `gen` is set here); returns its slot and number.
    fn insert(&mut self, mut node: Node) -> (u32, u64) {
        self.live += 1;
        // The free list holds only free slots.
        if let Some(slot) = self.free.pop() {
            if let Some(s) = self.slots.get_mut(slot as usize) {
                if let Slot::Free { gen } = *s {
                    node.gen = gen;
                    *s = Slot::Used(node);
                    return (slot, Self::ino(slot, gen));
                }
            }
        }
        let slot = self.slots.len() as u32;
        node.gen = 0;
        self.slots.push(Slot::Used(node));
        (slot, Self::ino(slot, 0))
    }

    fn remove(&mut self, ino: u64) {
        let Some((slot, gen)) = Self::slot_of(ino) else {
            return;
        };
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if matches!(s, Slot::Used(n) if n.gen == gen) {
            self.live -= 1;
            let next = gen + 1;
            *s = Slot::Free { gen: next };
            // A slot whose generations ran out is retired, never reused.
            if next < GEN_LIMIT {
                self.free.push(slot);
            }
        }
    }
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
    /// The mounted directory (the root node's path).
    root: SmhPath,
    nodes: Slab,
    /// Slots of attached nodes by (parent, name), hashed from the node
    /// itself so a name is stored once.
    index: HashTable<u32>,
    hasher: std::collections::hash_map::RandomState,
}

impl InodeTable {
    pub fn new(root: SmhPath) -> Self {
        let mut nodes = Slab::default();
        let (_, ino) = nodes.insert(Node {
            parent: DETACHED,
            name: "".into(),
            lookups: 1,
            children: 0,
            gen: 0,
        });
        debug_assert_eq!(ino, ROOT_INO);
        Self {
            root,
            nodes,
            index: HashTable::new(),
            hasher: Default::default(),
        }
    }

    /// Inodes known (the root included).
    pub fn count(&self) -> usize {
        self.nodes.live
    }

    fn hash(&self, parent: u64, name: &str) -> u64 {
        self.hasher.hash_one((parent, name))
    }

    /// The index's hash of the node in `slot` (for its rehashing).
    fn slot_hash(nodes: &Slab, hasher: &std::collections::hash_map::RandomState, slot: u32) -> u64 {
        nodes
            .at(slot)
            .map_or(0, |(_, n)| hasher.hash_one((n.parent, &*n.name)))
    }

    /// Whether the node in `slot` is the child `name` of `parent`.
    fn is_child(nodes: &Slab, slot: u32, parent: u64, name: &str) -> bool {
        nodes
            .at(slot)
            .is_some_and(|(_, n)| n.parent == parent && &*n.name == name)
    }

    /// The child `name` of `parent`, if known.
    pub fn child(&self, parent: u64, name: &str) -> Option<u64> {
        let nodes = &self.nodes;
        let slot = self.index.find(self.hash(parent, name), |&s| {
            Self::is_child(nodes, s, parent, name)
        })?;
        nodes.at(*slot).map(|(ino, _)| ino)
    }

    pub fn path(&self, ino: u64) -> Option<SmhPath> {
        let mut names: Vec<&str> = Vec::new();
        let mut at = ino;
        loop {
            if at == ROOT_INO {
                let mut segs = self.root.segments().to_vec();
                segs.extend(names.iter().rev().map(|s| s.to_string()));
                return Some(SmhPath::from_segments(segs).unwrap_or_default());
            }
            let n = self.nodes.get(at)?;
            if n.parent == DETACHED {
                let mut segs = unlinked_path(at).segments().to_vec();
                segs.extend(names.iter().rev().map(|s| s.to_string()));
                return Some(SmhPath::from_segments(segs).unwrap_or_default());
            }
            names.push(&n.name);
            at = n.parent;
        }
    }

    /// The names of `path` below the mounted directory (`None`: outside).
    fn rel<'p>(&self, path: &'p SmhPath) -> Option<&'p [String]> {
        path.starts_with(&self.root)
            .then(|| &path.segments()[self.root.segments().len()..])
    }

    pub fn ino_of(&self, path: &SmhPath) -> Option<u64> {
        let mut at = ROOT_INO;
        for name in self.rel(path)? {
            at = self.child(at, name)?;
        }
        Some(at)
    }

    /// The child `name` of `parent`, created (with no lookups) if needed.
    fn child_or_insert(&mut self, parent: u64, name: &str) -> u64 {
        let h = self.hash(parent, name);
        let nodes = &self.nodes;
        let hasher = &self.hasher;
        let entry = self.index.entry(
            h,
            |&s| Self::is_child(nodes, s, parent, name),
            |&s| Self::slot_hash(nodes, hasher, s),
        );
        match entry {
            Entry::Occupied(e) => {
                let slot = *e.get();
                nodes.at(slot).map_or(DETACHED, |(ino, _)| ino)
            }
            Entry::Vacant(e) => {
                let (slot, ino) = self.nodes.insert(Node {
                    parent,
                    name: name.into(),
                    lookups: 0,
                    children: 0,
                    gen: 0,
                });
                // `entry` reserved the room: no rehash reads the slab.
                e.insert(slot);
                if let Some(p) = self.nodes.get_mut(parent) {
                    p.children += 1;
                }
                ino
            }
        }
    }

    /// Indexes the (attached) node in `slot` under hash `h`.
    fn index_slot(&mut self, h: u64, slot: u32) {
        let nodes = &self.nodes;
        let hasher = &self.hasher;
        self.index
            .insert_unique(h, slot, |&s| Self::slot_hash(nodes, hasher, s));
    }

    /// The inode for `path`, created if needed (with its parents); counts
    /// one kernel lookup when `count` (replies that hand an entry to the
    /// kernel). An inode created without a count must be pinned by the
    /// caller (an open file) or released with `forget(ino, 0, ..)`.
    pub fn lookup(&mut self, path: &SmhPath, count: bool) -> u64 {
        let Some(rel) = self.rel(path) else {
            // Outside the mount: nothing the kernel can name.
            return ROOT_INO;
        };
        let rel = rel.to_vec();
        let mut at = ROOT_INO;
        for name in &rel {
            at = self.child_or_insert(at, name);
        }
        if count {
            if let Some(n) = self.nodes.get_mut(at) {
                n.lookups += 1;
            }
        }
        at
    }

    /// Drops `n` lookups; the inode goes away when none remain, no child
    /// is known and it is not `pinned` (e.g. a file still open or waiting
    /// for its upload). `n == 0` releases an inode that is no longer pinned.
    pub fn forget(&mut self, ino: u64, n: u64, pinned: bool) {
        let Some(node) = self.nodes.get_mut(ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if !pinned {
            self.remove_unused(ino);
        }
    }

    /// Removes `ino` if nothing holds it, then its parents likewise.
    fn remove_unused(&mut self, mut ino: u64) {
        while ino != ROOT_INO {
            match self.nodes.get(ino) {
                Some(n) if n.lookups == 0 && n.children == 0 => {}
                _ => return,
            }
            let parent = self.detach(ino);
            self.nodes.remove(ino);
            match parent {
                Some(p) => ino = p,
                None => return,
            }
        }
    }

    /// Takes `ino` out of its parent (it keeps its name); returns the
    /// parent it had.
    fn detach(&mut self, ino: u64) -> Option<u64> {
        let n = self.nodes.get(ino)?;
        if n.parent == DETACHED {
            return None;
        }
        let (parent, h) = (n.parent, self.hash(n.parent, &n.name));
        let (slot, _) = Slab::slot_of(ino)?;
        if let Ok(e) = self.index.find_entry(h, |&s| s == slot) {
            e.remove();
        }
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children = p.children.saturating_sub(1);
        }
        if let Some(n) = self.nodes.get_mut(ino) {
            n.parent = DETACHED;
        }
        Some(parent)
    }

    /// Takes `ino` out of the tree for good: its path is gone. Its parents
    /// go too if nothing else holds them; it stays while held.
    fn unlink_ino(&mut self, ino: u64) {
        if ino == ROOT_INO {
            return;
        }
        if let Some(parent) = self.detach(ino) {
            self.remove_unused(parent);
        }
    }

    /// Moves `from` (and so everything below it) to `to`. An inode already
    /// at `to` (the replaced target) loses its path.
    pub fn rename(&mut self, from: &SmhPath, to: &SmhPath) {
        if let Some(old) = self.ino_of(to) {
            self.unlink_ino(old);
        }
        let Some(ino) = self.ino_of(from).filter(|i| *i != ROOT_INO) else {
            return;
        };
        let (Some(parent), Some(name)) = (to.parent(), to.name()) else {
            return;
        };
        if self.rel(&parent).is_none() {
            // Moved out of the mount: gone from here.
            self.unlink_ino(ino);
            return;
        }
        // The new parent first (it may be created), so the old one cannot
        // be released while it is also the new one.
        let new_parent = self.lookup(&parent, false);
        if let Some(p) = self.nodes.get_mut(new_parent) {
            p.children += 1;
        }
        let old_parent = self.detach(ino);
        if let Some(n) = self.nodes.get_mut(ino) {
            n.parent = new_parent;
            n.name = name.into();
        }
        let h = self.hash(new_parent, name);
        if let Some((slot, _)) = Slab::slot_of(ino) {
            self.index_slot(h, slot);
        }
        if let Some(p) = old_parent {
            self.remove_unused(p);
        }
    }

    /// The path is gone on the server; its inode stays for open handles.
    pub fn unlink(&mut self, path: &SmhPath) {
        if let Some(ino) = self.ino_of(path) {
            self.unlink_ino(ino);
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
        assert!(t.path(a).is_some(), "a child still names it");
        t.forget(ab, 1, true);
        assert!(t.path(ab).is_some(), "pinned");
        t.forget(ab, 0, false);
        assert!(t.path(ab).is_none());
        assert!(t.path(a).is_none(), "released with its last child");
        assert_eq!(t.count(), 1);
    }

    #[test]
    fn rename_over_existing_unlinks_target() {
        let mut t = InodeTable::new(SmhPath::root());
        let a = t.lookup(&p("a"), true);
        let b = t.lookup(&p("b"), true);
        t.rename(&p("a"), &p("b"));
        assert_eq!(t.ino_of(&p("b")), Some(a));
        assert_ne!(t.path(b).unwrap(), p("b"));
        t.forget(b, 1, false);
        assert!(t.path(b).is_none());
        assert_eq!(t.count(), 2);
    }

    #[test]
    fn subtree_rename_moves_one_node() {
        let mut t = InodeTable::new(p("media"));
        let deep = t.lookup(&p("media/x/y/z/f"), true);
        let y = t.ino_of(&p("media/x/y")).unwrap();
        assert_eq!(t.count(), 5, "root, x, y, z, f");
        t.rename(&p("media/x/y"), &p("media/q/y2"));
        assert_eq!(t.path(deep).unwrap(), p("media/q/y2/z/f"));
        assert_eq!(t.ino_of(&p("media/q/y2/z/f")), Some(deep));
        assert_eq!(t.ino_of(&p("media/x/y/z/f")), None);
        assert_eq!(t.path(y).unwrap(), p("media/q/y2"));
        // `x` only held y: it went with the move.
        assert_eq!(t.ino_of(&p("media/x")), None);
        t.forget(deep, 1, false);
        assert_eq!(t.count(), 1, "the whole chain is released");
        assert_eq!(t.ino_of(&p("media")), Some(ROOT_INO));
        assert_eq!(t.ino_of(&p("other")), None);
    }

    #[test]
    fn unlinked_keeps_handles_and_never_aliases() {
        let mut t = InodeTable::new(SmhPath::root());
        let d = t.lookup(&p("d"), true);
        let f = t.lookup(&p("d/f"), true);
        t.unlink(&p("d/f"));
        assert_eq!(t.ino_of(&p("d/f")), None);
        let path = t.path(f).unwrap();
        assert!(path.segments()[0].starts_with(".smhfs-unlinked-"));
        let f2 = t.lookup(&p("d/f"), true);
        assert_ne!(f, f2);
        assert_eq!(t.path(f2).unwrap(), p("d/f"));
        t.forget(f, 1, false);
        assert!(t.path(f).is_none());
        assert_eq!(t.path(d).unwrap(), p("d"));
    }

    #[test]
    fn a_reused_slot_gets_a_new_number() {
        let mut t = InodeTable::new(SmhPath::root());
        let a = t.lookup(&p("a"), true);
        t.forget(a, 1, false);
        let b = t.lookup(&p("b"), true);
        assert_ne!(a, b, "numbers are not handed out twice");
        assert_eq!(a & 0xffff_ffff, b & 0xffff_ffff, "the slot is reused");
        assert!(t.path(a).is_none(), "the old number names nothing");
        t.forget(a, 1, false);
        assert_eq!(
            t.path(b).unwrap(),
            p("b"),
            "forgetting the old number is a no-op"
        );
        assert_eq!(b >> 63, 0, "top bit stays clear");
    }

    #[test]
    fn a_node_costs_one_slot() {
        // The W7 memory budget (issue 15) assumes this.
        assert!(std::mem::size_of::<Slot>() <= 48);
    }

    #[test]
    fn many_names_many_forgets() {
        let mut t = InodeTable::new(SmhPath::root());
        let inos: Vec<u64> = (0..2000)
            .map(|i| t.lookup(&p(&format!("dir{}/f{i}", i % 10)), true))
            .collect();
        assert_eq!(t.count(), 1 + 10 + 2000);
        for (i, ino) in inos.iter().enumerate() {
            assert_eq!(t.ino_of(&p(&format!("dir{}/f{i}", i % 10))), Some(*ino));
            t.forget(*ino, 1, false);
        }
        assert_eq!(t.count(), 1);
    }
}
