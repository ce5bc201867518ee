//! `StagedFile`: the local copy of a file being written.
//!
//! Writes go to a file in the cache directory. Writes that arrive in order
//! at the end feed the SMH hashes as they come, so closing a file written
//! front to back needs no second read; any other write marks the hashes
//! stale and they are recomputed at flush. The file is created with
//! `keep()` semantics: it outlives a crash or a failed upload, and is only
//! removed once the server confirmed the content.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::smh::{ContentHasher, ContentHashes};

#[derive(Debug)]
pub struct StagedFile {
    file: File,
    path: PathBuf,
    size: u64,
    /// `None` once a write broke the in-order sequence.
    hasher: Option<ContentHasher>,
    /// Set by utimens; sent as `localModificationTime`.
    pub mtime: Option<SystemTime>,
}

impl StagedFile {
    /// A new empty staged file in `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let (file, path) = tempfile::Builder::new()
            .prefix("staged-")
            .tempfile_in(dir)?
            .keep()
            .map_err(|e| e.error)?;
        Ok(Self {
            file,
            path,
            size: 0,
            hasher: Some(ContentHasher::new()),
            mtime: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(data, offset)?;
        let end = offset + data.len() as u64;
        match &mut self.hasher {
            Some(h) if offset == self.size && h.size() == self.size => h.update(data),
            _ => self.hasher = None,
        }
        self.size = self.size.max(end);
        Ok(())
    }

    /// Bytes in `[offset, offset+len)`, short at the end of the file.
    pub fn read_at(&self, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let len = (len as u64).min(self.size - offset) as usize;
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let n = self.file.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(buf)
    }

    pub fn truncate(&mut self, size: u64) -> std::io::Result<()> {
        if size == self.size {
            return Ok(());
        }
        self.file.set_len(size)?;
        match &mut self.hasher {
            // Growing with zeros keeps the hashes in order.
            Some(h) if size > self.size && h.size() == self.size => {
                let zeros = vec![0u8; 64 * 1024];
                let mut left = size - self.size;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    h.update(&zeros[..n]);
                    left -= n as u64;
                }
            }
            Some(_) if size == 0 => self.hasher = Some(ContentHasher::new()),
            _ => self.hasher = None,
        }
        self.size = size;
        Ok(())
    }

    /// The hashes of the current content, recomputed from disk if stale.
    pub fn hashes(&mut self) -> std::io::Result<ContentHashes> {
        if let Some(h) = &self.hasher {
            if h.size() == self.size {
                return Ok(h.clone().finish());
            }
        }
        let mut h = ContentHasher::new();
        let mut f = File::open(&self.path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        if h.size() != self.size {
            return Err(std::io::Error::other(format!(
                "staged file {} changed size under us",
                self.path.display()
            )));
        }
        self.hasher = Some(h.clone());
        Ok(h.finish())
    }

    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// The server has the content: the local copy can go.
    pub fn remove(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove staged file: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_out_of_order_hashes_agree() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut a = StagedFile::create(dir.path()).unwrap();
        for c in data.chunks(100_000) {
            let off = a.size();
            a.write_at(off, c).unwrap();
        }
        assert!(a.hasher.is_some());
        assert_eq!(a.hashes().unwrap(), ContentHashes::of(&data));

        let mut b = StagedFile::create(dir.path()).unwrap();
        b.write_at(2_000_000, &data[2_000_000..]).unwrap();
        b.write_at(0, &data[..2_000_000]).unwrap();
        assert!(b.hasher.is_none());
        assert_eq!(b.hashes().unwrap(), ContentHashes::of(&data));
        assert_eq!(b.read_at(2_999_990, 100).unwrap(), &data[2_999_990..]);
        a.remove();
        b.remove();
    }

    #[test]
    fn truncate_up_and_down() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = StagedFile::create(dir.path()).unwrap();
        s.write_at(0, b"hello").unwrap();
        s.truncate(8).unwrap();
        assert_eq!(s.hashes().unwrap(), ContentHashes::of(b"hello\0\0\0"));
        s.truncate(2).unwrap();
        assert_eq!(s.hashes().unwrap(), ContentHashes::of(b"he"));
        assert_eq!(s.read_at(0, 10).unwrap(), b"he");
        s.truncate(0).unwrap();
        assert_eq!(s.hashes().unwrap(), ContentHashes::of(b""));
    }
}
