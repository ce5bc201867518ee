//! The command layer: arguments, THE mount option table, the mount runner,
//! `smhfs resume`, mount points and the mount-helper argv. Everything is
//! checked here before any mount is attempted, so a bad option fails with
//! one line on stderr and a non-zero exit.

pub mod fstab;
pub mod mount;
pub mod mountinfo;
pub mod options;
pub mod optspec;
pub mod resume;
pub mod source;
pub mod status;

pub use fstab::{normalize_argv, split_options};
pub use mount::{run, MountArgs};
pub use mountinfo::mount_at;
pub use options::{MountOptions, OPTIONS};
pub use resume::{run_resume, ResumeArgs};
pub use source::{CredentialsFile, Source};

/// Logs to stderr (foreground mounts, `smhfs resume`).
fn init_logging(debug: bool, format: crate::logging::LogFormat) {
    crate::logging::init(debug, format, &crate::logging::LogTarget::Stderr);
}
