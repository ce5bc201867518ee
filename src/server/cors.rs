//! CORS on every route (smh-api.md §0.1: the service has it on by
//! default), so that browser apps and the JS SDK can use `smhfs serve`:
//! preflights are answered 204, and replies expose the headers readers and
//! uploaders use (`ETag` of parts, `x-smh-*` of files, CRC-64 of objects).

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// Reply headers a browser may read.
const EXPOSED: &[&str] = &[
    "etag",
    "content-length",
    "content-range",
    "content-type",
    "location",
    "x-cos-hash-crc64ecma",
    "x-cos-request-id",
    "x-smh-request-id",
    "x-smh-type",
    "x-smh-creation-time",
    "x-smh-modification-time",
    "x-smh-local-modification-time",
    "x-smh-content-type",
    "x-smh-size",
    "x-smh-etag",
    "x-smh-crc64",
];

/// How long a browser may cache a preflight.
const MAX_AGE: Duration = Duration::from_secs(86_400);

/// The CORS layer: `origins` empty = any origin (the request's is echoed),
/// `*` = the literal wildcard, else only those listed.
pub fn layer(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let allow_origin = if origins.is_empty() {
        AllowOrigin::mirror_request()
    } else if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim())
                    .map_err(|_| anyhow::anyhow!("--cors-origin: {o:?} is not a valid origin"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(
            EXPOSED
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect::<Vec<_>>(),
        )
        .max_age(MAX_AGE))
}

/// `api` with CORS for cross-origin requests only: those with an `Origin`
/// header, which browsers send with every cross-origin request and
/// preflight (COS, too, answers CORS headers only then). Other clients,
/// the mount among them, get replies without the ~350 bytes of
/// `Access-Control-Expose-Headers` and `Vary`, and the server skips the
/// layer's work.
pub fn for_cross_origin(api: axum::Router, cors: CorsLayer) -> axum::Router {
    let cross = api
        .clone()
        .layer(cors)
        .layer(axum::middleware::from_fn(preflight_no_content));
    axum::Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let to = if req.headers().contains_key(axum::http::header::ORIGIN) {
            cross.clone()
        } else {
            api.clone()
        };
        tower::ServiceExt::oneshot(to, req)
    }))
}

/// Preflights (answered by [`layer`]) get 204 No Content, as on the service.
pub async fn preflight_no_content(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS;
    let mut resp = next.run(req).await;
    if preflight && resp.status() == StatusCode::OK {
        *resp.status_mut() = StatusCode::NO_CONTENT;
    }
    resp
}
