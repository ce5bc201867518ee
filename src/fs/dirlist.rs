//! One directory's complete listing as the listing cache keeps it: the
//! entries in server order, indexed by name (each name stored once), so a
//! lookup answered from the listing and our own creates and removals cost
//! one hash probe, not a scan of the directory.

use std::hash::BuildHasher;

use hashbrown::hash_table::{Entry, HashTable};

/// Generic over what an entry carries (the cache keeps `Meta`), so this
/// module depends on nothing else in the crate.
#[derive(Debug, Clone)]
pub struct DirList<M> {
    /// Names boxed (16 bytes, not a `String`'s 24: no spare capacity).
    entries: Vec<(Box<str>, M)>,
    /// Positions in `entries`, hashed by the entry's name.
    index: HashTable<usize>,
    hasher: std::collections::hash_map::RandomState,
}

impl<M> Default for DirList<M> {
    fn default() -> Self {
        DirList {
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: Default::default(),
        }
    }
}

impl<M> DirList<M> {
    /// A listing from the server's entries (a repeated name keeps its last).
    pub fn new(entries: Vec<(String, M)>) -> Self {
        let mut l = DirList {
            entries: Vec::with_capacity(entries.len()),
            ..Default::default()
        };
        for (name, meta) in entries {
            l.upsert(&name, meta);
        }
        l
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, (Box<str>, M)> {
        self.entries.iter()
    }

    /// Entries `from..from + n` (fewer at the end).
    pub fn slice(&self, from: usize, n: usize) -> &[(Box<str>, M)] {
        let from = from.min(self.entries.len());
        &self.entries[from..(from + n).min(self.entries.len())]
    }

    fn slot(&self, name: &str) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(self.hasher.hash_one(name), |i| &*entries[*i].0 == name)
            .copied()
    }

    pub fn get(&self, name: &str) -> Option<&M> {
        self.slot(name).map(|i| &self.entries[i].1)
    }

    /// Adds `name` at the end, or replaces its attributes where it is.
    pub fn upsert(&mut self, name: &str, meta: M) {
        let h = self.hasher.hash_one(name);
        let entries = &self.entries;
        let hasher = &self.hasher;
        match self.index.entry(
            h,
            |i| &*entries[*i].0 == name,
            |i| hasher.hash_one(&*entries[*i].0),
        ) {
            Entry::Occupied(e) => {
                let i = *e.get();
                self.entries[i].1 = meta;
            }
            Entry::Vacant(e) => {
                e.insert(self.entries.len());
                self.entries.push((name.into(), meta));
            }
        }
    }

    /// Removes `name`; the last entry takes its place (the order of a
    /// listing changed here does not matter: the server's comes back at
    /// the next listing).
    pub fn remove(&mut self, name: &str) {
        let h = self.hasher.hash_one(name);
        let entries = &self.entries;
        let Ok(e) = self.index.find_entry(h, |i| &*entries[*i].0 == name) else {
            return;
        };
        let (i, _) = e.remove();
        let last = self.entries.len() - 1;
        if i != last {
            let moved = self.hasher.hash_one(&*self.entries[last].0);
            if let Some(slot) = self.index.find_mut(moved, |j| *j == last) {
                *slot = i;
            }
        }
        self.entries.swap_remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::cache::Meta;

    #[test]
    fn index_follows_changes() {
        let mut l: DirList<Meta> = DirList::new(
            (0..100)
                .map(|i| (format!("f{i}"), Meta::new_file(i)))
                .collect(),
        );
        assert_eq!(l.len(), 100);
        assert_eq!(l.get("f42").unwrap().size, 42);
        l.remove("f0");
        l.remove("f50");
        l.remove("nope");
        assert_eq!(l.len(), 98);
        assert!(l.get("f0").is_none());
        for i in (1..100).filter(|i| *i != 50) {
            assert_eq!(l.get(&format!("f{i}")).unwrap().size, i, "f{i}");
        }
        l.upsert("f7", Meta::new_file(700));
        l.upsert("new", Meta::new_dir());
        assert_eq!(l.get("f7").unwrap().size, 700);
        assert!(l.get("new").unwrap().kind.is_dir());
        assert_eq!(l.len(), 99);
        assert_eq!(l.slice(98, 10).len(), 1);
        assert_eq!(l.iter().filter(|(n, _)| &**n == "f7").count(), 1);
    }
}
