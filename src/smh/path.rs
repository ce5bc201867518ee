//! Paths inside a space: validated segments, encoded per segment for URLs.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::error::SmhError;

/// Longest name SMH accepts for one file or directory level.
pub const MAX_NAME_BYTES: usize = 255;

/// RFC 3986 unreserved characters stay literal; everything else is escaped.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A path relative to the space root; the root has no segments.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub struct SmhPath {
    segments: Vec<String>,
}

/// Checks one name the way the server does (and the way FUSE must refuse it).
pub fn validate_name(name: &str) -> Result<(), SmhError> {
    if name.is_empty() {
        return Err(SmhError::InvalidPath("empty name".into()));
    }
    if name == "." || name == ".." {
        return Err(SmhError::InvalidPath(format!(
            "{name:?} is not a valid name"
        )));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(SmhError::NameTooLong(name.len()));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(SmhError::InvalidPath(format!(
            "{name:?} contains '/' or NUL"
        )));
    }
    Ok(())
}

impl SmhPath {
    pub fn root() -> Self {
        Self::default()
    }

    /// Parses `a/b/c` (leading, trailing and doubled slashes are ignored).
    pub fn parse(s: &str) -> Result<Self, SmhError> {
        let mut segments = Vec::new();
        for seg in s.split('/').filter(|s| !s.is_empty()) {
            validate_name(seg)?;
            segments.push(seg.to_string());
        }
        Ok(Self { segments })
    }

    pub fn from_segments(segments: Vec<String>) -> Result<Self, SmhError> {
        for s in &segments {
            validate_name(s)?;
        }
        Ok(Self { segments })
    }

    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn name(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }

    pub fn parent(&self) -> Option<SmhPath> {
        if self.segments.is_empty() {
            return None;
        }
        Some(Self {
            segments: self.segments[..self.segments.len() - 1].to_vec(),
        })
    }

    pub fn join(&self, name: &str) -> Result<SmhPath, SmhError> {
        validate_name(name)?;
        let mut segments = self.segments.clone();
        segments.push(name.to_string());
        Ok(Self { segments })
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &SmhPath) -> bool {
        self.segments.len() >= other.segments.len()
            && self.segments[..other.segments.len()] == other.segments[..]
    }

    /// Percent-encoded segments joined by literal `/` (no leading slash).
    pub fn encoded(&self) -> String {
        self.segments
            .iter()
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl From<SmhPath> for String {
    fn from(p: SmhPath) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for SmhPath {
    type Error = SmhError;
    fn try_from(s: String) -> Result<Self, SmhError> {
        SmhPath::parse(&s)
    }
}

impl std::fmt::Display for SmhPath {
    /// Plain `a/b/c`, the form move/copy bodies carry.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_encode() {
        let p = SmhPath::parse("/foo bar/ü/x%y.txt/").unwrap();
        assert_eq!(p.segments(), &["foo bar", "ü", "x%y.txt"]);
        assert_eq!(p.encoded(), "foo%20bar/%C3%BC/x%25y.txt");
        assert_eq!(p.to_string(), "foo bar/ü/x%y.txt");
        assert!(SmhPath::parse("").unwrap().is_root());
    }

    #[test]
    fn rejects_bad_segments() {
        assert!(SmhPath::parse("a/../b").is_err());
        assert!(SmhPath::parse("a/./b").is_err());
        assert!(matches!(
            SmhPath::parse(&"x".repeat(256)),
            Err(SmhError::NameTooLong(256))
        ));
        assert!(SmhPath::parse(&"x".repeat(255)).is_ok());
        assert!(SmhPath::root().join("a/b").is_err());
    }

    #[test]
    fn parent_and_prefix() {
        let p = SmhPath::parse("a/b/c").unwrap();
        assert_eq!(p.parent().unwrap().to_string(), "a/b");
        assert!(p.starts_with(&SmhPath::parse("a/b").unwrap()));
        assert!(!p.starts_with(&SmhPath::parse("a/c").unwrap()));
        assert_eq!(p.name(), Some("c"));
    }
}
