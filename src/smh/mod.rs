//! Async client for the SMH business API.
//!
//! `SmhClient` is cheap to clone; it owns the token, retries with backoff and
//! decodes SMH errors into [`SmhError`]. Uploads live in [`upload`].

pub mod client;
pub mod codes;
mod confirm;
pub mod delta;
pub mod download;
pub mod error;
pub mod hash;
pub mod links;
pub mod meta;
pub mod part_source;
pub mod path;
pub mod redact;
pub mod space;
pub mod stream;
pub mod telemetry;
pub mod time;
pub mod types;
pub mod upload;

pub use client::{ClientConfig, Credentials, FileHead, RetryPolicy, SmhClient};
pub use delta::DeltaPoll;
pub use error::{Result, SmhError};
pub use hash::{ContentHasher, ContentHashes};
pub use part_source::{PartSource, PlainFile, SharedSource};
pub use path::SmhPath;
pub use space::Usage;
pub use types::ConflictStrategy;
pub use upload::{
    BeginOutcome, ConfirmAs, ConfirmHook, ProgressHook, UploadKind, UploadOptions, UploadPlan,
};
