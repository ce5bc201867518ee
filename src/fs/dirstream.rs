//! A directory handle's listing, a page at a time: `readdir` answers from
//! the page holding the kernel's offset, and the next page is fetched
//! (`dirs.rs`) only when the kernel asks past the last one. A handle holds
//! at most [`HELD_PAGES`] pages, so listing a huge directory costs a few
//! pages per open handle, whatever its length.
//!
//! Offsets: the entry at index `i` of the listing (`.` and `..` first) has
//! offset `i + 1`, the offset the kernel passes back to continue after it.
//! An offset before the pages held (a `seekdir` back) lists again from the
//! start and pages forward to it; offset 0 is a rewind (a fresh listing).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use super::cache::{Kind, Listing, Meta};
use super::inode::InodeNo;

/// One directory entry for readdir.
#[derive(Debug, Clone)]
pub struct DirItem {
    pub ino: InodeNo,
    pub name: String,
    pub kind: Kind,
    /// Attributes for readdirplus (from the same listing).
    pub meta: Meta,
}

/// Entries as one page of a handle holds them.
pub type Page = Arc<Vec<DirItem>>;

/// Pages one handle keeps: the one being read and the one before (a reply
/// that did not take a whole page continues inside it).
pub const HELD_PAGES: usize = 2;

/// What one `readdir` answers from: `items[skip..]`, where `items[0]` is
/// the entry at index `first`.
#[derive(Debug, Clone, Default)]
pub struct DirWindow {
    items: Page,
    first: u64,
    skip: usize,
}

impl DirWindow {
    /// The entries from the offset asked for, to the end of their page.
    pub fn iter(&self) -> std::slice::Iter<'_, DirItem> {
        self.items[self.skip.min(self.items.len())..].iter()
    }

    /// The same entries with the offset of each (what the kernel passes
    /// back to continue after it).
    pub fn entries(&self) -> impl Iterator<Item = (u64, &DirItem)> {
        let start = self.first + self.skip as u64;
        self.iter()
            .enumerate()
            .map(move |(k, it)| (start + k as u64 + 1, it))
    }
}

/// Where a handle's next page comes from.
#[derive(Debug, Default)]
pub enum Source {
    /// Nothing read yet (or rewound).
    #[default]
    Unread,
    /// A complete listing (the cache's, shared with it, not copied):
    /// pages are cut from it; `next` is the position of the next entry.
    Whole { list: Listing, next: usize },
    /// The server's listing, page by page: the marker of the next page,
    /// the directory's eTag (from the first page), and the listing
    /// gathered for the cache while it still fits there.
    Server {
        marker: String,
        etag: Option<String>,
        gathered: Option<Vec<(String, super::packmeta::PackedMeta)>>,
    },
    /// Everything listed, files not on the server yet included.
    Done,
}

/// One open directory handle's listing.
#[derive(Debug, Default)]
pub struct DirStream {
    pub source: Source,
    pages: VecDeque<(u64, Page)>,
    /// Index of the entry the next page starts with.
    end: u64,
    /// Files open or waiting for an upload here when the listing began
    /// (uploaded meanwhile, they may be in no page).
    pub pending: Vec<u64>,
    /// Names of such local files the listing showed (not listed again).
    pub listed_local: HashSet<String>,
}

impl DirStream {
    pub fn rewind(&mut self) {
        *self = Self::default();
    }

    pub fn done(&self) -> bool {
        matches!(self.source, Source::Done)
    }

    /// Whether `offset` lies before the pages held (list again to reach it).
    pub fn behind(&self, offset: u64) -> bool {
        offset < self.pages.front().map_or(self.end, |(first, _)| *first)
    }

    /// The entries from `offset` on, if a held page has them.
    pub fn window(&self, offset: u64) -> Option<DirWindow> {
        self.pages.iter().find_map(|(first, items)| {
            (*first <= offset && offset < first + items.len() as u64).then(|| DirWindow {
                items: items.clone(),
                first: *first,
                skip: (offset - first) as usize,
            })
        })
    }

    /// Adds the next page; the oldest goes beyond [`HELD_PAGES`].
    pub fn push(&mut self, items: Vec<DirItem>) {
        let n = items.len() as u64;
        self.pages.push_back((self.end, Arc::new(items)));
        self.end += n;
        while self.pages.len() > HELD_PAGES {
            self.pages.pop_front();
        }
    }

    /// Entries held by this handle's pages.
    pub fn held(&self) -> usize {
        self.pages.iter().map(|(_, p)| p.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(from: usize, n: usize) -> Vec<DirItem> {
        (from..from + n)
            .map(|i| DirItem {
                ino: InodeNo(i as u64 + 10),
                name: format!("f{i}"),
                kind: Kind::File,
                meta: Meta::new_file(0),
            })
            .collect()
    }

    #[test]
    fn pages_by_offset() {
        let mut s = DirStream::default();
        assert!(s.window(0).is_none());
        s.push(page(0, 3));
        let w = s.window(0).unwrap();
        let offs: Vec<u64> = w.entries().map(|(o, _)| o).collect();
        assert_eq!(offs, vec![1, 2, 3]);
        let w = s.window(2).unwrap();
        assert_eq!(
            w.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["f2"]
        );
        assert_eq!(w.entries().next().unwrap().0, 3);
        assert!(s.window(3).is_none(), "past the pages held: fetch");
        s.push(page(3, 3));
        s.push(page(6, 3));
        assert_eq!(s.held(), 6, "two pages held");
        assert!(s.behind(1));
        assert!(!s.behind(3));
        assert_eq!(s.window(7).unwrap().iter().next().unwrap().name, "f7");
        s.rewind();
        assert_eq!(s.held(), 0);
        assert!(!s.behind(0));
    }
}
