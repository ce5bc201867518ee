//! Background assembly of multipart uploads.
//!
//! As soon as parts 1..k are all stored, they are appended to a staging blob
//! and fed to the [`ContentHasher`] in the background, so that confirm only
//! has to process the parts that were still missing (usually none or one)
//! instead of reading and copying the whole file. Anything unexpected (a
//! consumed part uploaded again with different content, an I/O error)
//! "poisons" the assembly and confirm falls back to a full pass.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::error::{SResult, ServerError};
use super::store::{random_hex, Store};
use crate::smh::hash::{ContentHasher, ContentHashes};
use crate::smh::types::PartInfo;

const BUF: usize = 4 << 20;

pub struct Assembly {
    next: u32,
    hasher: ContentHasher,
    tmp: PathBuf,
    file: Option<std::fs::File>,
    /// (part number, eTag) appended so far, in order.
    consumed: Vec<(u32, String)>,
    /// Latest stored eTag per part number.
    ready: BTreeMap<u32, String>,
    poisoned: bool,
    running: bool,
}

impl Assembly {
    fn new(tmp: PathBuf) -> Self {
        Assembly {
            next: 1,
            hasher: ContentHasher::new(),
            tmp,
            file: None,
            consumed: Vec::new(),
            ready: BTreeMap::new(),
            poisoned: false,
            running: false,
        }
    }

    fn append(&mut self, path: &Path, buf: &mut [u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(std::fs::File::create(&self.tmp)?);
        }
        let mut f = std::fs::File::open(path)?;
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                return Ok(());
            }
            self.hasher.update(&buf[..n]);
            if let Some(w) = self.file.as_mut() {
                w.write_all(&buf[..n])?;
            }
        }
    }

    fn discard(&mut self) {
        self.poisoned = true;
        self.file = None;
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[derive(Default)]
pub struct Assemblies {
    map: Mutex<HashMap<String, Arc<Mutex<Assembly>>>>,
}

impl Assemblies {
    /// Records a stored part and advances the assembly (blocking; call from
    /// the blocking pool).
    pub fn part_stored(&self, store: &Store, key: &str, num: u32, etag: &str) {
        let a = self
            .map
            .lock()
            .entry(key.to_string())
            .or_insert_with(|| {
                let tmp = store
                    .dir
                    .join("blobs")
                    .join(format!("{}.asm", random_hex(16)));
                Arc::new(Mutex::new(Assembly::new(tmp)))
            })
            .clone();
        {
            let mut g = a.lock();
            if g.poisoned {
                return;
            }
            if num < g.next {
                let same = g
                    .consumed
                    .get(num as usize - 1)
                    .is_some_and(|(n, e)| *n == num && e == etag);
                if !same {
                    g.discard();
                    return;
                }
            }
            g.ready.insert(num, etag.to_string());
            if g.running {
                return;
            }
            g.running = true;
        }
        let dir = store.upload_dir(key);
        let mut buf = vec![0u8; BUF];
        loop {
            let mut g = a.lock();
            let next = g.next;
            let etag = match g.ready.get(&next) {
                Some(e) if !g.poisoned => e.clone(),
                _ => {
                    g.running = false;
                    return;
                }
            };
            match g.append(&dir.join(next.to_string()), &mut buf) {
                Ok(()) => {
                    g.consumed.push((next, etag));
                    g.next += 1;
                }
                Err(_) => {
                    g.discard();
                    g.running = false;
                    return;
                }
            }
        }
    }

    /// Drops the assembly of an aborted task.
    pub fn forget(&self, key: &str) {
        if let Some(a) = self.map.lock().remove(key) {
            a.lock().discard();
        }
    }

    /// Finishes the assembly for confirm: returns the new blob id and the
    /// hashes. Falls back to a full pass over the parts when needed.
    pub fn finish(
        &self,
        store: &Store,
        key: &str,
        parts: &[PartInfo],
    ) -> SResult<(String, ContentHashes)> {
        let dir = store.upload_dir(key);
        let blob = random_hex(16);
        let out = store.blob_path(&blob);
        // No 4 MiB buffer to zero for a 4 KiB file.
        let total: u64 = parts.iter().map(|p| p.size).sum();
        let mut buf = vec![0u8; (total as usize).clamp(1, BUF)];
        let missing = |e: std::io::Error| {
            ServerError::api(404, "UploadIncomplete", format!("part data missing: {e}"))
        };
        let existing = self.map.lock().remove(key);
        if let Some(a) = existing {
            let mut g = a.lock();
            let prefix_ok = !g.poisoned
                && g.consumed.len() <= parts.len()
                && g.consumed
                    .iter()
                    .zip(parts)
                    .all(|((n, e), p)| *n == p.part_number && *e == p.etag);
            if prefix_ok && g.file.is_some() {
                let start = g.consumed.len();
                for p in &parts[start..] {
                    if let Err(e) = g.append(&dir.join(p.part_number.to_string()), &mut buf) {
                        g.discard();
                        return Err(missing(e));
                    }
                    g.consumed.push((p.part_number, p.etag.clone()));
                }
                g.next = u32::MAX;
                g.poisoned = true; // nothing may touch it any more
                let file = g.file.take();
                drop(file);
                std::fs::rename(&g.tmp, &out)?;
                let hashes = std::mem::take(&mut g.hasher).finish();
                return Ok((blob, hashes));
            }
            g.discard();
        }
        // Full pass.
        let mut hasher = ContentHasher::new();
        let mut feed = |path: &Path, w: Option<&mut std::fs::File>| -> SResult<()> {
            let mut f = std::fs::File::open(path).map_err(missing)?;
            let mut w = w;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                hasher.update(&buf[..n]);
                if let Some(w) = w.as_deref_mut() {
                    w.write_all(&buf[..n])?;
                }
            }
        };
        if parts.len() == 1 {
            let p = dir.join(parts[0].part_number.to_string());
            feed(&p, None)?;
            // Link, not rename: the part must survive a failed confirm (BadCrc64).
            if std::fs::hard_link(&p, &out).is_err() {
                std::fs::copy(&p, &out)?;
            }
        } else {
            let tmp = store.dir.join("blobs").join(format!("{blob}.tmp"));
            let mut w = std::fs::File::create(&tmp)?;
            for part in parts {
                if let Err(e) = feed(&dir.join(part.part_number.to_string()), Some(&mut w)) {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
            drop(w);
            std::fs::rename(&tmp, &out)?;
        }
        Ok((blob, hasher.finish()))
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
