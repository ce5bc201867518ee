//! Raw-HTTP helpers for tests that talk to `smhfs serve` as an SMH client
//! (or a browser) would: URLs, JSON calls, object PUTs with ticket headers,
//! simple and multipart uploads, downloads through the API.

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use smhfs::smh::hash::ContentHashes;

use super::TestServer;

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `{url}/api/v1/{kind}/{lib}/-/{path}` with the token and extra query.
pub fn api(s: &TestServer, kind: &str, path: &str, tok: &str, query: &str) -> String {
    let sep = if query.is_empty() { "" } else { "&" };
    format!(
        "{}/api/v1/{kind}/{}/-/{path}?access_token={tok}{sep}{query}",
        s.url, s.library
    )
}

pub async fn send(m: Method, url: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut rb = client().request(m, url);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let st = r.status();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (st, v)
}

pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_add(seed).wrapping_mul(7))
        .collect()
}

pub async fn put_object(ticket: &Value, query: &str, body: Vec<u8>) -> reqwest::Response {
    put_object_from(ticket, query, body, None).await
}

/// [`put_object`] as a browser page on `origin` sends it.
pub async fn put_object_from(
    ticket: &Value,
    query: &str,
    body: Vec<u8>,
    origin: Option<&str>,
) -> reqwest::Response {
    let domain = ticket["domain"].as_str().unwrap();
    let path = ticket["path"].as_str().unwrap();
    let mut url = format!("http://{domain}{path}");
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let mut rb = client().put(url).body(body);
    for (k, v) in ticket["headers"].as_object().unwrap() {
        rb = rb.header(k.as_str(), v.as_str().unwrap());
    }
    if let Some(o) = origin {
        rb = rb.header("origin", o);
    }
    rb.send().await.unwrap()
}

/// The query of part `n` of a multipart ticket.
pub fn part_query(ticket: &Value, n: u32) -> String {
    format!(
        "partNumber={n}&uploadId={}",
        ticket["uploadId"].as_str().unwrap()
    )
}

/// The object URL of part `n` of a multipart ticket.
pub fn part_url(ticket: &Value, n: u32) -> String {
    format!(
        "http://{}{}?{}",
        ticket["domain"].as_str().unwrap(),
        ticket["path"].as_str().unwrap(),
        part_query(ticket, n)
    )
}

pub async fn put_part(ticket: &Value, n: u32, body: Vec<u8>) -> reqwest::Response {
    put_object(ticket, &part_query(ticket, n), body).await
}

pub async fn confirm(
    s: &TestServer,
    tok: &str,
    key: &str,
    body: Value,
    query: &str,
) -> (StatusCode, Value) {
    let q = if query.is_empty() {
        "confirm".to_string()
    } else {
        format!("confirm&{query}")
    };
    send(Method::POST, &api(s, "file", key, tok, &q), Some(body)).await
}

/// Simple upload: begin (PUT) → object PUT → confirm.
pub async fn upload(
    s: &TestServer,
    tok: &str,
    path: &str,
    body: &[u8],
    query: &str,
) -> (StatusCode, Value) {
    let (st, t) = send(Method::PUT, &api(s, "file", path, tok, query), None).await;
    assert_eq!(st, StatusCode::CREATED, "begin {path}: {t}");
    assert!(t.get("uploadId").is_none());
    let r = put_object(&t, "", body.to_vec()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let crc = ContentHashes::of(body).crc64_string();
    confirm(
        s,
        tok,
        t["confirmKey"].as_str().unwrap(),
        json!({ "crc64": crc }),
        "",
    )
    .await
}

pub async fn mkdir(s: &TestServer, tok: &str, path: &str) {
    let (st, v) = send(Method::PUT, &api(s, "directory", path, tok, ""), None).await;
    assert_eq!(st, StatusCode::CREATED, "mkdir {path}: {v}");
}

pub async fn multipart_begin(s: &TestServer, tok: &str, path: &str) -> Value {
    let (st, t) = send(Method::POST, &api(s, "file", path, tok, "multipart"), None).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    t
}

/// A token with `grant` (comma-separated; empty for none), minted with the
/// library secret.
pub async fn token_with(s: &TestServer, grant: &str) -> String {
    let r = mint(&s.url, &s.secret, grant).await;
    let v: Value = r.json().await.expect("token JSON");
    v["accessToken"].as_str().expect("accessToken").to_string()
}

/// `GET /api/v1/token` on `url` with `secret`.
pub async fn mint(url: &str, secret: &str, grant: &str) -> reqwest::Response {
    reqwest::get(format!(
        "{url}/api/v1/token?library_id=smhlocal&library_secret={secret}&grant={grant}"
    ))
    .await
    .expect("token request")
}

/// The bytes of the file at `path`, downloaded through the API and its
/// signed object URL; `None` when the API says 404.
pub async fn try_download(s: &TestServer, tok: &str, path: &str) -> Option<Vec<u8>> {
    let r = client()
        .get(api(s, "file", path, tok, ""))
        .send()
        .await
        .unwrap();
    if r.status() == StatusCode::NOT_FOUND {
        return None;
    }
    assert_eq!(r.status(), StatusCode::FOUND);
    let url = r.headers()["location"].to_str().unwrap().to_string();
    let body = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    Some(body.to_vec())
}

/// The stored content of `path`, through the download redirect.
pub async fn download(s: &TestServer, tok: &str, path: &str) -> Vec<u8> {
    let r = client()
        .get(api(s, "file", path, tok, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND, "download {path}");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = client().get(loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap().to_vec()
}
