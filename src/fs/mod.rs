//! The filesystem core (FUSE-free) and its thin fuser adapter.
//!
//! [`core::SmhFs`] holds all behaviour as async methods returning
//! [`FsError`]; [`fuse`] only maps kernel requests onto it, so the core can be
//! reasoned about (and tested) without a kernel in the loop.

pub mod cache;
pub mod core;
pub mod error;
pub mod fuse;
pub mod inode;
pub mod read;
pub mod staging;
pub mod upload;

pub use self::core::{FsConfig, SmhFs};
pub use error::FsError;
