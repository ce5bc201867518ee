//! `SmhFs` readdir: a snapshot per handle of the listing (`listing.rs`),
//! with files created here and not uploaded yet.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::cache::{Kind, Meta};
use super::core::{DirItem, FileHandle, InodeNo, SmhFs};
use super::error::FsResult;
use super::inode::ROOT_INO;
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
        self.dir_handles.lock().insert(fh, None);
        Ok(FileHandle(fh))
    }

    /// Entries of the directory from `offset` (0 = start), as a snapshot
    /// taken at the first call on this handle.
    pub async fn readdir(
        &self,
        ino: InodeNo,
        fh: FileHandle,
        offset: u64,
    ) -> FsResult<Arc<Vec<DirItem>>> {
        let fh = fh.0;
        let ino = ino.0;
        let snap = self.dir_handles.lock().get(&fh).cloned().flatten();
        if let (Some(s), true) = (snap, offset > 0) {
            return Ok(s);
        }
        let dir = self.path_of(ino)?;
        // Taken before the listing: a file whose upload is confirmed while
        // the listing is fetched is in neither otherwise.
        let pending: Vec<u64> = self.files.lock().keys().copied().collect();
        let listing = self.list(&dir).await?;
        let mut items = Vec::with_capacity(listing.len() + 2);
        let parent_ino = dir
            .parent()
            .filter(|_| dir != self.cfg.root)
            .and_then(|p| self.inodes.lock().ino_of(&p))
            .unwrap_or(ROOT_INO);
        items.push(DirItem {
            ino: InodeNo(ino),
            name: ".".into(),
            kind: Kind::Dir,
            meta: Meta::new_dir(),
        });
        items.push(DirItem {
            ino: InodeNo(parent_ino),
            name: "..".into(),
            kind: Kind::Dir,
            meta: Meta::new_dir(),
        });
        let mut seen = std::collections::HashSet::new();
        {
            // No inode is made for a listed name: only lookups (and
            // readdirplus, which counts one) make them, so names the
            // kernel never takes cost nothing once the handle closes.
            let inodes = self.inodes.lock();
            for (name, m) in listing.iter() {
                seen.insert(name.clone());
                items.push(DirItem {
                    ino: InodeNo(
                        inodes
                            .child(ino, name)
                            .unwrap_or_else(|| listed_ino(ino, name)),
                    ),
                    name: name.clone(),
                    kind: m.kind,
                    meta: m.clone(),
                });
            }
        }
        {
            // A staged file's local size wins, as in `resolve`.
            let local = self.local.lock();
            if !local.is_empty() {
                for it in items.iter_mut().skip(2) {
                    if let Some(m) = local.get(&it.ino.0) {
                        it.meta = m.clone();
                    }
                }
            }
        }
        // Files created here and not uploaded yet are not on the server.
        let mut local = pending;
        local.extend(self.files.lock().keys().copied());
        local.sort_unstable();
        local.dedup();
        for fino in local {
            let Some(p) = self.inodes.lock().path(fino) else {
                continue;
            };
            if p.parent().as_ref() != Some(&dir) {
                continue;
            }
            let Some(name) = p.name() else {
                continue;
            };
            if seen.insert(name.to_string()) {
                let meta = self.local.lock().get(&fino).cloned();
                let meta = meta
                    .or_else(|| self.attrs.get(&p).flatten())
                    .unwrap_or_else(|| Meta::new_file(0));
                items.push(DirItem {
                    ino: InodeNo(fino),
                    name: name.to_string(),
                    kind: meta.kind,
                    meta,
                });
            }
        }
        let items = Arc::new(items);
        self.dir_handles.lock().insert(fh, Some(items.clone()));
        Ok(items)
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
            .and_then(|l| l.iter().find(|(n, _)| n == name).map(|(_, m)| m.clone()));
        if let Some(mut m) = listed {
            touch(&mut m);
            self.dirs.upsert(&up, name, m);
        }
    }
}
