//! The thin `fuser::Filesystem` adapter.
//!
//! Each callback maps its arguments, spawns the core operation on the tokio
//! runtime and replies from that task, so the FUSE threads never wait on the
//! network. `FsError` becomes an `Errno` in exactly one place (the private `errno` function).
//! Every callback starts with [`SmhFuse::begin`], which counts, times and
//! spans the request ([`super::requests`]); `spawn` carries that into the task.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;
use tracing::Instrument;

use super::cache::Kind;
use super::core::{Attr, SmhFs};
use super::error::FsError;
use super::fusekind;
use super::inode::{FileHandle as Fh, InodeNo};
use super::metastate::AttrChange;
use super::requests::{Op, OpTable, Served};
pub use super::session::MountConfig;

pub use super::metastate::Presentation;

pub struct SmhFuse {
    fs: Arc<SmhFs>,
    rt: Handle,
    look: Presentation,
    ttl: Duration,
    /// Answer `user.smhfs.*` getxattr (`-o xattr`); otherwise ENOSYS.
    xattrs: bool,
    /// Read-only handles bypass the page cache (see `read_flags`).
    direct_reads: bool,
    /// Per-operation request metrics.
    ops: Arc<OpTable>,
}

const BLOCK: u32 = 4096;
/// `st_blksize`, the I/O size tools like `cp` and `cat` use for their
/// buffers: one request of `max_write` instead of 8 of 128 KiB.
const IO_SIZE: u32 = 1 << 20;

/// The one place filesystem errors become errno values for the kernel
/// (counted by operation and errno).
fn errno(op: &'static str, e: &FsError) -> Errno {
    if e.is_routine() {
        tracing::debug!(op, "{e}");
    } else {
        tracing::warn!(op, "{e}");
    }
    refuse(op, e.errno())
}

/// An error answer the adapter decides itself (EPERM for links, ...).
fn refuse(op: &'static str, code: i32) -> Errno {
    super::requests::failed(op, code);
    Errno::from_i32(code)
}

impl SmhFuse {
    pub fn new(fs: Arc<SmhFs>, rt: Handle, look: Presentation) -> Self {
        let ttl = fs.config().attr_timeout;
        Self {
            fs,
            rt,
            look,
            ttl,
            xattrs: false,
            direct_reads: false,
            ops: OpTable::register(),
        }
    }

    /// A request arriving: counted, timed until its reply, and run in its
    /// span (entered here for the synchronous part; `spawn` carries it on).
    fn begin(&self, req: &Request, op: Op, ino: u64) -> (Served, tracing::span::EnteredSpan) {
        let call = self.ops.begin(op, req.unique().0, ino, req.pid());
        let entered = call.span().clone().entered();
        (call, entered)
    }

    pub fn with_status_xattrs(mut self, on: bool) -> Self {
        self.xattrs = on;
        self
    }

    fn file_attr(look: Presentation, a: &Attr) -> FileAttr {
        let kind = fusekind::file_type(&a.meta);
        let nlink = if a.meta.kind.is_dir() { 2 } else { 1 };
        let (p, perm) = (&a.meta.posix, look.perm(a.meta.kind, &a.meta.posix));
        FileAttr {
            ino: INodeNo(a.ino.0),
            size: a.meta.size,
            blocks: a.meta.size.div_ceil(512),
            atime: a.meta.mtime,
            mtime: a.meta.mtime,
            ctime: a.meta.ctime,
            crtime: a.meta.ctime,
            kind,
            perm: perm as u16,
            nlink,
            uid: look.uid(p),
            gid: look.gid(p),
            rdev: fusekind::rdev(&a.meta),
            blksize: IO_SIZE,
            flags: 0,
        }
    }

    /// Runs `f` on the runtime, in the request's span; it replies itself.
    fn spawn<F>(&self, call: Served, f: impl FnOnce(Arc<SmhFs>, Presentation, Duration) -> F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        // Counted from arrival: unmount waits for requests being served.
        let op = self.fs.op_guard();
        // Boxed where it is made: an upload's future is tens of KiB, and
        // the task would otherwise copy it at every move into the runtime.
        let fut = Box::pin(f(self.fs.clone(), self.look, self.ttl));
        let span = call.span().clone();
        self.rt.spawn(
            async move {
                fut.await;
                drop(op);
                drop(call);
            }
            .instrument(span),
        );
    }

    /// For operations whose only answer is success or an errno.
    fn spawn_empty<F>(&self, call: Served, reply: ReplyEmpty, f: impl FnOnce(Arc<SmhFs>) -> F)
    where
        F: std::future::Future<Output = Result<(), FsError>> + Send + 'static,
    {
        let op = call.op();
        self.spawn(call, |fs, _, _| {
            let fut = f(fs);
            async move {
                match fut.await {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(errno(op, &e)),
                }
            }
        });
    }
}

impl Filesystem for SmhFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // O_TRUNC arrives with open, so a truncating open never downloads.
        let _ = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC);
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        // `ls -l`: names and attributes in one pass, no lookup per entry.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        // Direct-I/O reads only where mmap of such handles works (kernel
        // 6.6+); older kernels would refuse mmap with ENODEV.
        self.direct_reads = config
            .add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
            .is_ok();
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (call, _in) = self.begin(req, Op::Lookup, parent.0);
        match self.fs.lookup_cached(InodeNo(parent.0), name) {
            Some(Ok(a)) => {
                return reply.entry(&self.ttl, &Self::file_attr(self.look, &a), Generation(0))
            }
            Some(Err(e)) => return reply.error(errno("lookup", &e)),
            None => {}
        }
        let name = name.to_owned();
        self.spawn(call, |fs, look, ttl| async move {
            match fs.lookup(InodeNo(parent.0), &name).await {
                Ok(a) => reply.entry(&ttl, &Self::file_attr(look, &a), Generation(0)),
                Err(e) => reply.error(errno("lookup", &e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(InodeNo(ino.0), nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let (call, _in) = self.begin(req, Op::Getattr, ino.0);
        match self.fs.getattr_cached(InodeNo(ino.0)) {
            Some(Ok(a)) => return reply.attr(&self.ttl, &Self::file_attr(self.look, &a)),
            Some(Err(e)) => return reply.error(errno("getattr", &e)),
            None => {}
        }
        self.spawn(call, |fs, look, ttl| async move {
            match fs.getattr(InodeNo(ino.0)).await {
                Ok(a) => reply.attr(&ttl, &Self::file_attr(look, &a)),
                Err(e) => reply.error(errno("getattr", &e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let (call, _in) = self.begin(req, Op::Setattr, ino.0);
        // Stored as metadata (`attrs.rs`); atime is shown as mtime.
        let mtime = mtime.map(fusekind::time_of);
        let change = AttrChange {
            mode,
            uid,
            gid,
            mtime,
        };
        self.spawn(call, |fs, look, ttl| async move {
            match fs.setattr(InodeNo(ino.0), size, change).await {
                Ok(a) => reply.attr(&ttl, &Self::file_attr(look, &a)),
                Err(e) => reply.error(errno("setattr", &e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (call, _in) = self.begin(req, Op::Mknod, parent.0);
        let posix = self
            .look
            .for_new(Kind::File, mode & !umask, (req.uid(), req.gid()));
        let name = name.to_owned();
        let owner = self.look.owner_of_new((req.uid(), req.gid()));
        self.spawn(call, |fs, look, ttl| async move {
            let p = InodeNo(parent.0);
            // FIFOs, sockets, devices: marked empty files (`links.rs`).
            let made = match mode & libc::S_IFMT {
                0 | libc::S_IFREG => fs.mknod_file(p, &name, posix).await,
                _ => fs.mknod_special(p, &name, mode, umask, rdev, owner).await,
            };
            match made {
                Ok(a) => reply.entry(&ttl, &Self::file_attr(look, &a), Generation(0)),
                Err(e) => reply.error(errno("mknod", &e)),
            }
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (call, _in) = self.begin(req, Op::Mkdir, parent.0);
        let posix = self
            .look
            .for_new(Kind::Dir, mode & !umask, (req.uid(), req.gid()));
        let name = name.to_owned();
        self.spawn(call, |fs, look, ttl| async move {
            match fs.mkdir(InodeNo(parent.0), &name, posix).await {
                Ok(a) => reply.entry(&ttl, &Self::file_attr(look, &a), Generation(0)),
                Err(e) => reply.error(errno("mkdir", &e)),
            }
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (call, _in) = self.begin(req, Op::Unlink, parent.0);
        let name = name.to_owned();
        self.spawn_empty(call, reply, |fs| async move {
            fs.unlink(InodeNo(parent.0), &name).await
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (call, _in) = self.begin(req, Op::Rmdir, parent.0);
        let name = name.to_owned();
        self.spawn_empty(call, reply, |fs| async move {
            fs.rmdir(InodeNo(parent.0), &name).await
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (call, _in) = self.begin(req, Op::Symlink, parent.0);
        let name = link_name.to_owned();
        let target = target.as_os_str().as_bytes().to_vec();
        let owner = self.look.owner_of_new((req.uid(), req.gid()));
        self.spawn(call, |fs, look, ttl| async move {
            match fs.symlink(InodeNo(parent.0), &name, &target, owner).await {
                Ok(a) => reply.entry(&ttl, &Self::file_attr(look, &a), Generation(0)),
                Err(e) => reply.error(errno("symlink", &e)),
            }
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let (call, _in) = self.begin(req, Op::Readlink, ino.0);
        self.spawn(call, |fs, _, _| async move {
            match fs.readlink(InodeNo(ino.0)).await {
                Ok(s) => reply.data(&s),
                Err(e) => reply.error(errno("readlink", &e)),
            }
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (call, _in) = self.begin(req, Op::Rename, parent.0);
        if flags.intersects(RenameFlags::RENAME_EXCHANGE | RenameFlags::RENAME_WHITEOUT) {
            reply.error(refuse("rename", libc::EINVAL));
            return;
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let (name, newname) = (name.to_owned(), newname.to_owned());
        self.spawn_empty(call, reply, |fs| async move {
            fs.rename(
                InodeNo(parent.0),
                &name,
                InodeNo(newparent.0),
                &newname,
                noreplace,
            )
            .await
        });
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (_call, _in) = self.begin(req, Op::Link, ino.0);
        reply.error(refuse("link", libc::EPERM));
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (call, _in) = self.begin(req, Op::Open, ino.0);
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        let direct_reads = self.direct_reads;
        let pid = req.pid();
        self.spawn(call, |fs, _, _| async move {
            match fs.open(InodeNo(ino.0), write, truncate).await {
                Ok(fh) => {
                    fs.note_opener(fh, pid);
                    reply.opened(
                        FileHandle(fh.0),
                        fusekind::open_flags(flags.0, direct_reads),
                    )
                }
                Err(e) => reply.error(errno("open", &e)),
            }
        });
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (call, _in) = self.begin(req, Op::Read, ino.0);
        self.spawn(call, |fs, _, _| async move {
            match fs.read(Fh(fh.0), offset, size).await {
                Ok(b) => reply.data(&b),
                Err(e) => reply.error(errno("read", &e)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (call, _in) = self.begin(req, Op::Write, ino.0);
        match self.fs.write_now(Fh(fh.0), offset, data) {
            Some(Ok(n)) => return reply.written(n),
            Some(Err(e)) => return reply.error(errno("write", &e)),
            None => {}
        }
        let data = data.to_vec();
        self.spawn(call, |fs, _, _| async move {
            match fs.write(Fh(fh.0), offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno("write", &e)),
            }
        });
    }

    fn flush(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let (call, _in) = self.begin(req, Op::Flush, ino.0);
        match self.fs.flush_now(Fh(fh.0)) {
            Some(Ok(())) => return reply.ok(),
            Some(Err(e)) => return reply.error(errno("flush", &e)),
            None => {}
        }
        // The pid tells the opener's last close from a dup'ed or forked
        // descriptor's (close rules: `openfile.rs`).
        let pid = req.pid();
        self.spawn_empty(call, reply, |fs| async move {
            fs.flush_from(Fh(fh.0), Some(pid)).await
        });
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let (call, _in) = self.begin(req, Op::Release, ino.0);
        match self.fs.release_now(Fh(fh.0)) {
            Some(Ok(())) => return reply.ok(),
            Some(Err(e)) => return reply.error(errno("release", &e)),
            None => {}
        }
        self.spawn_empty(call, reply, |fs| async move { fs.release(Fh(fh.0)).await });
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let (call, _in) = self.begin(req, Op::Fsync, ino.0);
        self.spawn_empty(call, reply, |fs| async move { fs.fsync(Fh(fh.0)).await });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let (_call, _in) = self.begin(req, Op::Opendir, ino.0);
        match self.fs.opendir(InodeNo(ino.0)) {
            Ok(fh) => reply.opened(FileHandle(fh.0), FopenFlags::empty()),
            Err(e) => reply.error(errno("opendir", &e)),
        }
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let (call, _in) = self.begin(req, Op::Readdir, ino.0);
        self.spawn(call, |fs, _, _| async move {
            match fs.readdir(InodeNo(ino.0), Fh(fh.0), offset).await {
                Ok(window) => {
                    for (off, it) in window.entries() {
                        let kind = fusekind::file_type(&it.meta);
                        if reply.add(INodeNo(it.ino.0), off, kind, &it.name) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(errno("readdir", &e)),
            }
        });
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: fuser::ReplyDirectoryPlus,
    ) {
        let (call, _in) = self.begin(req, Op::Readdirplus, ino.0);
        self.spawn(call, |fs, look, ttl| async move {
            let dir = match fs.path_of(ino.0) {
                Ok(d) => d,
                Err(e) => return reply.error(errno("readdirplus", &e)),
            };
            match fs.readdir(InodeNo(ino.0), Fh(fh.0), offset).await {
                Ok(window) => {
                    for (off, it) in window.entries() {
                        let dot = off <= 2;
                        let eino = if dot {
                            it.ino
                        } else {
                            match fs.readdirplus_ino(&dir, &it.name) {
                                Some(e) => e,
                                None => continue,
                            }
                        };
                        let attr = Self::file_attr(
                            look,
                            &Attr {
                                ino: eino,
                                meta: it.meta.clone(),
                            },
                        );
                        if reply.add(INodeNo(eino.0), off, &it.name, &ttl, &attr, Generation(0)) {
                            if !dot {
                                fs.forget(eino, 1);
                            }
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(errno("readdirplus", &e)),
            }
        });
    }

    fn releasedir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        let (_call, _in) = self.begin(req, Op::Releasedir, ino.0);
        self.fs.releasedir(Fh(fh.0));
        reply.ok();
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let (_call, _in) = self.begin(req, Op::Fsyncdir, ino.0);
        // Directory changes are synchronous with the server already.
        reply.ok();
    }

    fn statfs(&self, req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let (call, _in) = self.begin(req, Op::Statfs, ino.0);
        self.spawn(call, |fs, _, _| async move {
            match fs.statfs().await {
                Ok(s) => {
                    let b = BLOCK as u64;
                    let total = s.total / b;
                    let free = s.free / b;
                    reply.statfs(total, free, free, 1 << 32, 1 << 31, BLOCK, 255, BLOCK);
                }
                Err(e) => reply.error(errno("statfs", &e)),
            }
        });
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let (call, _in) = self.begin(req, Op::CopyFileRange, ino_in.0);
        let (fh_in, fh_out) = (Fh(fh_in.0), Fh(fh_out.0));
        self.spawn(call, move |fs, _, _| async move {
            let r = fs.copy_range(fh_in, offset_in, fh_out, offset_out, len);
            match r.await {
                Ok(n) => reply.written(n.min(u32::MAX as u64) as u32),
                Err(e) => reply.error(errno("copy_file_range", &e)),
            }
        });
    }

    fn lseek(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        let (call, _in) = self.begin(req, Op::Lseek, ino.0);
        let data = match whence {
            libc::SEEK_DATA => true,
            libc::SEEK_HOLE => false,
            // The kernel answers SEEK_SET/CUR/END itself.
            _ => return reply.error(refuse("lseek", libc::EINVAL)),
        };
        self.spawn(call, move |fs, _, _| async move {
            match fs.seek_data(Fh(fh.0), offset.max(0) as u64, data).await {
                Ok(at) => reply.offset(at as i64),
                Err(e) => reply.error(errno("lseek", &e)),
            }
        });
    }

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        let (_call, _in) = self.begin(req, Op::Ioctl, ino.0);
        // Not a terminal or device (isatty() and friends ask).
        reply.error(refuse("ioctl", libc::ENOTTY));
    }

    fn getxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        size: u32,
        reply: fuser::ReplyXattr,
    ) {
        let (call, _in) = self.begin(req, Op::Getxattr, ino.0);
        // SMH keeps no extended attributes. ENOSYS makes the kernel stop
        // asking (for `security.*` on every entry of `ls -l`), so that is the
        // answer unless `-o xattr` shows upload progress as read-only
        // `user.smhfs.status` (root) and `user.smhfs.upload`; then other names
        // get ENODATA at once, from this thread.
        if !self.xattrs {
            reply.error(refuse("getxattr", libc::ENOSYS));
            return;
        }
        let Some(name) = name.to_str().filter(|n| n.starts_with("user.smhfs.")) else {
            reply.error(refuse("getxattr", libc::ENODATA));
            return;
        };
        let name = name.to_string();
        self.spawn(call, |fs, _, _| async move {
            match fs.upload_xattr(InodeNo(ino.0), &name).await {
                None => reply.error(refuse("getxattr", libc::ENODATA)),
                Some(v) if size == 0 => reply.size(v.len() as u32),
                Some(v) if v.len() > size as usize => reply.error(refuse("getxattr", libc::ERANGE)),
                Some(v) => reply.data(&v),
            }
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        let (_call, _in) = self.begin(req, Op::Listxattr, ino.0);
        reply.error(refuse("listxattr", libc::ENOSYS));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (call, _in) = self.begin(req, Op::Create, parent.0);
        let posix = self
            .look
            .for_new(Kind::File, mode & !umask, (req.uid(), req.gid()));
        if mode & libc::S_IFMT != 0 && mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(refuse("create", libc::EPERM));
            return;
        }
        let pid = req.pid();
        match self.fs.create_now(InodeNo(parent.0), name, posix) {
            Some(Ok((a, fh))) => {
                self.fs.note_opener(fh, pid);
                return reply.created(
                    &self.ttl,
                    &Self::file_attr(self.look, &a),
                    Generation(0),
                    FileHandle(fh.0),
                    fusekind::open_flags(flags, self.direct_reads),
                );
            }
            Some(Err(e)) => return reply.error(errno("create", &e)),
            None => {}
        }
        let name = name.to_owned();
        let direct_reads = self.direct_reads;
        self.spawn(call, |fs, look, ttl| async move {
            match fs.create(InodeNo(parent.0), &name, posix).await {
                Ok((a, fh)) => {
                    fs.note_opener(fh, pid);
                    reply.created(
                        &ttl,
                        &Self::file_attr(look, &a),
                        Generation(0),
                        FileHandle(fh.0),
                        fusekind::open_flags(flags, direct_reads),
                    )
                }
                Err(e) => reply.error(errno("create", &e)),
            }
        });
    }
}

/// Mounts and serves until unmounted; see [`super::session::serve`].
pub fn mount_and_serve(
    fuse: SmhFuse,
    cfg: &MountConfig,
    on_mounted: impl FnOnce(),
) -> std::io::Result<()> {
    let (fs, rt) = (fuse.fs.clone(), fuse.rt.clone());
    super::session::serve(fuse, fs, rt, cfg, on_mounted)
}
