//! Fault injection (`--fault TARGET:STATUS:COUNT`) and latency
//! (`--latency TARGET:MS`) for tests of client retry logic.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

use super::error::ServerError;
use crate::smh::codes;

/// Targets a fault or a latency can apply to. `confirm_reply` is a
/// confirm's reply after its commit: the change is made (and in the feed)
/// while the client still waits, or never hears of it.
pub const TARGETS: &[&str] = &[
    "api",
    "token",
    "list",
    "begin",
    "confirm",
    "confirm_reply",
    "part",
    "download",
    "delta",
];

#[derive(Debug, Clone)]
enum Count {
    /// The next N matching requests fail.
    Next(u64),
    /// Each matching request fails with this probability (0..=1).
    Probability(f64),
}

#[derive(Debug, Clone)]
pub struct Fault {
    target: String,
    status: u16,
    count: Count,
}

/// Parses `TARGET:STATUS:COUNT` (`COUNT` = `N` or `N%`).
pub fn parse_fault(spec: &str) -> Result<Fault, String> {
    let parts: Vec<&str> = spec.trim().split(':').collect();
    if parts.len() != 3 {
        return Err(format!("fault {spec:?}: expected TARGET:STATUS:COUNT"));
    }
    let target = parts[0].to_string();
    if !TARGETS.contains(&target.as_str()) {
        return Err(format!(
            "fault {spec:?}: unknown target {target:?} (one of {})",
            TARGETS.join(", ")
        ));
    }
    let status: u16 = parts[1]
        .parse()
        .ok()
        .filter(|s| (400..600).contains(s))
        .ok_or_else(|| format!("fault {spec:?}: STATUS must be an HTTP error status"))?;
    let count = if let Some(p) = parts[2].strip_suffix('%') {
        let p: f64 = p
            .parse()
            .map_err(|_| format!("fault {spec:?}: bad percentage"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("fault {spec:?}: percentage out of range"));
        }
        Count::Probability(p / 100.0)
    } else {
        Count::Next(
            parts[2]
                .parse()
                .map_err(|_| format!("fault {spec:?}: bad COUNT"))?,
        )
    };
    Ok(Fault {
        target,
        status,
        count,
    })
}

/// Parses `TARGET:MS`.
pub fn parse_latency(spec: &str) -> Result<(String, u64), String> {
    let (t, ms) = spec
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("latency {spec:?}: expected TARGET:MS"))?;
    if !TARGETS.contains(&t) {
        return Err(format!("latency {spec:?}: unknown target {t:?}"));
    }
    let ms: u64 = ms
        .parse()
        .map_err(|_| format!("latency {spec:?}: bad MS"))?;
    Ok((t.to_string(), ms))
}

fn code_for(status: u16) -> &'static str {
    match status {
        429 => codes::RATE_LIMIT_EXCEEDED,
        503 => codes::SERVER_OVERLOADED,
        500 => codes::INTERNAL_SERVER_ERROR,
        403 => codes::ACCESS_DENIED,
        404 => codes::ROUTE_NOT_FOUND,
        408 => codes::READ_REQUEST_TIMEOUT,
        400 => codes::BAD_REQUEST,
        409 => codes::PATH_CONFLICT,
        _ => codes::INJECTED_FAULT,
    }
}

#[derive(Default)]
pub struct Faults {
    faults: Mutex<Vec<Fault>>,
    latency: Mutex<HashMap<String, u64>>,
    /// Faults fired per target, so tests can prove a client retried.
    fired: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl Faults {
    pub fn add(&self, f: Fault) {
        self.faults.lock().push(f);
    }

    pub fn add_latency(&self, target: String, ms: u64) {
        self.latency.lock().insert(target, ms);
    }

    pub fn clear(&self) {
        self.faults.lock().clear();
        self.latency.lock().clear();
    }

    /// Fails the request if a fault on `target` fires. `cos` selects the
    /// XML error form (object routes).
    pub fn check(&self, target: &str, cos: bool) -> Result<(), ServerError> {
        let mut faults = self.faults.lock();
        let mut fired = None;
        for f in faults.iter_mut().filter(|f| f.target == target) {
            let fire = match &mut f.count {
                Count::Next(0) => false,
                Count::Next(n) => {
                    *n -= 1;
                    true
                }
                Count::Probability(p) => rand::random::<f64>() < *p,
            };
            if fire {
                fired = Some(f.status);
                *self.fired.lock().entry(target.to_string()).or_insert(0) += 1;
                break;
            }
        }
        faults.retain(|f| !matches!(f.count, Count::Next(0)));
        drop(faults);
        match fired {
            None => Ok(()),
            Some(status) => {
                let msg = format!("injected fault on {target}");
                if cos {
                    Err(ServerError::cos(status, code_for(status), msg))
                } else {
                    Err(ServerError::api(status, code_for(status), msg))
                }
            }
        }
    }

    /// `{target: count}` of fired faults.
    pub fn fired_json(&self) -> serde_json::Value {
        serde_json::to_value(&*self.fired.lock()).unwrap_or_default()
    }

    pub fn reset_fired(&self) {
        self.fired.lock().clear();
    }

    /// Sleeps for the configured latency of `target`, if any.
    pub async fn delay(&self, target: &str) {
        let ms = self.latency.lock().get(target).copied();
        if let Some(ms) = ms.filter(|m| *m > 0) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_specs() {
        assert!(parse_fault("part:503:3").is_ok());
        assert!(parse_fault("api:429:10%").is_ok());
        assert!(parse_fault("nope:503:3").is_err());
        assert!(parse_fault("part:200:3").is_err());
        assert!(parse_latency("part:50").is_ok());
    }

    #[test]
    fn next_n_then_ok() {
        let f = Faults::default();
        f.add(parse_fault("part:503:2").unwrap());
        assert!(f.check("part", true).is_err());
        assert!(f.check("list", false).is_ok());
        assert!(f.check("part", true).is_err());
        assert!(f.check("part", true).is_ok());
    }
}
