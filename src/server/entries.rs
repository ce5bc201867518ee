//! What directory and file routes share: nodes as wire entries, delete.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;

use super::auth::Auth;
use super::error::{SResult, ServerError};
use super::http::*;
use super::store::{self, Node, ROOT};
use super::App;
use crate::smh::codes;
use crate::smh::types::{DirEntry, EntryInfo, EntryType, RecycledReply};

fn kind_of(n: &Node) -> EntryType {
    if n.is_dir {
        EntryType::Dir
    } else if n.link.is_some() {
        EntryType::Symlink
    } else {
        EntryType::File
    }
}

/// A dangling symlink (no target content, see `links::present`) has none.
fn etag_of(n: &Node) -> Option<String> {
    (n.link.is_none() || n.blob.is_some()).then(|| n.etag())
}

/// A listing item; symlinks must have gone through `links::present`.
pub fn entry_of(n: &Node) -> DirEntry {
    DirEntry {
        name: n.name.clone(),
        kind: kind_of(n),
        creation_time: Some(n.ctime.clone()),
        modification_time: Some(n.mtime.clone()),
        local_modification_time: n.lmtime.clone(),
        size: (!n.is_dir).then(|| n.size.to_string()),
        e_tag: etag_of(n),
        crc64: if n.is_dir { None } else { n.crc64.clone() },
        content_type: if n.is_dir { None } else { n.ctype.clone() },
        inode: None,
        meta_data: n.meta.clone(),
        link_to: n.link.map(store::inode_of),
    }
}

pub fn info_of(n: &Node, path: Vec<String>) -> EntryInfo {
    EntryInfo {
        path,
        name: n.name.clone(),
        kind: kind_of(n),
        user_id: None,
        creation_time: Some(n.ctime.clone()),
        modification_time: Some(n.mtime.clone()),
        local_modification_time: n.lmtime.clone(),
        e_tag: etag_of(n),
        inode: Some(n.inode()),
        size: (!n.is_dir).then(|| n.size.to_string()),
        crc64: if n.is_dir { None } else { n.crc64.clone() },
        content_type: if n.is_dir { None } else { n.ctype.clone() },
        meta_data: n.meta.clone(),
        link_to: n.link.map(store::inode_of),
    }
}

/// Deletes a file or directory (bin or permanent).
pub async fn delete_node(
    app: &Arc<App>,
    space: String,
    segs: Vec<String>,
    dir: bool,
    permanent: bool,
) -> SResult<Response> {
    Ok(
        match remove(app, space, segs, Some(dir), permanent).await? {
            Some(id) => json_response(
                StatusCode::OK,
                &RecycledReply {
                    recycled_item_id: id as u64,
                },
            ),
            None => empty(StatusCode::NO_CONTENT),
        },
    )
}

/// Checks the grant a delete needs and returns whether it is permanent
/// (asked for, or no recycle bin): `delete_{file,directory}[_permanent]`.
pub fn require_delete_grant(app: &App, auth: &Auth, dir: bool, permanent: bool) -> SResult<bool> {
    let (plain, forever) = if dir {
        ("delete_directory", "delete_directory_permanent")
    } else {
        ("delete_file", "delete_file_permanent")
    };
    if app.args.no_recycle_bin {
        auth.require(&[plain, forever])?;
        Ok(true)
    } else if permanent {
        auth.require(&[forever])?;
        Ok(true)
    } else {
        auth.require(&[plain, forever])?;
        Ok(false)
    }
}

/// Deletes the file or directory at `segs` (`dir`: only if it is one /
/// is not one) to the bin or for good; returns its recycled item id.
pub async fn remove(
    app: &Arc<App>,
    space: String,
    segs: Vec<String>,
    dir: Option<bool>,
    permanent: bool,
) -> SResult<Option<i64>> {
    let (rid, blobs) = app
        .db(move |c| {
            let n = store::resolve(c, &space, &segs)?
                .filter(|n| dir.is_none_or(|d| n.is_dir == d) && n.id != ROOT);
            let n = n.ok_or_else(|| {
                if dir == Some(true) {
                    ServerError::api(404, codes::DIRECTORY_NOT_FOUND, "directory not found")
                } else {
                    ServerError::api(404, codes::FILE_NOT_FOUND, "file not found")
                }
            })?;
            if permanent {
                let blobs = store::delete_tree(c, n.id)?;
                store::touch(c, &space, n.parent)?;
                Ok((None, blobs))
            } else {
                Ok((Some(store::recycle(c, &space, &n)?), Vec::new()))
            }
        })
        .await?;
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.remove_orphans(blobs)).await?;
    Ok(rid)
}
