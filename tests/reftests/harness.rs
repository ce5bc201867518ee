//! Runs a sequence of [`Op`]s against the core ([`Sut`]) and the
//! [`Model`] side by side. After every operation the names and sizes the
//! core shows must be the model's; every read must return the model's
//! bytes; after an fsync (and after the last close in close-synchronous
//! mode) the server must hold the file's content. At the end every handle
//! is closed, uploads are drained, and the server's files (downloaded with
//! a client of their own, not through the core) must be the model's files.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use smhfs::smh::{SmhClient, SmhPath};

use super::model::Model;
use super::ops::{data, Op, NAMES};
use super::sut::{Errno, Fh, MountSpec, Sut};
use crate::common::{client_for, TestServer};

/// Each case mounts a directory of its own on the shared server.
static CASES: AtomicUsize = AtomicUsize::new(0);
/// Operations run, skipped for a known bug, and uploads failed on purpose
/// (EIO seen), for the summary line: a test that skips everything or
/// never fails an upload proves little.
pub static RUN: AtomicUsize = AtomicUsize::new(0);
pub static SKIPPED: AtomicUsize = AtomicUsize::new(0);
pub static EIO_SEEN: AtomicUsize = AtomicUsize::new(0);

pub struct Harness<'a> {
    server: &'a mut TestServer,
    spec: MountSpec,
    sut: Option<Sut>,
    model: Model,
    /// The core's handle for each model handle (same order).
    fhs: Vec<Fh>,
    /// Checks the server's content, independently of the core (on a
    /// runtime of its own, so its connections outlive remounts).
    client: SmhClient,
    rt: tokio::runtime::Runtime,
    /// Files at the space's root before the case (a stray upload of an
    /// earlier case must not fail this one).
    root_files: Vec<String>,
    /// Files whose upload failed on purpose and that no writer has sent
    /// since: the core retries them in the background (README, Durable
    /// uploads), so a reader's last close does not put them on the server.
    retrying: std::collections::HashSet<usize>,
    _cache: tempfile::TempDir,
}

/// Runs one case on `server`. Unless `strict`, operations that would
/// hit a [`known_bug`] are skipped (so the random test stays green while
/// the bug is open; its `#[ignore]`d regression test replays it strictly).
pub fn run_case(server: &mut TestServer, write_back: bool, ops: &[Op], strict: bool) {
    let mut h = Harness::new(server, write_back);
    for (i, op) in ops.iter().enumerate() {
        if !strict && h.known_bug(op).is_some() {
            SKIPPED.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        RUN.fetch_add(1, Ordering::Relaxed);
        h.apply(op)
            .unwrap_or_else(|e| panic!("op #{i} {op:?}: {e}\nops: {ops:#?}"));
        h.check_names()
            .unwrap_or_else(|e| panic!("after op #{i} {op:?}: {e}\nops: {ops:#?}"));
        if std::env::var("RT_DEBUG").is_ok() {
            let files = h.rt.block_on(root_files(&h.client));
            eprintln!("after {op:?}: root files {files:?}");
        }
    }
    h.finish()
        .unwrap_or_else(|e| panic!("at the end: {e}\nops: {ops:#?}"));
}

type Check = Result<(), String>;

impl<'a> Harness<'a> {
    fn new(server: &'a mut TestServer, write_back: bool) -> Self {
        let client = client_for(server);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let n = CASES.fetch_add(1, Ordering::Relaxed);
        let root = SmhPath::parse(&format!("case-{}-{n}", std::process::id())).expect("path");
        let root_files = rt.block_on(async {
            server.admin("/__faults/clear", "").await;
            // Stray uploads of an earlier case (a bug) must not leak into this one.
            for f in root_files(&client).await.expect("root listing") {
                let _ = client
                    .delete_file(&SmhPath::parse(&f).expect("path"), true)
                    .await;
            }
            client
                .create_dir(&root, smhfs::smh::ConflictStrategy::Ask)
                .await
                .expect("case directory");
            root_files(&client).await.expect("root listing")
        });
        let cache = tempfile::tempdir().expect("cache dir");
        let spec = MountSpec::new(server, root, cache.path(), write_back);
        let sut = Sut::mount(&spec);
        Harness {
            server,
            spec,
            sut: Some(sut),
            model: Model::default(),
            fhs: Vec::new(),
            client,
            rt,
            root_files,
            retrying: Default::default(),
            _cache: cache,
        }
    }

    /// Open bugs of the core that `op` would hit now, with what they are.
    /// Remove an entry once its bug is fixed (its regression test then
    /// loses its `#[ignore]`).
    fn known_bug(&self, _op: &Op) -> Option<&'static str> {
        // None open: the last ones (rename onto open files, files recreated
        // over server files, unlinked open files) are fixed.
        None
    }

    fn sut(&mut self) -> &mut Sut {
        self.sut.as_mut().expect("mounted")
    }

    /// The model handle an op's index picks, if any is open.
    fn pick(&self, h: usize) -> Option<usize> {
        (!self.model.handles.is_empty()).then(|| h % self.model.handles.len())
    }

    fn admin(&self, path: &str, body: &str) {
        self.rt.block_on(self.server.admin(path, body));
    }

    fn apply(&mut self, op: &Op) -> Check {
        match *op {
            Op::Create { name } => {
                let fh = self.sut().create(name).map_err(|e| errs("create", e))?;
                self.model.create(name);
                self.fhs.push(fh);
            }
            Op::Open {
                name,
                write,
                truncate,
            } => {
                let r = self.sut().open(name, write, truncate);
                match (self.model.names.get(name).copied(), r) {
                    (Some(file), Ok(fh)) => {
                        if write && truncate {
                            self.model.truncate(file, 0);
                        }
                        self.model.open_handle(file, write);
                        self.fhs.push(fh);
                    }
                    (None, Err(libc::ENOENT)) => {}
                    (want, got) => return Err(format!("open: model {want:?}, core {got:?}")),
                }
            }
            Op::Write {
                h,
                offset,
                len,
                seed,
            } => {
                let Some(i) = self.pick(h).filter(|i| self.model.handles[*i].writable) else {
                    return Ok(());
                };
                let bytes = data(len, seed);
                let fh = self.fhs[i];
                self.sut()
                    .write(fh, offset, &bytes)
                    .map_err(|e| errs("write", e))?;
                let file = self.model.handles[i].file;
                self.model.write(file, offset, &bytes);
            }
            Op::Read { h, offset, len } => {
                let Some(i) = self.pick(h) else {
                    return Ok(());
                };
                let fh = self.fhs[i];
                let got = self
                    .sut()
                    .read(fh, offset, len)
                    .map_err(|e| errs("read", e))?;
                let c = &self.model.contents[&self.model.handles[i].file];
                let start = (offset as usize).min(c.len());
                let want = &c[start..(start + len).min(c.len())];
                same_bytes("read", want, &got)?;
            }
            Op::Truncate { h, size } => {
                let Some(i) = self.pick(h).filter(|i| self.model.handles[*i].writable) else {
                    return Ok(());
                };
                let fh = self.fhs[i];
                self.sut()
                    .truncate_fh(fh, size)
                    .map_err(|e| errs("ftruncate", e))?;
                self.model.truncate(self.model.handles[i].file, size);
            }
            Op::TruncatePath { name, size } => {
                let r = self.sut().truncate_path(name, size);
                match (self.model.names.get(name).copied(), r) {
                    (Some(file), Ok(())) => {
                        self.model.truncate(file, size);
                        if self.model.open_count(file) == 0 && !self.spec.write_back {
                            // Nothing will close it: uploaded at once.
                            self.check_server_file(name)?;
                        }
                    }
                    (None, Err(libc::ENOENT)) => {}
                    (want, got) => return Err(format!("truncate: model {want:?}, core {got:?}")),
                }
            }
            Op::Rename { from, to } => {
                let r = self.sut().rename(from, to);
                match (self.model.names.contains_key(from), r) {
                    (true, Ok(())) => self.model.rename(from, to),
                    (false, Err(libc::ENOENT)) => {}
                    (want, got) => {
                        return Err(format!("rename: source exists {want}, core {got:?}"))
                    }
                }
            }
            Op::Unlink { name } => {
                let r = self.sut().unlink(name);
                match (self.model.names.contains_key(name), r) {
                    (true, Ok(())) => {
                        self.model.unlink(name);
                        self.check_server_file(name)?;
                    }
                    (false, Err(libc::ENOENT)) => {}
                    (want, got) => return Err(format!("unlink: exists {want}, core {got:?}")),
                }
            }
            Op::Fsync { h } => {
                let Some(i) = self.pick(h) else {
                    return Ok(());
                };
                let fh = self.fhs[i];
                self.sut().fsync(fh).map_err(|e| errs("fsync", e))?;
                self.check_server_handle(i)?;
                self.retrying.remove(&self.model.handles[i].file);
            }
            Op::Close { h } => {
                let Some(i) = self.pick(h) else {
                    return Ok(());
                };
                self.close(i, true)?;
            }
            Op::Remount { crash } => {
                self.close_all()?;
                let sut = self.sut.take().expect("mounted");
                sut.unmount(crash);
                if !crash {
                    // Drained: every retry is done.
                    self.retrying.clear();
                }
                self.sut = Some(Sut::mount(&self.spec));
            }
            Op::RestartServer => self.server.restart(),
            Op::Fault {
                target,
                status,
                count,
            } => {
                self.admin("/__faults/clear", "");
                self.admin("/__fault", &format!("{target}:{status}:{count}"));
            }
            Op::FailUpload { h, stage, close } => {
                let Some(i) = self.pick(h) else {
                    return Ok(());
                };
                let fh = self.fhs[i];
                self.admin("/__faults/clear", "");
                self.admin("/__fault", stage.fault());
                let r = if close {
                    self.sut().flush(fh)
                } else {
                    self.sut().fsync(fh)
                };
                // Cleared before the release hands a failed upload to the
                // background queue, which tries again at once.
                self.admin("/__faults/clear", "");
                match r {
                    Ok(()) if close => self.release(i, true)?,
                    // Nothing to upload, or the server already had it.
                    Ok(()) => self.check_server_handle(i)?,
                    Err(libc::EIO) if close => {
                        EIO_SEEN.fetch_add(1, Ordering::Relaxed);
                        self.retrying.insert(self.model.handles[i].file);
                        self.release(i, false)?
                    }
                    Err(libc::EIO) => {
                        EIO_SEEN.fetch_add(1, Ordering::Relaxed);
                        self.retrying.insert(self.model.handles[i].file);
                    }
                    Err(e) => return Err(errs("flush/fsync under a fault", e)),
                }
            }
        }
        Ok(())
    }

    /// close(2) of model handle `i`.
    fn close(&mut self, i: usize, check: bool) -> Check {
        let fh = self.fhs[i];
        self.sut().flush(fh).map_err(|e| errs("flush", e))?;
        if self.model.handles[i].writable {
            // A writer's close sends the content (if it is not clean).
            self.retrying.remove(&self.model.handles[i].file);
        }
        self.release(i, check)
    }

    /// The release of model handle `i`; with `check`, a last close in
    /// close-synchronous mode must have put the content on the server.
    fn release(&mut self, i: usize, check: bool) -> Check {
        let fh = self.fhs.remove(i);
        self.sut().release(fh).map_err(|e| errs("release", e))?;
        let closed = self.model.close(i);
        let last = self.model.open_count(closed.file) == 0;
        if check && last && !self.spec.write_back && !self.retrying.contains(&closed.file) {
            if let Some(name) = self.model.name_of(closed.file).map(str::to_string) {
                self.check_server_file(&name)?;
            }
        }
        Ok(())
    }

    fn close_all(&mut self) -> Check {
        while !self.model.handles.is_empty() {
            self.close(0, true)?;
        }
        Ok(())
    }

    /// The names the core shows, with their sizes, are the model's.
    fn check_names(&mut self) -> Check {
        for name in NAMES {
            let got = self.sut().lookup(name).map(|(_, size)| size);
            let want = self.model.content_of(name).map(|c| c.len() as u64);
            match (want, got) {
                (Some(w), Ok(g)) if w == g => {}
                (None, Err(libc::ENOENT)) => {}
                (w, g) => return Err(format!("lookup {name}: model size {w:?}, core {g:?}")),
            }
        }
        Ok(())
    }

    /// The server holds the content of model handle `i`'s file under its
    /// name (if it still has one).
    fn check_server_handle(&self, i: usize) -> Check {
        match self.model.name_of(self.model.handles[i].file) {
            Some(name) => self.check_server_file(name),
            None => Ok(()),
        }
    }

    fn check_server_file(&self, name: &str) -> Check {
        let got = self.rt.block_on(download(&self.client, &self.path(name)))?;
        let want = self.model.content_of(name);
        match (want, got) {
            (Some(w), Some(g)) => same_bytes(&format!("server's {name}"), w, &g),
            (None, None) => Ok(()),
            (w, g) => Err(format!(
                "server's {name}: model has {:?} bytes, server {:?}",
                w.map(Vec::len),
                g.map(|g| g.len())
            )),
        }
    }

    fn path(&self, name: &str) -> SmhPath {
        self.spec.root.join(name).expect("path")
    }

    /// Closes everything, drains, and compares the core's view, the
    /// server's files and the cache dir with the model.
    fn finish(mut self) -> Check {
        self.close_all()?;
        let left = self.sut().drain(Duration::from_secs(30));
        if left > 0 {
            return Err(format!("{left} uploads still pending after 30 s"));
        }
        let want = self.model.files();
        // Through the core: listing, sizes, whole contents.
        let listed = self.sut().list().map_err(|e| errs("readdir", e))?;
        let want_sizes: Vec<(String, u64)> = want
            .iter()
            .map(|(n, c)| (n.clone(), c.len() as u64))
            .collect();
        if listed != want_sizes {
            return Err(format!("readdir: model {want_sizes:?}, core {listed:?}"));
        }
        for (name, content) in &want {
            let sut = self.sut();
            let fh = sut.open(name, false, false).map_err(|e| errs("open", e))?;
            let got = sut
                .read(fh, 0, content.len() + 1)
                .map_err(|e| errs("read", e))?;
            sut.flush(fh).map_err(|e| errs("flush", e))?;
            sut.release(fh).map_err(|e| errs("release", e))?;
            same_bytes(&format!("final read of {name}"), content, &got)?;
        }
        // On the server, read with a client of our own.
        let server = self
            .rt
            .block_on(server_files(&self.client, &self.spec.root))?;
        let names: Vec<&String> = server.keys().collect();
        let want_names: Vec<&String> = want.keys().collect();
        if names != want_names {
            return Err(format!(
                "server files: model {want_names:?}, server {names:?}"
            ));
        }
        for (name, content) in &want {
            same_bytes(&format!("server's {name}"), content, &server[name])?;
        }
        // Nothing landed outside the mounted directory.
        let now = self.rt.block_on(root_files(&self.client))?;
        if let Some(f) = now.iter().find(|f| !self.root_files.contains(f)) {
            return Err(format!("a file outside the mounted directory: /{f}"));
        }
        // An idle cache directory is empty (README, Durable uploads).
        let left: Vec<_> = std::fs::read_dir(&self.spec.cache_dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        if !left.is_empty() {
            return Err(format!("cache dir not empty when idle: {left:?}"));
        }
        self.sut.take().expect("mounted").unmount(false);
        Ok(())
    }
}

fn errs(what: &str, e: Errno) -> String {
    format!("{what} failed: {}", std::io::Error::from_raw_os_error(e))
}

fn same_bytes(what: &str, want: &[u8], got: &[u8]) -> Check {
    if want == got {
        return Ok(());
    }
    let first = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    Err(format!(
        "{what}: {} bytes expected, {} read; first difference at {first}",
        want.len(),
        got.len()
    ))
}

/// A whole file downloaded through the API; `None` if missing.
async fn download(client: &SmhClient, path: &SmhPath) -> Result<Option<Vec<u8>>, String> {
    let Some(head) = client.head_file(path).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let url = client.download_url(path).await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while (out.len() as u64) < head.size {
        let chunk = client
            .read_range(&url, out.len() as u64, 1 << 20)
            .await
            .map_err(|e| e.to_string())?;
        if chunk.is_empty() {
            return Err(format!("short download of {path} at {}", out.len()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// Names of the files (not directories) at the space's root.
async fn root_files(client: &SmhClient) -> Result<Vec<String>, String> {
    let all = client
        .list_all(&SmhPath::root())
        .await
        .map_err(|e| e.to_string())?;
    Ok(all
        .into_iter()
        .filter(|e| !e.kind.is_dir())
        .map(|e| e.name)
        .collect())
}

/// Every file of a directory on the server, downloaded.
async fn server_files(
    client: &SmhClient,
    dir: &SmhPath,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    for e in client.list_all(dir).await.map_err(|e| e.to_string())? {
        if e.kind.is_dir() {
            return Err(format!("unexpected directory {}", e.name));
        }
        let path = dir.join(&e.name).map_err(|e| e.to_string())?;
        let body = download(client, &path)
            .await?
            .ok_or_else(|| format!("{path} listed but not downloadable"))?;
        out.insert(e.name, body);
    }
    Ok(out)
}
