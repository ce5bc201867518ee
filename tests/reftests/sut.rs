//! The system under test: the FUSE-free core (`SmhFs`) over one directory
//! of a real `smhfs serve`. This is the ONE place the reference test calls
//! the core; when the core's signatures change (typed inodes and handles,
//! pids on flush), only this file follows.
//!
//! Calls go the way `src/fs/fuse.rs` makes them: the in-thread fast path
//! (`create_now`, `write_now`, `flush_now`, `release_now`, `lookup_cached`)
//! first, the async method when it declines. Each mount has its own tokio
//! runtime, so a crash is a runtime shut down with its tasks dropped.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use smhfs::fs::cache::Kind;
use smhfs::fs::core::{FileHandle, InodeNo};
use smhfs::fs::writeback::DurabilityOptions;
use smhfs::fs::{FsError, SmhFs};
use smhfs::smh::{ConflictStrategy, RetryPolicy, SmhClient, SmhPath};

use crate::common::{client_at, core_config, TestServer};

/// An errno value, as a program would see it.
pub type Errno = i32;
/// An open file handle of the core.
pub type Fh = FileHandle;

/// The root inode (the mounted directory).
const ROOT: InodeNo = InodeNo::ROOT;

/// How a mount is set up; kept to mount again over the same cache dir.
#[derive(Clone, Debug)]
pub struct MountSpec {
    pub url: String,
    pub library: String,
    pub secret: String,
    /// The mounted directory (one per test case).
    pub root: SmhPath,
    pub cache_dir: PathBuf,
    pub write_back: bool,
}

impl MountSpec {
    pub fn new(server: &TestServer, root: SmhPath, cache_dir: &Path, write_back: bool) -> Self {
        Self {
            url: server.url.clone(),
            library: server.library.clone(),
            secret: server.secret.clone(),
            root,
            cache_dir: cache_dir.to_path_buf(),
            write_back,
        }
    }

    /// A client that gives up fast: an upload under a 100 % fault fails in
    /// milliseconds, while a fault of one or two replies is absorbed.
    pub fn client(&self) -> SmhClient {
        let retry = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        };
        client_at(&self.url, &self.library, &self.secret, retry)
    }
}

/// One mounted core.
pub struct Sut {
    rt: Option<tokio::runtime::Runtime>,
    fs: Arc<SmhFs>,
    /// Inode of each open handle (ftruncate goes by inode).
    inos: HashMap<Fh, InodeNo>,
}

fn errno(e: FsError) -> Errno {
    e.errno()
}

impl Sut {
    /// Mounts as `smhfs mount` does: background queue started, the
    /// journal of the cache dir resumed.
    pub fn mount(spec: &MountSpec) -> Sut {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let mut fs = SmhFs::new(
            spec.client(),
            core_config(
                spec.root.clone(),
                ConflictStrategy::Overwrite,
                &spec.cache_dir,
            ),
        );
        fs.set_durability(DurabilityOptions {
            write_back: spec.write_back.then_some(Duration::ZERO),
            ..Default::default()
        });
        let fs = Arc::new(fs);
        fs.start_background(rt.handle());
        fs.resume_journal(false);
        Sut {
            rt: Some(rt),
            fs,
            inos: HashMap::new(),
        }
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("mounted").block_on(f)
    }

    fn name(name: &str) -> &OsStr {
        OsStr::new(name)
    }

    /// lookup(2) of a name in the root: its inode and size.
    pub fn lookup(&self, name: &str) -> Result<(InodeNo, u64), Errno> {
        let fs = &self.fs;
        let attr = match fs.lookup_cached(ROOT, Self::name(name)) {
            Some(r) => r,
            None => self.block_on(fs.lookup(ROOT, Self::name(name))),
        }
        .map_err(errno)?;
        if attr.meta.kind != Kind::File {
            return Err(libc::EISDIR);
        }
        Ok((attr.ino, attr.meta.size))
    }

    /// open(O_CREAT|O_TRUNC|O_RDWR).
    pub fn create(&mut self, name: &str) -> Result<Fh, Errno> {
        let fs = self.fs.clone();
        let (attr, fh) = match fs.create_now(ROOT, Self::name(name), Default::default()) {
            Some(r) => r,
            None => self.block_on(fs.create(ROOT, Self::name(name), Default::default())),
        }
        .map_err(errno)?;
        self.inos.insert(fh, attr.ino);
        Ok(fh)
    }

    /// open(2) of an existing name.
    pub fn open(&mut self, name: &str, write: bool, truncate: bool) -> Result<Fh, Errno> {
        let (ino, _) = self.lookup(name)?;
        let fh = self
            .block_on(self.fs.open(ino, write, truncate))
            .map_err(errno)?;
        self.inos.insert(fh, ino);
        Ok(fh)
    }

    pub fn write(&self, fh: Fh, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let fs = &self.fs;
        let n = match fs.write_now(fh, offset, data) {
            Some(r) => r,
            None => self.block_on(fs.write(fh, offset, data)),
        }
        .map_err(errno)?;
        assert_eq!(n as usize, data.len(), "short write");
        Ok(())
    }

    /// pread(2) until `len` bytes or the end of the file.
    pub fn read(&self, fh: Fh, offset: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let at = offset + out.len() as u64;
            let want = (len - out.len()).min(1 << 20) as u32;
            let b = self.block_on(self.fs.read(fh, at, want)).map_err(errno)?;
            if b.is_empty() {
                break;
            }
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    /// ftruncate(2) of an open handle.
    pub fn truncate_fh(&self, fh: Fh, size: u64) -> Result<(), Errno> {
        let ino = *self.inos.get(&fh).expect("known handle");
        self.block_on(self.fs.setattr(ino, Some(size), Default::default()))
            .map(drop)
            .map_err(errno)
    }

    /// truncate(2) of a name.
    pub fn truncate_path(&self, name: &str, size: u64) -> Result<(), Errno> {
        let (ino, _) = self.lookup(name)?;
        self.block_on(self.fs.setattr(ino, Some(size), Default::default()))
            .map(drop)
            .map_err(errno)
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<(), Errno> {
        self.block_on(
            self.fs
                .rename(ROOT, Self::name(from), ROOT, Self::name(to), false),
        )
        .map_err(errno)
    }

    pub fn unlink(&self, name: &str) -> Result<(), Errno> {
        self.block_on(self.fs.unlink(ROOT, Self::name(name)))
            .map_err(errno)
    }

    pub fn fsync(&self, fh: Fh) -> Result<(), Errno> {
        self.block_on(self.fs.fsync(fh)).map_err(errno)
    }

    /// The flush of close(2).
    pub fn flush(&self, fh: Fh) -> Result<(), Errno> {
        let fs = &self.fs;
        match fs.flush_now(fh) {
            Some(r) => r,
            None => self.block_on(fs.flush(fh)),
        }
        .map_err(errno)
    }

    /// The release after the last close of a handle.
    pub fn release(&mut self, fh: Fh) -> Result<(), Errno> {
        self.inos.remove(&fh);
        let fs = &self.fs;
        match fs.release_now(fh) {
            Some(r) => r,
            None => self.block_on(fs.release(fh)),
        }
        .map_err(errno)
    }

    /// Names of the root's files, from readdir.
    pub fn list(&self) -> Result<Vec<(String, u64)>, Errno> {
        let fs = &self.fs;
        let dfh = fs.opendir(ROOT).map_err(errno)?;
        let items = self.block_on(fs.readdir(ROOT, dfh, 0));
        fs.releasedir(dfh);
        let mut out: Vec<(String, u64)> = items
            .map_err(errno)?
            .iter()
            .filter(|i| i.name != "." && i.name != "..")
            .map(|i| (i.name.clone(), i.meta.size))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Waits (bounded) for background uploads; returns how many are left.
    pub fn drain(&self, timeout: Duration) -> usize {
        self.block_on(self.fs.drain_uploads(timeout))
    }

    /// Unmount: every upload drained first (as `smhfs` does at unmount), or,
    /// for a crash, the runtime stopped with queued uploads not started.
    /// (A crash waits for the upload in flight, if any: a task stopped
    /// inside `block_in_place` panics on its next timer. Crashes in the
    /// middle of an upload are tested with kill -9 in `durability`.)
    pub fn unmount(mut self, crash: bool) {
        if !crash {
            let left = self.drain(Duration::from_secs(30));
            assert_eq!(left, 0, "uploads left at unmount");
        }
        assert!(
            self.block_on(self.fs.wait_idle(Duration::from_secs(30))),
            "uploads in flight at unmount"
        );
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(10));
        }
    }
}

impl Drop for Sut {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
