//! Test knobs (`/__stats`, `/__fault`, ...), only with `--test-endpoints`.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::auth::{self};
use super::error::{SResult, ServerError};
use super::http::*;
use super::{faults, App};
use crate::smh::codes;

pub async fn admin_route(app: &Arc<App>, ctx: &mut Ctx, path: &str) -> SResult<Response> {
    let bad = |m: String| ServerError::api(400, codes::BAD_REQUEST, m);
    match (ctx.method.clone(), path) {
        (Method::GET, "stats") => {
            let mut stats = app.stats.json();
            stats["faults_injected"] = app.faults.fired_json();
            Ok(json_response(StatusCode::OK, &stats))
        }
        (Method::POST, "stats/reset") => {
            app.stats.reset();
            app.faults.reset_fired();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, "fault") => {
            let b = ctx.body_bytes().await?;
            let spec = String::from_utf8_lossy(&b).to_string();
            app.faults.add(faults::parse_fault(&spec).map_err(bad)?);
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, "latency") => {
            let b = ctx.body_bytes().await?;
            let spec = String::from_utf8_lossy(&b).to_string();
            let (t, ms) = faults::parse_latency(&spec).map_err(bad)?;
            app.faults.add_latency(t, ms);
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, "faults/clear") => {
            app.faults.clear();
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, "revoke-tokens") => {
            app.tokens.lock().clear();
            let store = app.store.clone();
            tokio::task::spawn_blocking(move || auth::delete_token(&store, None)).await??;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(not_found_route()),
    }
}
