//! Async client for the SMH business API.
//!
//! `SmhClient` is cheap to clone; it owns the token, retries with backoff and
//! decodes SMH errors into [`SmhError`]. Uploads live in [`upload`].

pub mod client;
pub mod codes;
pub mod delta;
mod dirmeta;
pub mod download;
pub mod error;
pub mod hash;
pub mod part_source;
pub mod path;
pub mod redact;
pub mod space;
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
pub use upload::{BeginOutcome, ProgressHook, UploadKind, UploadOptions, UploadPlan};
