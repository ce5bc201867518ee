//! Every request of `smhfs serve`, measured and logged in one middleware:
//! `smhfs_serve_requests_total{op,status}`, the latency histogram
//! `smhfs_serve_request_duration_seconds{op}`, and a debug line with the
//! (redacted) URI, status, duration and `x-smh-request-id`. The `op` is the
//! name the handler counts in `/__stats` ([`super::stats::Stats::op`]).

use std::cell::Cell;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

tokio::task_local! {
    /// The operation of the request this task serves.
    static OP: Cell<&'static str>;
}

/// Names the request being served (no-op outside [`observe`]).
pub fn name_request(op: &'static str) {
    let _ = OP.try_with(|c| c.set(op));
}

/// The middleware: runs the request with a slot for its operation name.
pub async fn observe(req: Request, next: Next) -> Response {
    // Tokens, secrets and signatures travel in query strings: redact them
    // (only when the request log is on).
    let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| {
        (
            req.method().clone(),
            crate::smh::redact::redact_url(&req.uri().to_string()),
        )
    });
    let started = Instant::now();
    let (resp, op) = OP
        .scope(Cell::new(unnamed(req.uri().path())), async {
            let resp = next.run(req).await;
            (resp, OP.with(Cell::get))
        })
        .await;
    let elapsed = started.elapsed();
    let status = crate::smh::telemetry::status_label(Some(resp.status().as_u16()));
    metrics::counter!("smhfs_serve_requests_total", "op" => op, "status" => status).increment(1);
    metrics::histogram!("smhfs_serve_request_duration_seconds", "op" => op)
        .record(elapsed.as_secs_f64());
    if let Some((method, uri)) = logged {
        let id = resp
            .headers()
            .get("x-smh-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::debug!(%method, %uri, op, status, ms = elapsed.as_millis() as u64, request_id = id, "request");
    }
    resp
}

/// The `op` of a request no handler named (refused before it, or a test
/// knob), by area.
fn unnamed(path: &str) -> &'static str {
    if path.starts_with("/__") {
        "test_knob"
    } else if path.starts_with("/cos/") {
        "object_other"
    } else if path.starts_with("/api/v1/") {
        "api_other"
    } else {
        "unrouted"
    }
}
