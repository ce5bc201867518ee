//! Directory listings from the server: the whole listing, 1000 entries per
//! request, filling the attribute cache from the same replies; an expired
//! listing the server sent as it is (see `DirCache`) is first revalidated
//! with `If-None-Match: <directory eTag>`, and a 304 renews it without a
//! listing body.
//!
//! This relies on the server's directory eTag changing with every change
//! of what its listing shows (a child added, removed, renamed, overwritten,
//! or a child directory's own eTag or time); `smhfs serve` does so.

use std::sync::Arc;

use super::cache::{Listing, Meta};
use super::core::SmhFs;
use super::error::FsResult;
use crate::smh::types::DirListing;
use crate::smh::{SmhError, SmhPath};

impl SmhFs {
    pub(super) async fn list(&self, dir: &SmhPath) -> FsResult<Listing> {
        if let Some(l) = self.dirs.get(dir) {
            return Ok(l);
        }
        let mut first = None;
        if let Some((cached, etag)) = self.dirs.revalidatable(dir) {
            match self
                .client
                .list_page_if_changed(dir, None, 1000, Some(&etag))
                .await?
            {
                None => {
                    tracing::debug!(%dir, "listing unchanged (304)");
                    self.dirs.put(dir.clone(), cached.clone(), Some(etag));
                    return Ok(cached);
                }
                Some(page) => first = Some(page),
            }
        }
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        let mut etag = None;
        loop {
            let page = match first.take() {
                Some(p) => p,
                None => self.list_page(dir, marker.as_deref()).await?,
            };
            if marker.is_none() {
                etag = page.e_tag.clone();
            }
            for e in &page.contents {
                if crate::smh::path::validate_name(&e.name).is_err() {
                    tracing::warn!(dir = %dir, name = ?e.name, "skipping entry with an invalid name");
                    continue;
                }
                let mut m = Meta::from_entry(e);
                if let Ok(p) = dir.join(&e.name) {
                    self.link_size(&p, &mut m);
                    if let Some(i) = &e.inode {
                        self.remote_inodes.lock().insert(i.clone(), p.clone());
                    }
                    self.attrs.put(p, m.clone());
                }
                out.push((e.name.clone(), m));
            }
            match page.next_marker {
                Some(m) if !m.is_empty() && !page.contents.is_empty() => marker = Some(m),
                _ => break,
            }
        }
        let listing = Arc::new(out);
        self.dirs.put(dir.clone(), listing.clone(), etag);
        Ok(listing)
    }

    async fn list_page(&self, dir: &SmhPath, marker: Option<&str>) -> FsResult<DirListing> {
        Ok(self
            .client
            .list_page_if_changed(dir, marker, 1000, None)
            .await?
            .ok_or_else(|| SmhError::Malformed {
                url: dir.to_string(),
                message: "304 to an unconditional listing".into(),
            })?)
    }
}
