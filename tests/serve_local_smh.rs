//! `smhfs serve` as a local SMH for browser apps and SDKs (issue 17): CORS
//! on API, upload and download routes; the batch API and its tasks; renewed
//! upload tickets that leave the earlier credentials valid.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::http::*;
use crate::common::{client_for, TestServer};
use smhfs::smh::SmhPath;

const ORIGIN: &str = "http://app.example:5173";

/// A simple upload that must succeed.
async fn put_file(s: &TestServer, tok: &str, path: &str, body: &[u8]) {
    let (st, v) = upload(s, tok, path, body, "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

/// Confirms the upload of ticket `t`.
async fn confirm_ticket(s: &TestServer, tok: &str, t: &Value) -> (StatusCode, Value) {
    confirm(s, tok, t["confirmKey"].as_str().unwrap(), json!({}), "").await
}

fn header<'a>(h: &'a HeaderMap, k: &str) -> &'a str {
    h.get(k).map(|v| v.to_str().unwrap()).unwrap_or("")
}

fn lower_list(h: &HeaderMap, k: &str) -> Vec<String> {
    header(h, k)
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Asserts a browser may read `wanted` from a reply to `ORIGIN`.
fn assert_exposed(h: &HeaderMap, wanted: &[&str]) {
    assert_eq!(header(h, "access-control-allow-origin"), ORIGIN, "{h:?}");
    let exposed = lower_list(h, "access-control-expose-headers");
    for w in wanted {
        assert!(
            exposed.iter().any(|e| e == w),
            "{w} not exposed: {exposed:?}"
        );
    }
}

async fn preflight(url: &str, method: &str, headers: &str) -> reqwest::Response {
    client()
        .request(Method::OPTIONS, url)
        .header("origin", ORIGIN)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_preflights_and_cross_origin_api_upload_download() {
    let s = TestServer::start();
    let tok = s.token().await;
    // The SDK's directory listing preflight.
    let asked = "client-version,authorization,content-type,x-smh-meta-color";
    let r = preflight(
        &format!("{}/api/v1/directory/smhlocal/-/", s.url),
        "GET",
        asked,
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let h = r.headers();
    assert_eq!(header(h, "access-control-allow-origin"), ORIGIN);
    let methods = lower_list(h, "access-control-allow-methods");
    for m in ["get", "put", "post", "delete", "head"] {
        assert!(methods.iter().any(|x| x == m), "{m}: {methods:?}");
    }
    let allowed = lower_list(h, "access-control-allow-headers");
    for a in asked.split(',') {
        assert!(allowed.iter().any(|x| x == a), "{a}: {allowed:?}");
    }
    assert!(header(h, "access-control-max-age").parse::<u64>().unwrap() > 0);

    // A cross-origin listing, HEAD and a failing call.
    put_file(&s, &tok, "pic.png", b"not really a png").await;
    let r = client()
        .get(api(&s, "directory", "", &tok, ""))
        .header("origin", ORIGIN)
        .header("client-version", "1.0.16")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_exposed(r.headers(), &["etag"]);
    // The same listing without an Origin (not a browser): no CORS headers.
    let r = client()
        .get(api(&s, "directory", "", &tok, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cors: Vec<_> = r
        .headers()
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .collect();
    assert!(cors.is_empty(), "{:?}", r.headers());
    let r = client()
        .head(api(&s, "file", "pic.png", &tok, ""))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_exposed(
        r.headers(),
        &["x-smh-size", "x-smh-etag", "x-smh-crc64", "x-smh-type"],
    );
    let r = client()
        .get(api(&s, "file", "missing.png", &tok, "info"))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(r.headers(), "access-control-allow-origin"), ORIGIN);

    // Upload: preflight of a part PUT, then the PUT from the browser.
    let (_, t) = send(
        Method::POST,
        &api(&s, "file", "big.bin", &tok, "multipart"),
        None,
    )
    .await;
    let r = preflight(
        &part_url(&t, 1),
        "PUT",
        "authorization,x-cos-security-token,content-type",
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(r.headers(), "access-control-allow-origin"), ORIGIN);
    let part = vec![3u8; 1 << 20];
    let r = put_object_from(&t, &part_query(&t, 1), part.clone(), Some(ORIGIN)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_exposed(r.headers(), &["etag", "x-cos-hash-crc64ecma"]);
    assert_eq!(confirm_ticket(&s, &tok, &t).await.0, StatusCode::OK);

    // Download: the signed object URL, ranged, from the browser.
    let (_, info) = send(Method::GET, &api(&s, "file", "big.bin", &tok, "info"), None).await;
    let url = info["cosUrl"].as_str().unwrap();
    let r = preflight(url, "GET", "range").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = client()
        .get(url)
        .header("origin", ORIGIN)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_exposed(
        r.headers(),
        &[
            "content-range",
            "content-length",
            "x-cos-hash-crc64ecma",
            "etag",
        ],
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &part[10..20]);
}

#[tokio::test]
async fn cors_origin_flag_limits_origins() {
    let s = TestServer::start_with(&["--cors-origin", "http://good.example,http://also.example"]);
    let url = format!("{}/api/v1/directory/smhlocal/-/", s.url);
    for (origin, allowed) in [
        ("http://good.example", true),
        ("http://also.example", true),
        ("http://evil.example", false),
    ] {
        let r = client()
            .request(Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        let got = header(r.headers(), "access-control-allow-origin").to_string();
        if allowed {
            assert_eq!(got, origin);
        } else {
            assert_eq!(got, "", "{origin} allowed");
        }
    }
}

fn statuses(v: &Value) -> Vec<u64> {
    v["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect()
}

async fn batch(s: &TestServer, tok: &str, op: &str, body: Value) -> (StatusCode, Value) {
    let url = format!("{}/api/v1/batch/smhlocal/-?{op}&access_token={tok}", s.url);
    send(Method::POST, &url, Some(body)).await
}

#[tokio::test]
async fn batch_delete_move_copy_report_each_item() {
    let s = TestServer::start();
    let tok = s.token().await;
    put_file(&s, &tok, "a.txt", b"aaa").await;
    put_file(&s, &tok, "b.txt", b"bbb").await;
    put_file(&s, &tok, "c.txt", b"ccc").await;
    mkdir(&s, &tok, "d/sub").await;
    put_file(&s, &tok, "d/sub/x.txt", b"xxx").await;
    mkdir(&s, &tok, "dest").await;

    // Copy: one to a free name, one onto an existing name (renamed), one
    // from nowhere, one into a missing directory.
    let (st, v) = batch(
        &s,
        &tok,
        "copy",
        json!([
            {"copyFrom": "a.txt", "to": "dest/a.txt"},
            {"copyFrom": "b.txt", "to": "a.txt", "conflictResolutionStrategy": "rename"},
            {"copyFrom": "nope.txt", "to": "dest/nope.txt"},
            {"copyFrom": "c.txt", "to": "no/such/dir/c.txt"},
        ]),
    )
    .await;
    assert_eq!(st, StatusCode::MULTI_STATUS, "{v}");
    assert_eq!(statuses(&v), [200, 200, 404, 404]);
    assert_eq!(v["result"][1]["path"], json!(["a (1).txt"]));
    assert_eq!(v["result"][1]["copyFrom"], json!(["b.txt"]));
    assert_eq!(v["result"][3]["code"], "DirectoryNotFound");
    assert_eq!(try_download(&s, &tok, "dest/a.txt").await.unwrap(), b"aaa");
    assert_eq!(try_download(&s, &tok, "a (1).txt").await.unwrap(), b"bbb");

    // Move: a file, a directory (parents created), and a conflict (ask).
    let (st, v) = batch(
        &s,
        &tok,
        "move",
        json!([
            {"from": "c.txt", "to": "dest/c.txt", "conflictResolutionStrategy": "rename"},
            {"from": "d/sub", "to": "moved/deep/sub"},
            {"from": "b.txt", "to": "a.txt", "conflictResolutionStrategy": "ask"},
        ]),
    )
    .await;
    assert_eq!(st, StatusCode::MULTI_STATUS, "{v}");
    assert_eq!(statuses(&v), [200, 204, 409]);
    assert_eq!(v["result"][0]["from"], json!(["c.txt"]));
    assert_eq!(v["result"][0]["to"], json!(["dest", "c.txt"]));
    assert_eq!(v["result"][2]["code"], "SameNameDirectoryOrFileExists");
    assert_eq!(try_download(&s, &tok, "c.txt").await, None);
    assert_eq!(try_download(&s, &tok, "dest/c.txt").await.unwrap(), b"ccc");
    assert_eq!(
        try_download(&s, &tok, "moved/deep/sub/x.txt")
            .await
            .unwrap(),
        b"xxx"
    );
    assert_eq!(try_download(&s, &tok, "b.txt").await.unwrap(), b"bbb");

    // Delete: to the bin, for good, a directory, and a missing path.
    let (st, v) = batch(
        &s,
        &tok,
        "delete",
        json!([
            {"path": "a.txt"},
            {"path": "b.txt", "permanent": true},
            {"path": "moved"},
            {"path": "gone.txt"},
        ]),
    )
    .await;
    assert_eq!(st, StatusCode::MULTI_STATUS, "{v}");
    assert_eq!(statuses(&v), [200, 204, 200, 404]);
    assert!(v["result"][0]["recycledItemId"].as_u64().is_some(), "{v}");
    assert_eq!(v["result"][3]["path"], json!(["gone.txt"]));
    for gone in ["a.txt", "b.txt", "moved/deep/sub/x.txt"] {
        assert_eq!(try_download(&s, &tok, gone).await, None, "{gone}");
    }
    let url = format!("{}/api/v1/recycled/smhlocal/-?access_token={tok}", s.url);
    let (_, bin) = send(Method::GET, &url, None).await;
    let names: Vec<&str> = bin["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "moved"]);

    // All done: 200. A read-only token gets 403 per item.
    let (st, v) = batch(&s, &tok, "delete", json!([{"path": "a (1).txt"}])).await;
    assert_eq!((st, statuses(&v)), (StatusCode::OK, vec![200]));
    let ro = token_with(&s, "").await;
    let (st, v) = batch(&s, &ro, "delete", json!([{"path": "dest/a.txt"}])).await;
    assert_eq!((st, statuses(&v)), (StatusCode::MULTI_STATUS, vec![403]));
    assert_eq!(try_download(&s, &tok, "dest/a.txt").await.unwrap(), b"aaa");
    // Not an array: 400.
    let (st, _) = batch(&s, &tok, "delete", json!({"path": "x"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn large_batch_runs_as_a_task() {
    let s = TestServer::start_with(&["--batch-sync-max", "3"]);
    let tok = s.token().await;
    let mut items = Vec::new();
    for i in 0..8 {
        put_file(&s, &tok, &format!("f{i}.txt"), b"x").await;
        items.push(json!({"path": format!("f{i}.txt"), "permanent": true}));
    }
    items.push(json!({"path": "missing.txt"}));
    let (st, v) = batch(&s, &tok, "delete", Value::Array(items)).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let id = v["taskId"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let task = loop {
        let url = format!("{}/api/v1/task/smhlocal/-/{id}?access_token={tok}", s.url);
        let (st, v) = send(Method::GET, &url, None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v[0]["taskId"], id);
        if v[0]["status"] != 202 {
            break v[0].clone();
        }
        assert!(Instant::now() < deadline, "task still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(task["status"], 207, "{task}");
    assert_eq!(
        statuses(&task["result"]),
        [204, 204, 204, 204, 204, 204, 204, 204, 404]
    );
    for i in 0..8 {
        assert_eq!(try_download(&s, &tok, &format!("f{i}.txt")).await, None);
    }
    // Unknown ids and other spaces' tasks are not found.
    let r = client()
        .get(format!(
            "{}/api/v1/task/smhlocal/-/{}?access_token={tok}",
            s.url,
            id + 100
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The client's batch delete waits for the task.
    for i in 0..5 {
        put_file(&s, &tok, &format!("g{i}.txt"), b"y").await;
    }
    let client = client_for(&s);
    let mut paths: Vec<SmhPath> = (0..5)
        .map(|i| SmhPath::parse(&format!("g{i}.txt")).unwrap())
        .collect();
    paths.push(SmhPath::parse("nothing-here.txt").unwrap());
    let results = client.batch_delete(&paths, false).await.unwrap();
    let st: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(st, [200, 200, 200, 200, 200, 404]);
    assert_eq!(results[5].code.as_deref(), Some("PathNotFound"));
    for i in 0..5 {
        assert_eq!(try_download(&s, &tok, &format!("g{i}.txt")).await, None);
    }
}

#[tokio::test]
async fn client_batch_delete_small_batch() {
    let s = TestServer::start();
    let tok = s.token().await;
    put_file(&s, &tok, "k.txt", b"k").await;
    let client = client_for(&s);
    let paths = [SmhPath::parse("k.txt").unwrap()];
    let results = client.batch_delete(&paths, true).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, 204);
    assert_eq!(try_download(&s, &tok, "k.txt").await, None);
}

#[tokio::test]
async fn renew_keeps_earlier_credentials_until_they_expire() {
    let s = TestServer::start_with(&["--ticket-ttl", "4"]);
    let tok = s.token().await;
    let (_, t) = send(
        Method::POST,
        &api(&s, "file", "long.bin", &tok, "multipart"),
        None,
    )
    .await;
    let began = Instant::now();
    let q = |n: u32| part_query(&t, n);
    let p1 = vec![1u8; 1 << 20];
    assert_eq!(
        put_object_from(&t, &q(1), p1.clone(), None).await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let key = t["confirmKey"].as_str().unwrap();
    let (st, t2) = send(Method::POST, &api(&s, "file", key, &tok, "renew"), None).await;
    assert_eq!(st, StatusCode::OK, "{t2}");
    assert_ne!(
        t2["headers"]["Authorization"],
        t["headers"]["Authorization"]
    );
    // Parts scheduled with the credentials of the begin reply still go in.
    let p2 = vec![2u8; 1 << 20];
    let r = put_object_from(&t, &q(2), p2.clone(), None).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let p3 = vec![3u8; 1 << 20];
    assert_eq!(
        put_object_from(&t2, &q(3), p3.clone(), None).await.status(),
        StatusCode::OK
    );
    // Once their own expiry has passed, the earlier ones are refused; the
    // renewed ones still work.
    let old_expiry = Duration::from_secs(4) + Duration::from_millis(800);
    tokio::time::sleep(old_expiry.saturating_sub(began.elapsed())).await;
    let r = put_object_from(&t, &q(4), b"late".to_vec(), None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let p4 = b"tail".to_vec();
    assert_eq!(
        put_object_from(&t2, &q(4), p4.clone(), None).await.status(),
        StatusCode::OK
    );
    let (st, v) = confirm_ticket(&s, &tok, &t).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let want: Vec<u8> = [p1, p2, p3, p4].concat();
    assert_eq!(try_download(&s, &tok, "long.bin").await.unwrap(), want);
}
