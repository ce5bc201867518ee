//! What to mount (`LIBRARY[:SPACE][/PATH]`) and with which credentials.

use std::path::Path;

use crate::smh::{Credentials, SmhPath};

/// `LIBRARY[:SPACE][/PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub library: String,
    pub space: String,
    pub path: SmhPath,
}

impl Source {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (head, path) = match s.split_once('/') {
            Some((h, p)) => (h, p),
            None => (s, ""),
        };
        let (library, space) = match head.split_once(':') {
            Some((l, sp)) => (l, sp),
            None => (head, "-"),
        };
        let ok = |v: &str| {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        };
        if !ok(library) {
            return Err(format!(
                "invalid source {s:?}: expected LIBRARY[:SPACE][/PATH]"
            ));
        }
        if !ok(space) {
            return Err(format!("invalid space in source {s:?}"));
        }
        let path =
            SmhPath::parse(path).map_err(|e| format!("invalid path in source {s:?}: {e}"))?;
        Ok(Self {
            library: library.to_string(),
            space: space.to_string(),
            path,
        })
    }
}

/// What the credentials file holds.
#[derive(Debug, Clone)]
pub struct CredentialsFile {
    pub credentials: Credentials,
    pub user_id: Option<String>,
}

impl CredentialsFile {
    /// Reads the file, refusing it when others could read the secret.
    pub fn load(path: &Path) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "credentials file {} is readable by group or others; run: chmod 600 {}",
                path.display(),
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read credentials file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("credentials file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut secret = None;
        let mut token = None;
        let mut user_id = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("line {}: expected key=value", n + 1));
            };
            let (k, v) = (k.trim(), v.trim().to_string());
            if v.is_empty() {
                return Err(format!("line {}: empty value for {k}", n + 1));
            }
            match k {
                "library_secret" => secret = Some(v),
                "access_token" => token = Some(v),
                "user_id" => user_id = Some(v),
                _ => return Err(format!("line {}: unknown key {k:?}", n + 1)),
            }
        }
        let credentials = match (secret, token) {
            (Some(s), None) => Credentials::LibrarySecret(s),
            (None, Some(t)) => Credentials::AccessToken(t),
            (Some(_), Some(_)) => {
                return Err("give library_secret or access_token, not both".into())
            }
            (None, None) => return Err("no library_secret= or access_token= line".into()),
        };
        Ok(Self {
            credentials,
            user_id,
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_forms() {
        let s = Source::parse("lib").unwrap();
        assert_eq!((s.library.as_str(), s.space.as_str()), ("lib", "-"));
        assert!(s.path.is_root());
        let s = Source::parse("lib:sp1/a/b").unwrap();
        assert_eq!(s.space, "sp1");
        assert_eq!(s.path.to_string(), "a/b");
        assert!(Source::parse("").is_err());
        assert!(Source::parse(":x").is_err());
        assert!(Source::parse("lib:").is_err());
        assert!(Source::parse("lib/a/../b").is_err());
    }

    #[test]
    fn credentials_file() {
        let c = CredentialsFile::parse("# c\nlibrary_secret = s3\nuser_id=bob\n").unwrap();
        assert!(matches!(c.credentials, Credentials::LibrarySecret(ref s) if s == "s3"));
        assert_eq!(c.user_id.as_deref(), Some("bob"));
        let c = CredentialsFile::parse("access_token=t").unwrap();
        assert!(matches!(c.credentials, Credentials::AccessToken(_)));
        assert!(CredentialsFile::parse("").is_err());
        assert!(CredentialsFile::parse("garbage").is_err());
        assert!(CredentialsFile::parse("library_secret=a\naccess_token=b").is_err());
        assert!(CredentialsFile::parse("color=blue").is_err());
    }

    #[test]
    fn credentials_file_mode_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        std::fs::write(&p, "library_secret=x\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(CredentialsFile::load(&p).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(CredentialsFile::load(&p).is_ok());
    }
}
