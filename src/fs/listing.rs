//! Directory listings from the server, one page (1000 entries) per
//! request, each page filling the attribute cache as it arrives; an
//! expired listing the server sent as it is (see `DirCache`) is first
//! revalidated with `If-None-Match: <directory eTag>`, and a 304 renews it
//! without a listing body. `dirs.rs` asks for the pages as `readdir` needs
//! them.
//!
//! This relies on the server's directory eTag changing with every change
//! of what its listing shows (a child added, removed, renamed, overwritten,
//! or a child directory's own eTag or time); `smhfs serve` does so.

use super::cache::{Listing, Meta};
use super::core::SmhFs;
use super::error::FsResult;
use crate::smh::types::DirListing;
use crate::smh::{SmhError, SmhPath};

/// Entries per listing request (the API's largest page).
pub(super) const PAGE: u32 = 1000;

/// How a listing starts: from a complete listing (cached, or renewed by a
/// 304), or from the server's first page.
pub(super) enum FirstPage {
    Whole(Listing),
    Page(ServerPage),
}

/// One page from the server, its entries checked and converted.
pub(super) struct ServerPage {
    pub entries: Vec<(String, Meta)>,
    /// The directory's eTag (given with every page).
    pub etag: Option<String>,
    /// The next page's marker; `None`: this was the last.
    pub next: Option<String>,
    /// Entries in the whole directory, as the server counts them (0:
    /// not said), so a listing too long for the cache is never gathered.
    pub total: u64,
}

impl SmhFs {
    /// The start of the listing of `dir`.
    pub(super) async fn first_page(&self, dir: &SmhPath) -> FsResult<FirstPage> {
        if let Some(l) = self.dirs.get(dir) {
            return Ok(FirstPage::Whole(l));
        }
        if let Some((cached, etag)) = self.dirs.revalidatable(dir) {
            return match self
                .client
                .list_page_if_changed(dir, None, PAGE, Some(&etag))
                .await?
            {
                None => {
                    tracing::debug!(%dir, "listing unchanged (304)");
                    self.dirs.put(dir.clone(), cached.clone(), Some(etag));
                    Ok(FirstPage::Whole(cached))
                }
                Some(page) => Ok(FirstPage::Page(self.take_page(dir, page))),
            };
        }
        Ok(FirstPage::Page(self.next_server_page(dir, None).await?))
    }

    /// The page of `dir` after `marker` (`None`: the first).
    pub(super) async fn next_server_page(
        &self,
        dir: &SmhPath,
        marker: Option<&str>,
    ) -> FsResult<ServerPage> {
        let page = self
            .client
            .list_page_if_changed(dir, marker, PAGE, None)
            .await?
            .ok_or_else(|| SmhError::Malformed {
                url: dir.to_string(),
                message: "304 to an unconditional listing".into(),
            })?;
        Ok(self.take_page(dir, page))
    }

    /// A page's valid entries, recorded in the attribute cache (and their
    /// server inodes, for the change feed).
    fn take_page(&self, dir: &SmhPath, page: DirListing) -> ServerPage {
        let mut entries = Vec::with_capacity(page.contents.len());
        for e in &page.contents {
            if crate::smh::path::validate_name(&e.name).is_err() {
                tracing::warn!(dir = %dir, name = ?e.name, "skipping entry with an invalid name");
                continue;
            }
            let mut m = Meta::from_entry(e);
            if let Ok(p) = dir.join(&e.name) {
                self.link_size(&p, &mut m);
                if let Some(i) = &e.inode {
                    let dir = m.kind.is_dir();
                    self.remote_inodes.lock().insert(i.clone(), p.clone(), dir);
                }
                self.attrs.put(p, m.clone());
            }
            entries.push((e.name.clone(), m));
        }
        let next = match page.next_marker {
            Some(m) if !m.is_empty() && !page.contents.is_empty() => Some(m),
            _ => None,
        };
        ServerPage {
            entries,
            etag: page.e_tag,
            next,
            total: page.total_num,
        }
    }
}
