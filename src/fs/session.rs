//! A mount's life: mounting with the kernel, serving until unmounted, the
//! signal handling around it and waiting for uploads in flight.

use std::path::PathBuf;
use std::time::Duration;

use fuser::{INodeNo, MountOption, SessionACL};

use std::sync::Arc;

use tokio::runtime::Handle;

use super::core::{Invalidation, SmhFs};

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountConfig {
    pub mountpoint: PathBuf,
    pub allow_other: bool,
    pub read_only: bool,
    pub threads: usize,
    pub noexec: bool,
    /// Shown as the mount's source (`LIB:SPACE/PATH`).
    pub fsname: String,
    /// How long unmount/SIGTERM wait for uploads in flight.
    pub unmount_timeout: Duration,
}

/// Mounts `fuse` (the adapter over `fs`) and serves until unmounted (by `fusermount3 -u`, `umount`, or
/// SIGINT/SIGTERM, which unmount cleanly). `on_mounted` runs once the mount
/// is live. Uploads in flight finish before this returns (at most
/// `unmount_timeout`; a second signal exits at once, keeping staged files).
pub fn serve<F: fuser::Filesystem + Send + Sync + 'static>(
    fuse: F,
    fs: Arc<SmhFs>,
    rt: Handle,
    cfg: &MountConfig,
    on_mounted: impl FnOnce(),
) -> std::io::Result<()> {
    let mut options = vec![
        // The source as written in fstab (so `mount -a` sees it mounted) and
        // type `fuse.smhfs`: the pure-Rust mount drops `Subtype`, the kernel
        // takes `subtype=` as a mount option.
        MountOption::FSName(cfg.fsname.clone()),
        MountOption::CUSTOM("subtype=smhfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoAtime,
    ];
    options.push(if cfg.read_only {
        MountOption::RO
    } else {
        MountOption::RW
    });
    if cfg.noexec {
        options.push(MountOption::NoExec);
    }
    let mut config = fuser::Config::default();
    config.mount_options = options;
    config.acl = if cfg.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(cfg.threads.max(1));
    config.clone_fd = true;
    let timeout = cfg.unmount_timeout;
    let mut session = fuser::Session::new(fuse, &cfg.mountpoint, &config)?;
    // Names the kernel must forget (a rename-upload moved the inode), sent
    // from a thread of their own: a notification must never wait inside a
    // request the kernel is waiting for.
    let notifier = session.notifier();
    let (tx, rx) = std::sync::mpsc::channel::<Invalidation>();
    fs.set_invalidator(tx);
    match super::caller::MountRef::find(&cfg.mountpoint) {
        Some(m) => fs.set_mount(m),
        None => tracing::warn!(
            "cannot find this mount in /proc/self/mountinfo; every close of a written file uploads"
        ),
    }
    std::thread::spawn(move || {
        for note in rx {
            let r = match &note {
                Invalidation::Entry { parent, name } => {
                    notifier.inval_entry(INodeNo(*parent), name)
                }
                Invalidation::Inode(ino) => notifier.inval_inode(INodeNo(*ino), 0, 0),
            };
            // ENOENT: the kernel did not have it cached.
            if let Err(e) = r {
                tracing::debug!(?note, "kernel invalidation: {e}");
            }
        }
    });
    let mut unmounter = session.unmount_callable();
    let mountpoint = cfg.mountpoint.clone();
    let fs2 = fs.clone();
    rt.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!(mountpoint = %mountpoint.display(), "signal received, unmounting");
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = unmounter.unmount() {
                tracing::info!("unmount: {e}; detaching lazily (open files finish first)");
                if let Err(e) = super::mountsys::lazy_detach(&mountpoint) {
                    tracing::warn!("lazy unmount failed: {e}");
                }
            }
        })
        .await;
        // The session ends once the last open file is closed; a close() that
        // is uploading finishes first. Bounded: exit anyway after the timeout,
        // at once on a second signal. Unconfirmed staged files are kept.
        let again = async {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(timeout) => {
                tracing::warn!(in_flight = fs2.uploads_in_flight(),
                    "still busy after unmount_timeout; exiting, unfinished uploads stay staged");
            }
            _ = again => {
                tracing::warn!(in_flight = fs2.uploads_in_flight(),
                    "second signal; exiting now, unfinished uploads stay staged");
            }
        }
        std::process::exit(1);
    });
    if !fs.config().poll_interval.is_zero() {
        rt.spawn(super::follow::run(fs.clone()));
    }
    tracing::info!(mountpoint = %cfg.mountpoint.display(), "mounted");
    on_mounted();
    let res = session.run();
    if fs.uploads_in_flight() > 0 {
        tracing::info!(
            in_flight = fs.uploads_in_flight(),
            "unmounted; waiting for uploads in flight"
        );
    }
    if !rt.block_on(fs.wait_idle(timeout)) {
        tracing::warn!("uploads still running after unmount_timeout; their staged files are kept");
    }
    // Staged files are settled by the caller after the write-back queue
    // drained (`SmhFs::discard_confirmed_staged`): before it, a queued
    // upload would be reported as unconfirmed.
    res
}
