//! `SmhFs` readdir: each handle streams its listing a page at a time
//! (`dirstream.rs`), from the listing cache or the server (`listing.rs`),
//! with files created here and not uploaded yet at the end.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::cache::{Kind, Meta};
use super::core::{DirItem, DirWindow, FileHandle, InodeNo, SmhFs};
use super::dirlist::DirList;
use super::dirstream::{DirStream, Source};
use super::error::FsResult;
use super::inode::ROOT_INO;
use super::listing::{FirstPage, ServerPage, PAGE};
use super::packmeta::PackedMeta;
use crate::smh::SmhPath;

/// `d_ino` of a listed name the inode table does not know (plain readdir
/// only; readdirplus hands out real inodes): derived from the directory's
/// inode and the name, so stable while both are, with the top bit set so
/// it is never a number the table hands out (those count up from 1).
/// `stat` of the name gives the inode its lookup makes, which differs.
fn listed_ino(dir: u64, name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (dir, name).hash(&mut h);
    h.finish() | (1 << 63)
}

impl SmhFs {
    pub fn opendir(&self, ino: InodeNo) -> FsResult<FileHandle> {
        let ino = ino.0;
        self.path_of(ino)?;
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dir_handles.lock().insert(fh, Default::default());
        Ok(FileHandle(fh))
    }

    /// Entries of the directory from `offset` (0 = start, a fresh
    /// listing) to the end of the page holding it; the next page is
    /// fetched when the kernel asks past it (`dirstream.rs`). An empty
    /// window: the end of the directory.
    pub async fn readdir(&self, ino: InodeNo, fh: FileHandle, offset: u64) -> FsResult<DirWindow> {
        let ino = ino.0;
        let stream = self.dir_handles.lock().entry(fh.0).or_default().clone();
        let mut st = stream.lock().await;
        if offset == 0 || st.behind(offset) {
            st.rewind();
        }
        let dir = self.path_of(ino)?;
        loop {
            if let Some(w) = st.window(offset) {
                return Ok(w);
            }
            if st.done() {
                return Ok(DirWindow::default());
            }
            let page = self.next_page(ino, &dir, &mut st).await?;
            st.push(page);
        }
    }

    /// The next page of a handle's listing, as directory entries; the
    /// handle's source moves on only once the page is here.
    async fn next_page(
        &self,
        ino: u64,
        dir: &SmhPath,
        st: &mut DirStream,
    ) -> FsResult<Vec<DirItem>> {
        let mut items = Vec::new();
        let (entries, last) = match &mut st.source {
            Source::Unread => {
                // Taken before the listing: a file whose upload is
                // confirmed while the listing is fetched is in neither
                // otherwise.
                st.pending = self.files.lock().keys().copied().collect();
                let first = self.first_page(dir).await?;
                items.push(Self::dot(".", ino));
                let parent_ino = dir
                    .parent()
                    .filter(|_| *dir != self.cfg.root)
                    .and_then(|p| self.inodes.lock().ino_of(&p))
                    .unwrap_or(ROOT_INO);
                items.push(Self::dot("..", parent_ino));
                match first {
                    FirstPage::Whole(list) => {
                        st.source = Source::Whole { list, next: 0 };
                        self.cut(st)
                    }
                    FirstPage::Page(page) => self.server_page(dir, st, page, None),
                }
            }
            Source::Whole { .. } => self.cut(st),
            Source::Server { marker, .. } => {
                let marker = marker.clone();
                let page = self.next_server_page(dir, Some(&marker)).await?;
                self.server_page(dir, st, page, Some(marker))
            }
            Source::Done => return Ok(items),
        };
        self.items_of(ino, dir, &entries, st, &mut items);
        if last {
            st.source = Source::Done;
            self.local_only(dir, st, &mut items);
        }
        Ok(items)
    }

    fn dot(name: &str, ino: u64) -> DirItem {
        DirItem {
            ino: InodeNo(ino),
            name: name.into(),
            kind: Kind::Dir,
            meta: Meta::new_dir(),
        }
    }

    /// The next page cut from a complete listing; `true`: the last.
    fn cut(&self, st: &mut DirStream) -> (Vec<(String, Meta)>, bool) {
        let Source::Whole { list, next } = &mut st.source else {
            return (Vec::new(), true);
        };
        let page: Vec<(String, Meta)> = list
            .slice(*next, PAGE as usize)
            .iter()
            .map(|(n, m)| (n.to_string(), m.meta()))
            .collect();
        *next += page.len();
        let last = *next >= list.len();
        (page, last)
    }

    /// A server page taken in: the handle's source moves to the next
    /// marker, and the listing is gathered for the cache while it fits
    /// (put there complete, with the eTag of its first page).
    fn server_page(
        &self,
        dir: &SmhPath,
        st: &mut DirStream,
        page: ServerPage,
        marker: Option<String>,
    ) -> (Vec<(String, Meta)>, bool) {
        let (mut etag, mut gathered) = match std::mem::take(&mut st.source) {
            Source::Server { etag, gathered, .. } => (etag, gathered),
            // A directory the server says is longer than the cache bound
            // is not gathered at all (it would be dropped at the bound).
            _ => (
                page.etag.clone(),
                (page.total == 0 || self.dirs.fits(page.total as usize)).then(Vec::new),
            ),
        };
        if marker.is_none() {
            etag = page.etag.clone();
        }
        gathered = gathered
            .filter(|g| self.dirs.fits(g.len() + page.entries.len()))
            .map(|mut g| {
                g.extend(
                    page.entries
                        .iter()
                        .map(|(n, m)| (n.clone(), PackedMeta::new(m))),
                );
                g
            });
        match page.next {
            Some(marker) => {
                st.source = Source::Server {
                    marker,
                    etag,
                    gathered,
                };
                (page.entries, false)
            }
            None => {
                if let Some(g) = gathered {
                    self.dirs.put(dir.clone(), Arc::new(DirList::new(g)), etag);
                }
                (page.entries, true)
            }
        }
    }

    /// Listed entries as directory entries: an inode the table knows
    /// (with a staged file's local size, as in `resolve`), else a number
    /// that makes none (`listed_ino`).
    fn items_of(
        &self,
        ino: u64,
        dir: &SmhPath,
        entries: &[(String, Meta)],
        st: &mut DirStream,
        items: &mut Vec<DirItem>,
    ) {
        let local_names = self.local_names(dir, st);
        let known: Vec<Option<u64>> = {
            // No inode is made for a listed name: only lookups (and
            // readdirplus, which counts one) make them, so names the
            // kernel never takes cost nothing once the handle closes.
            let inodes = self.inodes.lock();
            entries.iter().map(|(n, _)| inodes.child(ino, n)).collect()
        };
        let local = self.local.lock();
        for ((name, m), known) in entries.iter().zip(known) {
            if local_names.contains(name) {
                st.listed_local.insert(name.clone());
            }
            let meta = known.and_then(|i| local.get(&i)).unwrap_or(m);
            items.push(DirItem {
                ino: InodeNo(known.unwrap_or_else(|| listed_ino(ino, name))),
                name: name.clone(),
                kind: meta.kind,
                meta: meta.clone(),
            });
        }
    }

    /// Names of this directory's files open or pending here.
    fn local_names(&self, dir: &SmhPath, st: &DirStream) -> HashSet<String> {
        self.local_files(dir, st)
            .into_iter()
            .map(|(_, n, _)| n)
            .collect()
    }

    /// (inode, name, path) of this directory's files open or pending here.
    fn local_files(&self, dir: &SmhPath, st: &DirStream) -> Vec<(u64, String, SmhPath)> {
        let mut inos = st.pending.clone();
        inos.extend(self.files.lock().keys().copied());
        if inos.is_empty() {
            return Vec::new();
        }
        inos.sort_unstable();
        inos.dedup();
        let inodes = self.inodes.lock();
        inos.into_iter()
            .filter_map(|i| {
                let p = inodes.path(i)?;
                (p.parent().as_ref() == Some(dir)).then_some(())?;
                let name = p.name()?.to_string();
                Some((i, name, p))
            })
            .collect()
    }

    /// Files created here and not uploaded yet are not on the server: they
    /// end the listing (unless a page had them).
    fn local_only(&self, dir: &SmhPath, st: &mut DirStream, items: &mut Vec<DirItem>) {
        for (fino, name, p) in self.local_files(dir, st) {
            if st.listed_local.insert(name.clone()) {
                let meta = self.local.lock().get(&fino).cloned();
                let meta = meta
                    .or_else(|| self.attrs.get(&p).flatten())
                    .unwrap_or_else(|| Meta::new_file(0));
                items.push(DirItem {
                    ino: InodeNo(fino),
                    name,
                    kind: meta.kind,
                    meta,
                });
            }
        }
    }

    /// The inode of `dir/name` handed to the kernel by readdirplus, counted
    /// as one lookup (undo with `forget` if the entry did not fit).
    pub fn readdirplus_ino(&self, dir: &SmhPath, name: &str) -> Option<InodeNo> {
        let p = dir.join(name).ok()?;
        Some(InodeNo(self.inodes.lock().lookup(&p, true)))
    }

    pub fn releasedir(&self, fh: FileHandle) {
        let fh = fh.0;
        self.dir_handles.lock().remove(&fh);
    }

    /// An entry was added to or removed from the directory holding `path`:
    /// its mtime and ctime are now (POSIX), in the caches that know it,
    /// until the server's own times are read again.
    pub(crate) fn parent_changed(&self, path: &SmhPath) {
        let Some(dir) = path.parent().filter(|d| *d != self.cfg.root) else {
            return;
        };
        let now = std::time::SystemTime::now();
        let touch = |m: &mut Meta| {
            m.mtime = now;
            m.ctime = now;
        };
        if let Some(Some(mut m)) = self.attrs.get(&dir) {
            touch(&mut m);
            self.attrs.put(dir.clone(), m);
        }
        // A directory chmod-ed this session shows its kept attributes.
        let ino = self.inodes.lock().ino_of(&dir);
        if let Some(ino) = ino {
            if let Some(m) = self.local.lock().get_mut(&ino).filter(|m| m.kind.is_dir()) {
                touch(m);
            }
        }
        let (Some(up), Some(name)) = (dir.parent(), dir.name()) else {
            return;
        };
        let listed = self
            .dirs
            .get(&up)
            .and_then(|l| l.get(name).map(PackedMeta::meta));
        if let Some(mut m) = listed {
            touch(&mut m);
            self.dirs.upsert(&up, name, m);
        }
    }
}
