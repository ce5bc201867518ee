//! Custom metadata (`x-smh-meta-*`, `metaData`) and local times on
//! `smhfs serve`, over raw HTTP.

use crate::common;

use common::http::*;
use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use smhfs::smh::hash::ContentHashes;

const MIB: usize = 1024 * 1024;

/// A call with extra request headers.
async fn send_h(
    m: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut rb = client().request(m, url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let st = r.status();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (st, v)
}

/// Simple upload whose begin carries `headers`; returns the confirm reply.
async fn upload_h(
    s: &TestServer,
    tok: &str,
    path: &str,
    body: &[u8],
    query: &str,
    headers: &[(&str, &str)],
    begin: Option<Value>,
) -> Value {
    let (st, t) = send_h(
        Method::PUT,
        &api(s, "file", path, tok, query),
        headers,
        begin,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "begin {path}: {t}");
    assert_eq!(
        put_object(&t, "", body.to_vec()).await.status(),
        StatusCode::OK
    );
    let crc = ContentHashes::of(body).crc64_string();
    let key = t["confirmKey"].as_str().unwrap();
    let (st, v) = confirm(s, tok, key, json!({ "crc64": crc }), "").await;
    assert_eq!(st, StatusCode::OK, "confirm {path}: {v}");
    v
}

/// The listing item called `name` in directory `dir`.
async fn item(s: &TestServer, tok: &str, dir: &str, name: &str) -> Value {
    let (st, v) = send(Method::GET, &api(s, "directory", dir, tok, ""), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["contents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed in {dir:?}: {v}"))
        .clone()
}

async fn info(s: &TestServer, tok: &str, path: &str) -> Value {
    let (st, v) = send(Method::GET, &api(s, "directory", path, tok, "info"), None).await;
    assert_eq!(st, StatusCode::OK, "info {path}: {v}");
    v
}

#[tokio::test]
async fn meta_headers_are_stored_and_echoed_everywhere() {
    let s = TestServer::start();
    let tok = s.token().await;
    let want = json!({"mode": "100755", "uid": "1000"});
    let hdrs = [("X-Smh-Meta-Mode", "100755"), ("x-smh-meta-uid", "1000")];
    let v = upload_h(&s, &tok, "run.sh", b"#!/bin/sh\n", "", &hdrs, None).await;
    assert_eq!(v["metaData"], want, "confirm reply");
    assert_eq!(item(&s, &tok, "", "run.sh").await["metaData"], want);
    assert_eq!(info(&s, &tok, "run.sh").await["metaData"], want);
    let (st, v) = send(Method::GET, &api(&s, "file", "run.sh", &tok, "info"), None).await;
    assert_eq!((st, &v["metaData"]), (StatusCode::OK, &want), "{v}");
    let r = client()
        .head(api(&s, "file", "run.sh", &tok, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-smh-meta-mode"], "100755");
    assert_eq!(r.headers()["x-smh-meta-uid"], "1000");

    // Multipart begin takes them too.
    let (st, t) = send_h(
        Method::POST,
        &api(&s, "file", "big.bin", &tok, "multipart"),
        &[("x-smh-meta-mode", "100600")],
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    put_part(&t, 1, b"abc".to_vec()).await;
    let (st, v) = confirm(&s, &tok, t["confirmKey"].as_str().unwrap(), json!({}), "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["metaData"], json!({"mode": "100600"}));

    // A file without any: no `metaData` at all.
    let v = upload_h(&s, &tok, "plain.txt", b"x", "", &[], None).await;
    assert!(v.get("metaData").is_none(), "{v}");
    assert!(item(&s, &tok, "", "plain.txt")
        .await
        .get("metaData")
        .is_none());
    // The metadata belongs to the version: an overwrite without headers
    // gives a version without metadata.
    upload_h(
        &s,
        &tok,
        "run.sh",
        b"v2",
        "conflict_resolution_strategy=overwrite",
        &[],
        None,
    )
    .await;
    assert!(info(&s, &tok, "run.sh").await.get("metaData").is_none());
}

#[tokio::test]
async fn copy_and_move_keep_metadata_and_local_times() {
    let s = TestServer::start();
    let tok = s.token().await;
    // Directory create with the optional body (§3.4).
    let (st, v) = send(
        Method::PUT,
        &api(&s, "directory", "d", &tok, ""),
        Some(json!({"metaData": {"Mode": "40700"}, "localModificationTime": "2001-01-01T00:00:00.000Z"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["metaData"], json!({"mode": "40700"}));
    let d = info(&s, &tok, "d").await;
    assert_eq!(d["metaData"], json!({"mode": "40700"}));
    assert_eq!(d["localModificationTime"], "2001-01-01T00:00:00.000Z");
    let lm = "2002-02-02T02:02:02.000Z";
    upload_h(
        &s,
        &tok,
        "d/f",
        b"data",
        "",
        &[("x-smh-meta-mode", "100700")],
        Some(json!({"localModificationTime": lm})),
    )
    .await;
    let fmeta = json!({"mode": "100700"});

    // File copy, batch copy, directory copy.
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "d/g", &tok, ""),
        Some(json!({"copyFrom": "d/f"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = send(
        Method::POST,
        &format!(
            "{}/api/v1/batch/{}/-?copy&access_token={tok}",
            s.url, s.library
        ),
        Some(json!([{"copyFrom": "d/f", "to": "d/h"}])),
    )
    .await;
    assert!(st.is_success(), "{st} {v}");
    let (st, v) = send(
        Method::PUT,
        &api(&s, "directory", "e", &tok, ""),
        Some(json!({"copyFrom": "d"})),
    )
    .await;
    assert!(st.is_success(), "{st} {v}");
    for p in ["d/g", "d/h", "e/f"] {
        let i = info(&s, &tok, p).await;
        assert_eq!(i["metaData"], fmeta, "{p}: {i}");
        assert_eq!(i["localModificationTime"], lm, "{p}: {i}");
    }
    assert_eq!(
        info(&s, &tok, "e").await["metaData"],
        json!({"mode": "40700"})
    );

    // Moves (file and directory) keep everything.
    let (st, _) = send(
        Method::PUT,
        &api(&s, "file", "moved", &tok, ""),
        Some(json!({"from": "d/g"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = send(
        Method::PUT,
        &api(&s, "directory", "e2", &tok, ""),
        Some(json!({"from": "e"})),
    )
    .await;
    assert!(st.is_success());
    for p in ["moved", "e2/f"] {
        let i = info(&s, &tok, p).await;
        assert_eq!(i["metaData"], fmeta, "{p}: {i}");
        assert_eq!(i["localModificationTime"], lm, "{p}: {i}");
    }
    assert_eq!(
        item(&s, &tok, "", "e2").await["metaData"],
        json!({"mode": "40700"})
    );
}

#[tokio::test]
async fn instant_upload_overwrite_replaces_times_and_metadata_without_bytes() {
    let s = TestServer::start();
    let tok = s.token().await;
    let body = data(2 * MIB, 3);
    let h = ContentHashes::of(&body);
    let old = "2001-01-01T00:00:00.000Z";
    let v = upload_h(
        &s,
        &tok,
        "f.bin",
        &body,
        "",
        &[("x-smh-meta-mode", "100644")],
        Some(json!({"localModificationTime": old})),
    )
    .await;
    let inode = v["inode"].as_str().unwrap().to_string();
    s.reset_stats().await;

    let new = "2011-11-11T11:11:11.000Z";
    let (st, v) = send_h(
        Method::PUT,
        &api(
            &s,
            "file",
            "f.bin",
            &tok,
            "conflict_resolution_strategy=overwrite",
        ),
        &[("x-smh-meta-mode", "100755"), ("x-smh-meta-uid", "7")],
        Some(json!({
            "beginningHash": h.beginning_hash, "fullHash": h.full_hash,
            "size": body.len().to_string(), "localModificationTime": new,
        })),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["path"], json!(["f.bin"]));
    assert_eq!(v["isOverwritten"], true);
    assert_eq!(v["inode"], inode.as_str(), "same node");
    assert_eq!(v["metaData"], json!({"mode": "100755", "uid": "7"}));
    let i = info(&s, &tok, "f.bin").await;
    assert_eq!(i["localModificationTime"], new);
    assert_eq!(i["metaData"], json!({"mode": "100755", "uid": "7"}));
    let stats = s.stats().await;
    assert_eq!(stats["part_bytes"], 0, "{stats}");
    assert_eq!(stats["requests"]["object_put"], 0, "{stats}");
    assert_eq!(stats["instant_upload_hits"], 1);
    // Same content, nothing listed twice.
    let (_, l) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(l["contents"].as_array().unwrap().len(), 1, "{l}");
    assert_eq!(download(&s, &tok, "f.bin").await, body);

    // Instant upload without headers: the version has no metadata.
    let (st, v) = send(
        Method::PUT,
        &api(
            &s,
            "file",
            "f.bin",
            &tok,
            "conflict_resolution_strategy=overwrite",
        ),
        Some(json!({
            "beginningHash": h.beginning_hash, "fullHash": h.full_hash,
            "size": body.len().to_string(),
        })),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v.get("metaData").is_none(), "{v}");
    assert!(info(&s, &tok, "f.bin").await.get("metaData").is_none());
}

#[tokio::test]
async fn metadata_bounds_give_400() {
    let s = TestServer::start();
    let tok = s.token().await;
    let names: Vec<String> = (0..33).map(|i| format!("x-smh-meta-k{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let (st, v) = send_h(Method::PUT, &api(&s, "file", "a", &tok, ""), &many, None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ParamInvalid"))
    );
    // 32 are fine.
    let (st, _) = send_h(
        Method::PUT,
        &api(&s, "file", "a", &tok, ""),
        &many[..32],
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let big = "x".repeat(2100);
    let (st, v) = send_h(
        Method::POST,
        &api(&s, "file", "b", &tok, "multipart"),
        &[("x-smh-meta-big", &big)],
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ParamInvalid"))
    );
    let (st, v) = send(
        Method::PUT,
        &api(&s, "directory", "d", &tok, ""),
        Some(json!({"metaData": {"big": big}})),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ParamInvalid"))
    );
    let (st, v) = send(
        Method::PUT,
        &api(&s, "directory", "d", &tok, ""),
        Some(json!({"metaData": {"n": 1}})),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ParamInvalid"))
    );
    // Nothing was created by the refused calls.
    let (_, l) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(l["contents"], json!([]), "{l}");
}
