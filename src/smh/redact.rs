//! Secrets never reach logs: SMH carries `access_token` (and sometimes the
//! library secret) in query strings, and object URLs carry signatures.

/// Query parameters whose values are replaced by `REDACTED`.
const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "library_secret",
    "sign",
    "signature",
    "q-signature",
    "x-cos-security-token",
    "authorization",
    "token",
];

/// Returns `url` with secret query values replaced; safe on any input.
pub fn redact_url(url: &str) -> String {
    let Some((base, rest)) = url.split_once('?') else {
        return url.to_string();
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (k, _) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_encoding::percent_decode_str(k)
                .decode_utf8_lossy()
                .to_ascii_lowercase();
            if SECRET_PARAMS.iter().any(|s| *s == key) && pair.contains('=') {
                format!("{k}=REDACTED")
            } else {
                pair.to_string()
            }
        })
        .collect();
    let mut out = format!("{base}?{}", parts.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// Header names whose values must not be logged.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization" || n == "x-cos-security-token" || n == "cookie"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_tokens_and_secrets() {
        let u = "http://h/api/v1/file/lib/-/a?info&access_token=acctk0123&user_id=bob&library_secret=S3CRET";
        let r = redact_url(u);
        assert!(!r.contains("acctk0123"));
        assert!(!r.contains("S3CRET"));
        assert!(r.contains("user_id=bob"));
        assert!(r.contains("info&"));
        assert_eq!(redact_url("http://h/x"), "http://h/x");
        assert!(!redact_url("http://h/o?sign=abc#f").contains("abc"));
        assert!(!redact_url("http://h/o?Access_Token=abc").contains("abc"));
    }
}
