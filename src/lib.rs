//! smhfs: a FUSE filesystem for Tencent Cloud Smart Media Hosting, and an
//! SMH-compatible server on local disk (`smhfs serve`).
//!
//! Layers: [`smh`] is the API client, [`server`] the local server, [`fs`]
//! the filesystem core with its thin fuser adapter, [`cmd`] the command layer (options, mount runner),
//! [`obs`] the metrics recorder and its scrape endpoint.

pub mod cmd;
pub mod daemon;
pub mod dio;
pub mod fs;
pub mod logging;
pub mod obs;
pub mod server;
pub mod smh;
