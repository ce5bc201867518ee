//! Custom metadata (`x-smh-meta-<name>`, smh-api.md §4.8, §3.4): parsed
//! from upload-begin headers and directory-create bodies, stored as a JSON
//! object in `nodes.meta`, returned as `metaData` and `x-smh-meta-*`.
//!
//! Bounds (SMH documents none; these keep a row small and every header
//! valid): at most [`MAX_ENTRIES`] names, [`MAX_BYTES`] bytes of names plus
//! values, names of `[a-z0-9_.-]` (header names are case-insensitive, so
//! they are stored lower-cased). Beyond them: 400 `ParamInvalid`.

use axum::http::{HeaderMap, HeaderValue};

use super::error::{SResult, ServerError};
use crate::smh::codes;
use crate::smh::types::MetaData;

pub const PREFIX: &str = "x-smh-meta-";
pub const MAX_ENTRIES: usize = 32;
pub const MAX_BYTES: usize = 2048;

fn invalid(why: String) -> ServerError {
    ServerError::api(400, codes::PARAM_INVALID, why)
}

/// Checks the bounds of a metadata map (names already lower case).
pub fn check(m: &MetaData) -> SResult<()> {
    if m.len() > MAX_ENTRIES {
        return Err(invalid(format!(
            "at most {MAX_ENTRIES} metadata entries are allowed, got {}",
            m.len()
        )));
    }
    let total: usize = m.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_BYTES {
        return Err(invalid(format!(
            "metadata names and values may total {MAX_BYTES} bytes, got {total}"
        )));
    }
    for (k, v) in m {
        let ok_name = !k.is_empty()
            && k.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if !ok_name {
            return Err(invalid(format!("invalid metadata name {k:?}")));
        }
        if HeaderValue::from_str(v).is_err() {
            return Err(invalid(format!("invalid value of metadata {k:?}")));
        }
    }
    Ok(())
}

/// The `x-smh-meta-*` headers of a request (None: there are none).
pub fn from_headers(h: &HeaderMap) -> SResult<Option<MetaData>> {
    let mut m = MetaData::new();
    for (k, v) in h {
        let Some(name) = k.as_str().strip_prefix(PREFIX) else {
            continue;
        };
        let v = v
            .to_str()
            .map_err(|_| invalid(format!("metadata {name:?} is not visible ASCII")))?;
        if m.insert(name.to_ascii_lowercase(), v.to_string()).is_some() {
            return Err(invalid(format!("metadata {name:?} given twice")));
        }
    }
    check(&m)?;
    Ok((!m.is_empty()).then_some(m))
}

/// A `metaData` JSON object of a request body (lower-cased, checked).
pub fn from_json(v: Option<&serde_json::Value>) -> SResult<Option<MetaData>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("`metaData` must be an object".into()))?;
    let mut m = MetaData::new();
    for (k, v) in obj {
        let v = v
            .as_str()
            .ok_or_else(|| invalid(format!("metadata {k:?} must be a string")))?;
        m.insert(k.to_ascii_lowercase(), v.to_string());
    }
    check(&m)?;
    Ok((!m.is_empty()).then_some(m))
}

/// The column value: a JSON object, NULL for none.
pub fn to_db(m: Option<&MetaData>) -> Option<String> {
    m.filter(|m| !m.is_empty())
        .and_then(|m| serde_json::to_string(m).ok())
}

pub fn from_db(s: Option<String>) -> Option<MetaData> {
    s.and_then(|s| serde_json::from_str::<MetaData>(&s).ok())
        .filter(|m| !m.is_empty())
}

/// Adds `x-smh-meta-<name>` headers (HEAD and download, §4.2).
pub fn put_headers(h: &mut HeaderMap, m: Option<&MetaData>) {
    for (k, v) in m.into_iter().flatten() {
        let name = format!("{PREFIX}{k}");
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(n, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_lower_cased_and_bounded() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&h).unwrap(), None);
        h.insert("X-Smh-Meta-Mode", HeaderValue::from_static("100755"));
        h.insert("content-type", HeaderValue::from_static("x"));
        let m = from_headers(&h).unwrap().unwrap();
        assert_eq!(m.get("mode").map(String::as_str), Some("100755"));
        assert_eq!(m.len(), 1);
        for i in 0..MAX_ENTRIES {
            h.insert(
                axum::http::HeaderName::from_bytes(format!("x-smh-meta-k{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert!(from_headers(&h).is_err());
        let big: MetaData = [("a".to_string(), "x".repeat(MAX_BYTES))].into();
        assert!(check(&big).is_err());
        assert_eq!(from_db(to_db(Some(&m))), Some(m));
        assert_eq!(to_db(Some(&MetaData::new())), None);
    }
}
