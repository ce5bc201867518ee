//! The integration suite, one binary: real `smhfs serve` processes over HTTP
//! on 127.0.0.1 and real FUSE mounts served by separate `smhfs` processes.
//! A new area gets a module here; shared harness code lives in `common`.

mod common;

mod client_api;
mod coherence;
mod durability;
mod fstab;
mod layout;
mod mount_bigfile;
mod mount_core;
mod mount_links;
mod mount_meta;
mod mount_namespace;
mod mount_rw;
mod mount_scale;
mod mount_sparse;
mod observability;
mod reftests;
mod security;
mod serve_local_smh;
mod serve_security;
mod server_api;
mod server_feed;
mod server_links;
mod server_meta;
mod write_matrix;
