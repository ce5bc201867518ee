//! Request dispatch: which module answers which route. Handlers import the
//! HTTP context ([`super::http`]), never this module.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use super::error::{request_id, SResult};
use super::http::{
    check_library_auth, check_space, not_found_route, parse_tail, with_idle_timeout, Ctx, Query,
};
use super::{admin, batch, cos, delta, directories, files, links, recycled, spaces, tokens, App};

/// Entry point for every request.
pub async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let is_object = path.starts_with("/cos/");
    let mut resp = match route(&app, req, &path).await {
        Ok(r) => r,
        Err(e) if is_object => e.into_cos().into_response(),
        Err(e) => e.into_response(),
    };
    if !resp.headers().contains_key("x-smh-request-id") {
        if let Ok(v) = HeaderValue::from_str(&request_id()) {
            resp.headers_mut().insert("x-smh-request-id", v);
        }
    }
    resp
}

async fn route(app: &Arc<App>, req: Request, path: &str) -> SResult<Response> {
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .unwrap_or_else(|| app.args.listen.clone());
    let mut ctx = Ctx {
        method: parts.method.clone(),
        query: Query::parse(parts.uri.query()),
        headers: parts.headers,
        body: std::sync::Mutex::new(Some(with_idle_timeout(
            body,
            Duration::from_secs(app.args.body_timeout.max(1)),
        ))),
        host,
    };
    if let Some(knob) = path.strip_prefix("/__") {
        if !app.args.test_endpoints {
            return Err(not_found_route());
        }
        return admin::admin_route(app, &mut ctx, knob).await;
    }
    if let Some(rest) = path.strip_prefix("/cos/") {
        return cos::route(app, ctx, rest).await;
    }
    let Some(api) = path.strip_prefix("/api/v1/") else {
        return Err(not_found_route());
    };
    let actor = super::http::actor_of(app, &ctx);
    super::actor::scope(actor, api_route(app, ctx, api)).await
}

/// The `/api/v1/` routes, run as the request's user (`actor.rs`).
async fn api_route(app: &Arc<App>, mut ctx: Ctx, api: &str) -> SResult<Response> {
    app.faults.check("api", false)?;
    app.faults.delay("api").await;
    // Split off up to four raw segments: kind / lib / space / tail.
    let mut it = api.splitn(4, '/');
    let kind = it.next().unwrap_or("");
    let lib = it.next();
    let space = it.next();
    let tail = it.next();
    let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    // Routes of one space: `{kind}/{lib}/{space}[/{tail}]`.
    let in_space = |ctx: &Ctx| -> SResult<(String, String)> {
        let lib = dec(lib.ok_or_else(not_found_route)?);
        let space = dec(space.ok_or_else(not_found_route)?);
        check_library_auth(app, ctx, &lib)?;
        check_space(app, &space)?;
        Ok((lib, space))
    };
    match kind {
        "token" => tokens::token_route(app, &mut ctx, lib.map(dec), space.map(dec)).await,
        "directory" | "file" => {
            let (_, space) = in_space(&ctx)?;
            let is_file = kind == "file";
            let segs = parse_tail(tail.unwrap_or(""), is_file)?;
            if is_file {
                files::file_route(app, ctx, space, segs).await
            } else {
                directories::dir_route(app, ctx, space, segs).await
            }
        }
        "usage" => {
            let lib = dec(lib.ok_or_else(not_found_route)?);
            check_library_auth(app, &ctx, &lib)?;
            spaces::usage(app, &ctx, space.map(dec)).await
        }
        "space" => {
            spaces::space_route(app, &mut ctx, lib.map(dec), space.map(dec), tail.map(dec)).await
        }
        "quota" => {
            let (_, space) = in_space(&ctx)?;
            spaces::quota(app, &ctx, &space)
        }
        "batch" => {
            let (_, space) = in_space(&ctx)?;
            batch::batch_route(app, ctx, space).await
        }
        "task" => {
            let (_, space) = in_space(&ctx)?;
            batch::task_route(app, &ctx, &space, &dec(tail.unwrap_or("")))
        }
        "recycled" => {
            let (_, space) = in_space(&ctx)?;
            recycled::recycled_route(app, &ctx, space, tail).await
        }
        "inode" => {
            let (_, space) = in_space(&ctx)?;
            links::inode_route(app, &ctx, space, tail.map(dec)).await
        }
        "fs-delta" => {
            let (_, space) = in_space(&ctx)?;
            delta::delta_route(app, &ctx, space, tail.map(dec)).await
        }
        _ => Err(not_found_route()),
    }
}
