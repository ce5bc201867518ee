//! Access tokens (§1): create, renew, delete.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::auth::{self, Token};
use super::error::{SResult, ServerError};
use super::http::*;
use super::App;
use crate::smh::codes;
use crate::smh::types::TokenReply;

pub async fn token_route(
    app: &Arc<App>,
    ctx: &mut Ctx,
    lib: Option<String>,
    tok: Option<String>,
) -> SResult<Response> {
    match (lib, tok, ctx.method.clone()) {
        (None, _, Method::GET) | (None, _, Method::POST) => {
            app.faults.check("token", false)?;
            app.faults.delay("token").await;
            app.stats.op("token_create");
            mint(app, ctx).await
        }
        (Some(lib), Some(tok), m)
            if !tok.is_empty() && (m == Method::POST || m == Method::DELETE) =>
        {
            app.faults.check("token", false)?;
            app.faults.delay("token").await;
            check_library(app, &lib)?;
            if m == Method::DELETE {
                app.stats.op("token_delete");
                app.tokens.lock().remove(&tok);
                let store = app.store.clone();
                tokio::task::spawn_blocking(move || auth::delete_token(&store, Some(&tok)))
                    .await??;
                return Ok(empty(StatusCode::NO_CONTENT));
            }
            app.stats.op("token_renew");
            let now = auth::now_secs();
            let renewed = {
                let mut tokens = app.tokens.lock();
                match tokens.get_mut(&tok) {
                    Some(t) if t.expires > now => {
                        let life = app.args.token_ttl.map_or(t.period, |ttl| ttl.min(t.period));
                        t.expires = now + life as i64;
                        Some((t.clone(), life))
                    }
                    _ => None,
                }
            };
            let (t, life) = renewed.ok_or_else(|| {
                ServerError::api(
                    403,
                    codes::INVALID_ACCESS_TOKEN,
                    "access token invalid or expired",
                )
            })?;
            let store = app.store.clone();
            let tok2 = tok.clone();
            tokio::task::spawn_blocking(move || auth::save_token(&store, &tok2, &t)).await??;
            Ok(json_response(
                StatusCode::OK,
                &TokenReply {
                    access_token: tok,
                    expires_in: life,
                },
            ))
        }
        (Some(lib), None, Method::DELETE) | (Some(lib), Some(_), Method::DELETE) => {
            // Delete a user's tokens (library secret required).
            check_library(app, &lib)?;
            app.stats.op("token_delete");
            if ctx.query.get("library_secret") != Some(app.secret.as_str()) {
                return Err(ServerError::api(
                    404,
                    codes::WRONG_LIBRARY_ID_OR_SECRET,
                    "wrong library secret",
                ));
            }
            let user = ctx.query.get("user_id").unwrap_or("").to_string();
            let clients: Option<Vec<String>> = ctx
                .query
                .get("client_id")
                .map(|c| c.split(',').map(String::from).collect());
            let _ = clients;
            let removed: Vec<String> = {
                let mut tokens = app.tokens.lock();
                let keys: Vec<String> = tokens
                    .iter()
                    .filter(|(_, t)| t.user_id.as_deref() == Some(user.as_str()))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in &keys {
                    tokens.remove(k);
                }
                keys
            };
            let store = app.store.clone();
            tokio::task::spawn_blocking(move || {
                for k in removed {
                    auth::delete_token(&store, Some(&k))?;
                }
                Ok::<_, ServerError>(())
            })
            .await??;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(not_found_route()),
    }
}

async fn mint(app: &Arc<App>, ctx: &Ctx) -> SResult<Response> {
    let q = &ctx.query;
    let lib = q.get("library_id").unwrap_or("");
    let sec = q.get("library_secret").unwrap_or("");
    if lib.is_empty() || sec.is_empty() {
        return Err(ServerError::api(
            400,
            codes::EMPTY_LIBRARY_ID_OR_SECRET,
            "library_id and library_secret are required",
        ));
    }
    if lib != app.args.library || sec != app.secret {
        return Err(ServerError::api(
            404,
            codes::WRONG_LIBRARY_ID_OR_SECRET,
            "wrong library id or secret",
        ));
    }
    let period = auth::period_of(q.get("period"));
    let life = app
        .args
        .token_ttl
        .map_or(period, |ttl| ttl.clamp(1, period));
    let user_id = q.get("user_id").filter(|u| !u.is_empty()).map(String::from);
    if user_id.as_ref().is_some_and(|u| u.len() > 200) {
        return Err(ServerError::api(
            400,
            codes::USER_ID_LENGTH_EXCEED,
            "user_id too long",
        ));
    }
    let spaces: Option<Vec<String>> = q
        .get("space_id")
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(String::from).collect());
    if let Some(sp) = &spaces {
        for s in sp {
            check_space(app, s)?;
        }
    }
    let grants: Vec<String> = q
        .get("grant")
        .unwrap_or("")
        .split(',')
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    let t = Token {
        grants,
        period: life,
        expires: auth::now_secs() + life as i64,
        user_id,
        spaces,
        extend: app.args.token_ttl.is_none(),
    };
    let value = auth::new_token_value();
    app.tokens.lock().insert(value.clone(), t.clone());
    let store = app.store.clone();
    let v2 = value.clone();
    tokio::task::spawn_blocking(move || auth::save_token(&store, &v2, &t)).await??;
    Ok(json_response(
        StatusCode::OK,
        &TokenReply {
            access_token: value,
            expires_in: life,
        },
    ))
}
