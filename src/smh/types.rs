//! Serde models of SMH requests and replies (smh-api.md), shared by the
//! client and `smhfs serve`. Field names are the API's (camelCase); sizes and
//! CRC-64 values travel as strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `conflict_resolution_strategy`: what the server does when the target name
/// already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConflictStrategy {
    /// 409 `SameNameDirectoryOrFileExists`.
    Ask,
    /// The new item gets a free name: `a (1).txt`, `a (2).txt`, ...
    #[default]
    Rename,
    /// Replace an existing file (never a directory).
    Overwrite,
}

impl ConflictStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStrategy::Ask => "ask",
            ConflictStrategy::Rename => "rename",
            ConflictStrategy::Overwrite => "overwrite",
        }
    }
}

impl std::str::FromStr for ConflictStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ask" => Ok(Self::Ask),
            "rename" => Ok(Self::Rename),
            "overwrite" => Ok(Self::Overwrite),
            other => Err(format!(
                "invalid conflict strategy {other:?} (expected ask, rename or overwrite)"
            )),
        }
    }
}

impl std::fmt::Display for ConflictStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `type` of a listing item. Media libraries say `image`/`video` for files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    Dir,
    File,
    Image,
    Video,
    Symlink,
    Virtual,
    #[serde(other)]
    Other,
}

impl EntryType {
    pub fn is_dir(&self) -> bool {
        matches!(self, EntryType::Dir)
    }
}

/// Error body of every failing API call.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `GET /api/v1/token` and renew.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenReply {
    pub access_token: String,
    pub expires_in: u64,
}

/// Custom metadata of a file or directory: names without the
/// `x-smh-meta-` prefix, lower case.
pub type MetaData = std::collections::BTreeMap<String, String>;

/// One item of a directory listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_modification_time: Option<String>,
    /// Files only; decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<String>,
    /// Custom metadata (`x-smh-meta-<name>` at upload begin), e.g. smhfs's
    /// POSIX attributes (`fs::posix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<MetaData>,
    /// Symlinks: what the link points at (see `../shared/smh-api.md` §4.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_to: Option<String>,
}

/// `GET /api/v1/directory/{lib}/{space}/{path}` (marker mode).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirListing {
    #[serde(default)]
    pub path: Vec<String>,
    /// Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(default)]
    pub file_count: u64,
    #[serde(default)]
    pub sub_dir_count: u64,
    #[serde(default)]
    pub total_num: u64,
    #[serde(default)]
    pub contents: Vec<DirEntry>,
}

/// `GET /api/v1/directory/.../{path}?info`: a file or a directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryInfo {
    #[serde(default)]
    pub path: Vec<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_modification_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Custom metadata (`x-smh-meta-<name>` at upload begin), e.g. smhfs's
    /// POSIX attributes (`fs::posix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<MetaData>,
    /// Symlinks: what the link points at (see `../shared/smh-api.md` §4.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_to: Option<String>,
}

/// `GET /api/v1/file/.../{path}?info`: file metadata plus a download URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// Pre-signed object URL (about 2 h valid on Tencent Cloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cos_url: Option<String>,
    #[serde(rename = "type")]
    pub kind: EntryType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_modification_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64: Option<String>,
    /// Custom metadata (`x-smh-meta-<name>` at upload begin), e.g. smhfs's
    /// POSIX attributes (`fs::posix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<MetaData>,
}

/// Reply of confirm, and of a begin that completed by instant upload (200).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMeta {
    /// Final path (may carry a conflict suffix); `null` if a parent vanished.
    pub path: Option<Vec<String>>,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64: Option<String>,
    /// Custom metadata (`x-smh-meta-<name>` at upload begin), e.g. smhfs's
    /// POSIX attributes (`fs::posix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_data: Option<MetaData>,
    #[serde(default)]
    pub is_overwritten: bool,
}

/// Body of upload begin (simple PUT or POST `?multipart`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeginBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beginning_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_modification_time: Option<String>,
    /// Sent as `x-smh-meta-<name>` headers, not in the JSON body (§4.8).
    #[serde(skip)]
    pub meta: MetaData,
}

/// Upload ticket (begin 201, renew 200, and status's `uploadPartInfo`).
///
/// Header values are kept as JSON values because the API sends some as
/// numbers (`x-cos-traffic-limit: 204800`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadTicket {
    pub domain: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, serde_json::Value>,
    /// Absent in status's `uploadPartInfo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_domain_num: Option<serde_json::Value>,
}

impl UploadTicket {
    /// Headers as strings, exactly as they must be sent with each PUT.
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    }
}

/// Body of confirm.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_modification_time: Option<String>,
}

/// One stored part in an upload status (COS-style capitalised keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartInfo {
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    #[serde(rename = "LastModified", default)]
    pub last_modified: String,
    #[serde(rename = "ETag", default)]
    pub etag: String,
    #[serde(rename = "Size")]
    pub size: u64,
}

/// `GET .../{ConfirmKey}?upload`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadStatus {
    pub confirmed: bool,
    pub path: Option<Vec<String>>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_resolution_strategy: Option<ConflictStrategy>,
    #[serde(default)]
    pub force: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_domain_num: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    #[serde(default)]
    pub parts: Vec<PartInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_part_info: Option<UploadTicket>,
}

/// Reply of directory create / move (rename strategy) and file move / copy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathReply {
    #[serde(default)]
    pub path: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
}

impl PathReply {
    /// A reply naming only the final path.
    pub fn of(path: Vec<String>) -> Self {
        Self {
            path: Some(path),
            creation_time: None,
        }
    }
}

/// Move/copy body: `{"from": ...}` or `{"copyFrom": ...}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_from: Option<String>,
}

impl MoveBody {
    pub fn moving(from: &crate::smh::SmhPath) -> Self {
        Self {
            from: Some(from.to_string()),
            copy_from: None,
        }
    }

    pub fn copying(from: &crate::smh::SmhPath) -> Self {
        Self {
            from: None,
            copy_from: Some(from.to_string()),
        }
    }
}

/// Delete reply when the recycle bin took the item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecycledReply {
    pub recycled_item_id: u64,
}

/// One element of `GET /api/v1/usage/{lib}/{space}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceUsage {
    pub space_id: String,
    /// Quota in bytes; `null` without a quota.
    pub capacity: Option<String>,
    pub available_space: Option<String>,
    /// Bytes used.
    pub size: String,
}

/// `GET /api/v1/space/{lib}/{space}/size`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpaceSize {
    pub size: String,
}

/// `GET /api/v1/usage/{lib}/` (no space): the whole library.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LibraryUsage {
    pub total_file_size: String,
}

/// `GET /api/v1/quota/{lib}/{space}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaReply {
    pub id: u64,
    pub capacity: String,
}

/// `POST /api/v1/space/{lib}`: the new space.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceCreated {
    pub space_id: String,
}

/// One space of `GET /api/v1/space/{lib}/list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceItem {
    pub space_id: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub creation_time: Option<String>,
}

/// `GET /api/v1/space/{lib}/list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpaceList {
    pub list: Vec<SpaceItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// One item of the recycle bin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecycledItem {
    pub recycled_item_id: u64,
    pub original_path: Vec<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub creation_time: Option<String>,
    #[serde(default)]
    pub modification_time: Option<String>,
    pub removal_time: String,
    /// Days left before the item is purged.
    pub remaining_time: u32,
}

/// `GET /api/v1/recycled/{lib}/{space}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecycledList {
    pub contents: Vec<RecycledItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// One item of `POST /api/v1/batch/{lib}/{space}?delete` (§5.1).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDeleteItem {
    pub path: String,
    #[serde(default)]
    pub permanent: bool,
}

/// One item of `?move` (`from`) or `?copy` (`copyFrom`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchMoveItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_from: Option<String>,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_resolution_strategy: Option<ConflictStrategy>,
    /// Another space of the library (not supported by `smhfs serve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_space_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_from_space_id: Option<String>,
}

/// The outcome of one batch item: `status` 200/204 done, else failed
/// (`code`, `message` say why).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemResult {
    pub status: u16,
    /// Delete: the path asked for; move/copy: the final path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycled_item_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_from: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl BatchItemResult {
    /// Whether the item was done.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A batch done synchronously: 200 (all done) or 207 (some failed).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BatchReply {
    pub result: Vec<BatchItemResult>,
}

/// A batch (or other long operation) running as a task: 202.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskCreated {
    pub task_id: u64,
}

/// One element of `GET /api/v1/task/{lib}/{space}/{ids}` (§5.2): `status`
/// 202 running, 200 done, 207 done with failed items, 500 failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskInfo {
    pub task_id: u64,
    pub status: u16,
    /// What the task produced; a batch's is a [`BatchReply`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// `GET /api/v1/fs-delta/{lib}/{space}/cursor` (§4.15): the current
/// position of the space's change log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeltaCursor {
    pub cursor: String,
}

/// `GET /api/v1/fs-delta/{lib}/{space}/delta?cursor=C&limit=N`: the changes
/// after `C`, oldest first; `cursor` is where to ask next time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaPage {
    pub cursor: String,
    /// More entries are waiting now (ask again at once).
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub contents: Vec<DeltaEntry>,
}

/// Where a feed entry's item is after the change (`location`).
pub mod delta_location {
    pub const NORMAL: u8 = 0;
    pub const RECYCLE_BIN: u8 = 1;
    pub const HISTORY: u8 = 2;
    pub const DELETED: u8 = 3;
}

/// One change. Items are named by `inode` + `parentInode` + `name`; for a
/// delete, they are where the item was; for a move, where it is now (and
/// `extraInfo` says where it came from: `fromParentInode`, `fromName`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaEntry {
    /// `FILE.CREATE`, `FILE.MODIFY`, `FILE.MOVE`, `FILE.DELETE`,
    /// `FILE.RESTORE`, and `DIR.*` the same for directories.
    pub event_type: String,
    #[serde(default)]
    pub event_time: String,
    pub inode: String,
    #[serde(default)]
    pub parent_inode: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Files only; decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modification_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_creation_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_modification_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// [`delta_location`]: 0 normal, 1 recycle bin, 2 history, 3 deleted.
    #[serde(default)]
    pub location: u8,
    /// Symlinks: the target's inode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_to: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_info: BTreeMap<String, serde_json::Value>,
}

impl DeltaEntry {
    /// `CREATE`, `MODIFY`, ... without the `FILE.`/`DIR.` prefix.
    pub fn action(&self) -> &str {
        self.event_type
            .split_once('.')
            .map_or(self.event_type.as_str(), |(_, a)| a)
    }

    /// Where a moved item came from (`extraInfo`).
    pub fn moved_from(&self) -> Option<(&str, &str)> {
        let p = self.extra_info.get("fromParentInode")?.as_str()?;
        let n = self.extra_info.get("fromName")?.as_str()?;
        Some((p, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_headers_stringify_numbers() {
        let t: UploadTicket = serde_json::from_str(
            r#"{"domain":"d","path":"/p","uploadId":"u","headers":{"Authorization":"q","x-cos-traffic-limit":204800},
                "confirmKey":"k","expiration":"2021-07-24T10:34:32.000Z","availableDomainNum":1}"#,
        )
        .unwrap();
        let h = t.header_pairs();
        assert!(h.contains(&("x-cos-traffic-limit".into(), "204800".into())));
        assert!(h.contains(&("Authorization".into(), "q".into())));
    }

    #[test]
    fn status_parts_use_cos_keys() {
        let s: UploadStatus = serde_json::from_str(
            r#"{"confirmed":false,"path":["a"],"type":"file","parts":[{"PartNumber":1,"LastModified":"x","ETag":"\"e\"","Size":1048576}]}"#,
        )
        .unwrap();
        assert_eq!(s.parts[0].part_number, 1);
        assert_eq!(s.parts[0].size, 1048576);
    }

    #[test]
    fn unknown_entry_type_is_other() {
        let e: DirEntry = serde_json::from_str(r#"{"name":"x","type":"album"}"#).unwrap();
        assert_eq!(e.kind, EntryType::Other);
    }
}
