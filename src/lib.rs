//! smhfs: a FUSE filesystem for Tencent Cloud Smart Media Hosting, and an
//! SMH-compatible server on local disk (`smhfs serve`).
//!
//! Layers: [`smh`] is the API client, [`server`] the local server, [`fs`]
//! the filesystem core with its thin fuser adapter, [`cli`] the mount options.

pub mod cli;
pub mod cmd;
pub mod daemon;
pub mod dio;
pub mod fs;
pub mod logging;
pub mod server;
pub mod smh;
