//! The filesystem core (FUSE-free) and its thin fuser adapter.
//!
//! [`core::SmhFs`] holds all behaviour as async methods returning
//! [`FsError`]; [`fuse`] only maps kernel requests onto it, so the core can be
//! reasoned about (and tested, `tests/mount_core.rs`) without a kernel.
//!
//! Semantics in short:
//! * **Browse**: a listing is streamed 1000 entries per request, a page when
//!   `readdir` gets there ([`dirstream`]), and fills the attribute cache, so
//!   `ls -l` costs no per-entry request; inodes exist only for what the
//!   kernel holds ([`inode`]). Attributes live
//!   `attr_timeout`, listings `dir_timeout` (longer while the change feed is
//!   followed, see [`freshness`]), "missing" answers about 1 s; an expired
//!   listing is revalidated with its eTag (`listing.rs`); our own changes
//!   update both caches at once.
//! * **Read**: ranged GETs on the download URL of one version per handle
//!   (cached per version; `ESTALE` once that version is gone, see [`read`]),
//!   sequential read-ahead: a queue of chunk GETs in flight ahead of the
//!   reader, deepening 1 -> 16 MiB; 256 MiB of read-ahead in total at most.
//!   Read-only handles bypass the kernel page cache (direct I/O, mmap
//!   allowed); write-only handles too, see [`fuse`].
//! * **Write**: data goes to a [`staging::StagedFile`] in `cache_dir` (a new
//!   file of up to 1 MiB: to memory until close, see [`memstage`]). An
//!   existing file is downloaded into it at the first write or truncate (not
//!   at open, so read-write opens that only read cost nothing); `O_TRUNC`
//!   starts empty. Past 8 MiB of in-order writes the staged file is written
//!   with O_DIRECT and hashed off the FUSE thread ([`direct`]). `close()`
//!   (flush) and `fsync()` upload a dirty file and return the upload's
//!   errno; the staged copy is deleted only after the server confirmed, and
//!   kept (with an ERROR line naming it) otherwise.
//! * **Conflicts**: see [`core`] for what `overwrite`, `rename` and `ask` mean.
//! * **Namespace**: `rmdir` lists first (SMH deletes recursively) and fails
//!   with ENOTEMPTY; `unlink` uses the recycle bin unless `permanent_delete`;
//!   rename moves files (replacing a file target) and directories (onto an
//!   empty directory only). A file unlinked or replaced while open stays
//!   readable and writable through its handles (content only the server
//!   had is downloaded first) and is never uploaded (`held.rs`). Hard links:
//!   EPERM. Symlinks, FIFOs, sockets and devices are small marked files or
//!   native SMH symlinks ([`linkstr`], `links.rs`).
//! * **Metadata**: chmod/chown/utimens are stored with the file's version
//!   (custom metadata and `localModificationTime`): carried by a pending
//!   upload, else sent as an instant upload of the same content; a
//!   directory's are kept for the session ([`attrs`]). `copy_file_range` of
//!   a whole file into an empty new one is one server copy (`copy.rs`).

mod attrs;
pub mod budget;
pub mod cache;
pub mod cachedir;
mod caller;
pub mod control;
mod copy;
pub mod core;
pub mod direct;
mod dirlist;
mod dirs;
pub mod dirstream;
pub mod error;
mod files;
mod follow;
pub mod freshness;
pub mod fuse;
mod fusekind;
mod gauges;
mod held;
pub mod inflight;
pub mod inode;
pub mod journal;
mod links;
pub mod linkstr;
mod listing;
pub mod lostupdate;
pub mod memstage;
pub mod meta;
pub(crate) mod metastate;
pub mod mountsys;
mod mtimens;
pub(crate) mod openfile;
mod own;
mod packmeta;
pub mod posix;
pub mod progress;
pub mod queue;
pub mod read;
pub(crate) mod remoteino;
pub mod requests;
pub mod session;
pub mod staging;
mod stream;
pub mod upload;
mod uploader;
pub mod writeback;

pub use self::core::{FsConfig, SmhFs};
pub use error::FsError;
