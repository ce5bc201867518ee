//! The object-store data plane (`/cos/...`): what SMH hands to COS —
//! object and part PUTs of upload tasks ([`put`]) and signed, expiring
//! downloads ([`download`]). The API handlers only sign URLs for it.

pub mod download;
pub mod put;

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;

use super::error::{SResult, ServerError};
use super::http::{not_found_route, Ctx};
use super::App;
use crate::smh::codes;

pub use download::signed_url;

/// `/cos/{kind}/{id}`: `up` takes PUTs, `blob` GET and HEAD.
pub async fn route(app: &Arc<App>, ctx: Ctx, rest: &str) -> SResult<Response> {
    let (kind, id) = rest.split_once('/').ok_or_else(not_found_route)?;
    match (kind, ctx.method.clone()) {
        ("up", Method::PUT) => put::object_put(app, ctx, id).await,
        ("blob", Method::GET) | ("blob", Method::HEAD) => download::object_get(app, ctx, id).await,
        _ => Err(ServerError::cos(
            405,
            codes::METHOD_NOT_ALLOWED,
            "method not allowed",
        )),
    }
}
