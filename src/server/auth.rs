//! Access tokens (§1): minting, renewal, deletion, and per-request checks.

use std::collections::HashMap;

use rusqlite::params;

use super::error::{SResult, ServerError};
use super::store::{random_hex, Store};
use crate::smh::codes;

pub const DEFAULT_PERIOD: u64 = 86_400;
pub const MIN_PERIOD: u64 = 300;
pub const MAX_PERIOD: u64 = 315_360_000;

#[derive(Debug, Clone)]
pub struct Token {
    pub grants: Vec<String>,
    pub period: u64,
    /// Unix seconds.
    pub expires: i64,
    pub user_id: Option<String>,
    /// Spaces the token is limited to (None = any).
    pub spaces: Option<Vec<String>>,
    /// Whether each use extends the expiry (off with `--token-ttl`).
    pub extend: bool,
}

/// The rights of the current request.
#[derive(Debug, Clone)]
pub struct Auth {
    pub admin: bool,
    pub grants: Vec<String>,
}

impl Auth {
    pub fn full() -> Auth {
        Auth {
            admin: true,
            grants: vec!["admin".into()],
        }
    }

    /// Whether the request has any of `grants` (admin and space_admin have all).
    pub fn allows(&self, grants: &[&str]) -> bool {
        self.admin
            || self
                .grants
                .iter()
                .any(|g| g == "admin" || g == "space_admin" || grants.contains(&g.as_str()))
    }

    pub fn require(&self, grants: &[&str]) -> SResult<()> {
        if self.allows(grants) {
            Ok(())
        } else {
            Err(ServerError::api(
                403,
                codes::NO_PERMISSION,
                format!(
                    "the access token lacks one of the grants {}",
                    grants.join(", ")
                ),
            ))
        }
    }

    /// Library-level operations (space create/delete): admin only.
    pub fn require_admin(&self, grant: &str) -> SResult<()> {
        if self.admin || self.grants.iter().any(|g| g == "admin" || g == grant) {
            Ok(())
        } else {
            Err(ServerError::api(
                403,
                codes::NO_PERMISSION,
                format!("needs the admin or {grant} grant"),
            ))
        }
    }
}

/// `period` query → lifetime per §1.1.
pub fn period_of(raw: Option<&str>) -> u64 {
    match raw.and_then(|p| p.trim().parse::<i64>().ok()) {
        Some(p) if p > 0 => (p as u64).clamp(MIN_PERIOD, MAX_PERIOD),
        _ => DEFAULT_PERIOD,
    }
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn new_token_value() -> String {
    format!("acctk01{}", random_hex(32))
}

pub fn load_tokens(store: &Store) -> SResult<HashMap<String, Token>> {
    store.tx(|c| {
        let mut stmt =
            c.prepare("SELECT token,grants,period,expires,user_id,spaces,extend FROM tokens")?;
        let rows = stmt.query_map([], |r| {
            let grants: String = r.get(1)?;
            let spaces: Option<String> = r.get(5)?;
            Ok((
                r.get::<_, String>(0)?,
                Token {
                    grants: grants
                        .split(',')
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect(),
                    period: r.get::<_, i64>(2)? as u64,
                    expires: r.get(3)?,
                    user_id: r.get(4)?,
                    spaces: spaces.map(|s| s.split(',').map(String::from).collect()),
                    extend: r.get::<_, i64>(6)? != 0,
                },
            ))
        })?;
        let mut out = HashMap::new();
        let now = now_secs();
        for r in rows {
            let (k, t) = r?;
            if t.expires > now {
                out.insert(k, t);
            }
        }
        drop(stmt);
        c.execute("DELETE FROM tokens WHERE expires <= ?1", [now])?;
        Ok(out)
    })
}

pub fn save_token(store: &Store, value: &str, t: &Token) -> SResult<()> {
    store.tx(|c| {
        c.execute(
            "INSERT OR REPLACE INTO tokens(token,grants,period,expires,user_id,spaces,extend) VALUES(?1,?2,?3,?4,?5,?6,?7)",
            params![
                value,
                t.grants.join(","),
                t.period as i64,
                t.expires,
                t.user_id,
                t.spaces.as_ref().map(|s| s.join(",")),
                t.extend as i64
            ],
        )?;
        Ok(())
    })
}

pub fn delete_token(store: &Store, value: Option<&str>) -> SResult<()> {
    store.tx(|c| {
        match value {
            Some(v) => c.execute("DELETE FROM tokens WHERE token=?1", [v])?,
            None => c.execute("DELETE FROM tokens", [])?,
        };
        Ok(())
    })
}
