//! SMH times: RFC 3339 in UTC with milliseconds (`2021-07-24T10:34:32.250Z`).
//! The one place they are parsed and written, by the client, the mount and
//! `smhfs serve`.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};

/// Parses an SMH time; anything unparsable is `None`, times before the
/// epoch become the epoch (a bad timestamp must not hide a file).
pub fn parse_time(s: Option<&str>) -> Option<SystemTime> {
    let t = DateTime::parse_from_rfc3339(s?).ok()?;
    let secs = t.timestamp();
    let nanos = t.timestamp_subsec_nanos();
    if secs >= 0 {
        Some(SystemTime::UNIX_EPOCH + Duration::new(secs as u64, nanos))
    } else {
        Some(SystemTime::UNIX_EPOCH)
    }
}

/// RFC 3339 with milliseconds, the form SMH writes.
pub fn format_time(t: SystemTime) -> String {
    format_utc(t.into())
}

fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time, as SMH writes it.
pub fn now() -> String {
    format_utc(Utc::now())
}

/// Unix milliseconds, as SMH writes times.
pub fn from_unix_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(format_utc)
        .unwrap_or_default()
}

/// Time left until `s` (zero if past); `None` if unparsable.
pub fn until(s: &str) -> Option<Duration> {
    let when = DateTime::parse_from_rfc3339(s).ok()?;
    let left = when.with_timezone(&Utc) - Utc::now();
    Some(left.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_millis() {
        let t = parse_time(Some("2021-07-24T10:34:32.250Z")).unwrap();
        assert_eq!(format_time(t), "2021-07-24T10:34:32.250Z");
        assert_eq!(from_unix_ms(1_627_122_872_250), "2021-07-24T10:34:32.250Z");
        assert_eq!(
            parse_time(Some("1969-01-01T00:00:00Z")),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(parse_time(Some("garbage")), None);
        assert_eq!(until("2000-01-01T00:00:00Z"), Some(Duration::ZERO));
        assert!(now().ends_with('Z'));
    }
}
