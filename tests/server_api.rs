//! Raw-HTTP tests of `smhfs serve` against the documented SMH API.

use crate::common;

use common::http::*;
use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use smhfs::smh::hash::ContentHashes;

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn startup_banner_and_unknown_route() {
    let s = TestServer::start();
    assert!(s.url.starts_with("http://127.0.0.1:"));
    let (st, v) = send(Method::GET, &format!("{}/api/v1/nope", s.url), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "RouteNotFound");
    assert!(v["requestId"].is_string());
    assert!(v["message"].is_string());
}

#[tokio::test]
async fn tokens_mint_renew_delete_and_errors() {
    let s = TestServer::start();
    let base = format!("{}/api/v1/token", s.url);
    let (st, v) = send(
        Method::GET,
        &format!("{base}?library_id=smhlocal&library_secret=smhlocal-secret&period=100"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["expiresIn"], 300, "period below 300 is raised to 300");
    let tok = v["accessToken"].as_str().unwrap().to_string();
    let (st, v) = send(
        Method::POST,
        &format!("{base}?library_id=smhlocal&library_secret=smhlocal-secret"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["expiresIn"], 86400);

    let (st, v) = send(
        Method::GET,
        &format!("{base}?library_id=smhlocal&library_secret=wrong"),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("WrongLibraryIdOrSecret"))
    );
    let (st, v) = send(Method::GET, &format!("{base}?library_id=smhlocal"), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("EmptyLibraryIdOrSecret"))
    );

    let (st, v) = send(Method::POST, &format!("{base}/smhlocal/{tok}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["accessToken"], tok.as_str());
    assert_eq!(v["expiresIn"], 300);

    // Read with the token: query, Bearer header.
    let (st, _) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(st, StatusCode::OK);
    let r = client()
        .get(format!("{}/api/v1/directory/smhlocal/-", s.url))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Library secret acts as admin.
    let (st, _) = send(
        Method::PUT,
        &format!(
            "{}/api/v1/directory/smhlocal/-/viasecret?library_secret=smhlocal-secret",
            s.url
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);

    let (st, _) = send(Method::DELETE, &format!("{base}/smhlocal/{tok}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("InvalidAccessToken"))
    );

    let (st, v) = send(
        Method::GET,
        &api(&s, "directory", "", "acctk01bogus", ""),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("InvalidAccessToken"))
    );
    let (st, v) = send(
        Method::GET,
        &format!("{}/api/v1/directory/smhlocal/-/", s.url),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("EmptyAccessToken"))
    );
    let (st, v) = send(
        Method::GET,
        &format!(
            "{}/api/v1/directory/smhlocal/other-space/?access_token=x",
            s.url
        ),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("SpaceNotFound"))
    );

    // A token used against another library is invalid there.
    let good = s.token().await;
    let (st, v) = send(
        Method::GET,
        &format!("{}/api/v1/directory/otherlib/-/?access_token={good}", s.url),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("InvalidAccessToken"))
    );
    // Huge paging numbers do not crash the server.
    let (st, _) = send(
        Method::GET,
        &api(
            &s,
            "directory",
            "",
            &good,
            "page=18446744073709551615&page_size=1000",
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = send(
        Method::GET,
        &api(&s, "directory", "", &good, "marker=offffffffffffffff"),
        None,
    )
    .await;
    assert!(st.is_client_error());

    // Revocation invalidates every token.
    let t2 = s.token().await;
    s.admin("/__revoke-tokens", "").await;
    let (st, v) = send(Method::GET, &api(&s, "directory", "", &t2, ""), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("InvalidAccessToken"))
    );
}

#[tokio::test]
async fn short_token_ttl_expires() {
    let s = TestServer::start_with(&["--token-ttl", "1"]);
    let tok = s.token().await;
    let (st, _) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(st, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (st, v) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("InvalidAccessToken"))
    );
}

#[tokio::test]
async fn read_only_token_cannot_write() {
    let s = TestServer::start();
    let (_, v) = send(
        Method::GET,
        &format!(
            "{}/api/v1/token?library_id=smhlocal&library_secret=smhlocal-secret",
            s.url
        ),
        None,
    )
    .await;
    let ro = v["accessToken"].as_str().unwrap().to_string();
    let (st, v) = send(Method::PUT, &api(&s, "directory", "d", &ro, ""), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("NoPermission"))
    );
    let (st, _) = send(Method::PUT, &api(&s, "file", "f.txt", &ro, ""), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // create_directory grant allows mkdir only.
    let (_, v) = send(Method::GET, &format!("{}/api/v1/token?library_id=smhlocal&library_secret=smhlocal-secret&grant=create_directory,upload_file", s.url), None).await;
    let t = v["accessToken"].as_str().unwrap().to_string();
    let (st, _) = send(Method::PUT, &api(&s, "directory", "d", &t, ""), None).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = send(Method::DELETE, &api(&s, "directory", "d", &t, ""), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // upload_file cannot overwrite.
    let (st, _) = upload(&s, &t, "x.txt", b"one", "").await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = send(
        Method::PUT,
        &api(
            &s,
            "file",
            "x.txt",
            &t,
            "conflict_resolution_strategy=overwrite",
        ),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("NoPermission"))
    );
}

#[tokio::test]
async fn mkdir_parents_conflicts() {
    let s = TestServer::start();
    let tok = s.token().await;
    let (st, v) = send(Method::PUT, &api(&s, "directory", "a/b/c", &tok, ""), None).await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(v["path"], json!(["a", "b", "c"]));
    assert!(v["creationTime"].as_str().unwrap().ends_with('Z'));
    let (st, v) = send(Method::PUT, &api(&s, "directory", "a/b/c", &tok, ""), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("SameNameDirectoryOrFileExists"))
    );
    let (st, v) = send(
        Method::PUT,
        &api(
            &s,
            "directory",
            "a/b/c",
            &tok,
            "conflict_resolution_strategy=rename",
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(v["path"], json!(["a", "b", "c (1)"]));
    // HEAD dir.
    let r = client()
        .head(api(&s, "directory", "a/b", &tok, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .head(api(&s, "directory", "a/zz", &tok, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // An intermediate file → 409 even with rename.
    upload(&s, &tok, "a/file", b"x", "").await;
    let (st, _) = send(
        Method::PUT,
        &api(
            &s,
            "directory",
            "a/file/sub",
            &tok,
            "conflict_resolution_strategy=rename",
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // `%2F` separates like `/`.
    let (st, v) = send(
        Method::GET,
        &api(&s, "directory", "a%2Fb", &tok, "info=1"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["type"], "dir");
    assert_eq!(v["path"], json!(["a", "b"]));
    let (st, v) = send(
        Method::GET,
        &api(&s, "directory", "a/file", &tok, "info"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["type"], "file");
    assert_eq!(v["size"], "1");
}

#[tokio::test]
async fn invalid_paths_rejected() {
    let s = TestServer::start();
    let tok = s.token().await;
    mkdir(&s, &tok, "a").await;
    let (st, v) = send(
        Method::PUT,
        &api(&s, "directory", "a%2F..%2Fb", &tok, ""),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidFilePath"))
    );
    let (st, v) = send(
        Method::GET,
        &api(&s, "directory", "a%2F.%2Fb", &tok, ""),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidFilePath"))
    );
    let long = "x".repeat(256);
    let (st, v) = send(Method::PUT, &api(&s, "directory", &long, &tok, ""), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("DirectoryNameLengthExceed"))
    );
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", &format!("a/{long}"), &tok, ""),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("FileNameLengthExceed"))
    );
    let ok = "y".repeat(255);
    let (st, _) = send(Method::PUT, &api(&s, "directory", &ok, &tok, ""), None).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = send(Method::GET, &api(&s, "directory", "a//b", &tok, ""), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Malformed JSON body → 400 with a message.
    let r = client()
        .put(api(&s, "directory", "m", &tok, ""))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("JSON"));
    let r = client()
        .put(api(&s, "directory", "m", &tok, ""))
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A `null` body is an empty body.
    let r = client()
        .put(api(&s, "directory", "m", &tok, ""))
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn listing_order_etag_and_paging() {
    let s = TestServer::start();
    let tok = s.token().await;
    upload(&s, &tok, "b.txt", b"b", "").await;
    upload(&s, &tok, "a.txt", b"aa", "").await;
    mkdir(&s, &tok, "zdir").await;
    mkdir(&s, &tok, "adir").await;
    let (st, v) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(st, StatusCode::OK);
    let names: Vec<&str> = v["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["adir", "zdir", "a.txt", "b.txt"]);
    assert_eq!(v["fileCount"], 2);
    assert_eq!(v["subDirCount"], 2);
    assert_eq!(v["totalNum"], 4);
    assert_eq!(v["path"], json!([]));
    assert!(v.get("nextMarker").is_none());
    let a = &v["contents"][2];
    assert_eq!(a["type"], "file");
    assert_eq!(a["size"], "2");
    assert_eq!(a["crc64"], ContentHashes::of(b"aa").crc64_string());
    assert!(
        a["eTag"].is_string() && a["creationTime"].is_string() && a["modificationTime"].is_string()
    );
    // If-None-Match → 304; a change → 200 with a new eTag.
    let etag = v["eTag"].as_str().unwrap().to_string();
    let r = client()
        .get(api(&s, "directory", "", &tok, ""))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    mkdir(&s, &tok, "new").await;
    let r = client()
        .get(api(&s, "directory", "", &tok, ""))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // filter / order.
    let (_, v) = send(
        Method::GET,
        &api(
            &s,
            "directory",
            "",
            &tok,
            "filter=onlyFile&order_by=name&order_by_type=desc",
        ),
        None,
    )
    .await;
    let names: Vec<&str> = v["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b.txt", "a.txt"]);
    // Page mode.
    let (_, v) = send(
        Method::GET,
        &api(&s, "directory", "", &tok, "page=2&page_size=2"),
        None,
    )
    .await;
    let names: Vec<&str> = v["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["zdir", "a.txt"]);
}

#[tokio::test]
async fn listing_2500_entries_in_pages_of_1000() {
    use futures::StreamExt;
    let s = TestServer::start();
    let tok = s.token().await;
    mkdir(&s, &tok, "big").await;
    let urls: Vec<String> = (0..2500)
        .map(|i| api(&s, "directory", &format!("big/d{i:05}"), &tok, ""))
        .collect();
    let results: Vec<StatusCode> = futures::stream::iter(urls)
        .map(|u| async move { client().put(u).send().await.unwrap().status() })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(results.iter().all(|s| *s == StatusCode::CREATED));
    let mut marker: Option<String> = None;
    let mut pages = Vec::new();
    let mut names = Vec::new();
    loop {
        let q = match &marker {
            Some(m) => format!("limit=1000&marker={m}&by-marker=1"),
            None => "limit=1000&by-marker=1".into(),
        };
        let (st, v) = send(Method::GET, &api(&s, "directory", "big", &tok, &q), None).await;
        assert_eq!(st, StatusCode::OK);
        let c = v["contents"].as_array().unwrap();
        pages.push(c.len());
        names.extend(c.iter().map(|e| e["name"].as_str().unwrap().to_string()));
        assert_eq!(v["totalNum"], 2500);
        match v.get("nextMarker").and_then(|m| m.as_str()) {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, [1000, 1000, 500]);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 2500);
    assert_eq!(names, sorted);
    // limit over 1000 is capped; default is 20.
    let (_, v) = send(
        Method::GET,
        &api(&s, "directory", "big", &tok, "limit=5000"),
        None,
    )
    .await;
    assert_eq!(v["contents"].as_array().unwrap().len(), 1000);
    let (_, v) = send(Method::GET, &api(&s, "directory", "big", &tok, ""), None).await;
    assert_eq!(v["contents"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn multipart_upload_and_range_download() {
    let s = TestServer::start();
    let tok = s.token().await;
    mkdir(&s, &tok, "up").await;
    let body = data(2 * MIB + 12345, 3);
    let t = multipart_begin(&s, &tok, "up/big.bin").await;
    for k in [
        "domain",
        "path",
        "uploadId",
        "headers",
        "confirmKey",
        "expiration",
        "availableDomainNum",
    ] {
        assert!(t.get(k).is_some(), "ticket lacks {k}: {t}");
    }
    assert!(t["headers"]["Authorization"]
        .as_str()
        .unwrap()
        .starts_with("q-sign-algorithm=sha1&"));
    assert!(t["headers"]["x-cos-security-token"].is_string());
    assert!(t["expiration"].as_str().unwrap().ends_with('Z'));
    // Parts out of order, in parallel.
    let (p1, p2, p3) = (
        body[..MIB].to_vec(),
        body[MIB..2 * MIB].to_vec(),
        body[2 * MIB..].to_vec(),
    );
    let (r3, r1, r2) = tokio::join!(
        put_part(&t, 3, p3.clone()),
        put_part(&t, 1, p1),
        put_part(&t, 2, p2)
    );
    for r in [&r1, &r2, &r3] {
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().contains_key("etag"));
    }
    assert_eq!(
        r3.headers()["x-cos-hash-crc64ecma"].to_str().unwrap(),
        ContentHashes::of(&p3).crc64_string()
    );
    let key = t["confirmKey"].as_str().unwrap();
    // Status lists the parts.
    let (st, v) = send(Method::GET, &api(&s, "file", key, &tok, "upload"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["confirmed"], false);
    assert_eq!(v["path"], json!(["up", "big.bin"]));
    assert_eq!(v["type"], "file");
    assert_eq!(v["conflictResolutionStrategy"], "rename");
    assert_eq!(v["force"], false);
    assert_eq!(v["uploadId"], t["uploadId"]);
    let parts = v["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["PartNumber"], 1);
    assert_eq!(parts[0]["Size"], MIB);
    assert_eq!(parts[2]["Size"], 12345);
    assert!(parts[0]["ETag"].is_string() && parts[0]["LastModified"].is_string());
    assert_eq!(v["uploadPartInfo"]["uploadId"], t["uploadId"]);
    assert_eq!(v["uploadPartInfo"]["headers"], t["headers"]);

    let crc = ContentHashes::of(&body).crc64_string();
    let (st, v) = confirm(
        &s,
        &tok,
        key,
        json!({"crc64": crc, "localModificationTime": "2022-07-26T02:58:09Z"}),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["path"], json!(["up", "big.bin"]));
    assert_eq!(v["name"], "big.bin");
    assert_eq!(v["type"], "file");
    assert_eq!(v["size"], body.len().to_string());
    assert_eq!(v["crc64"], crc.as_str());
    assert_eq!(v["isOverwritten"], false);
    for k in ["eTag", "creationTime", "modificationTime", "contentType"] {
        assert!(v[k].is_string(), "confirm reply lacks {k}");
    }
    let (st, v) = confirm(&s, &tok, key, json!({}), "").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("UploadComplete"))
    );
    let (st, v) = confirm(&s, &tok, "0000feed", json!({}), "").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("UploadNotFound"))
    );

    // HEAD file.
    let r = client()
        .head(api(&s, "file", "up/big.bin", &tok, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-smh-size"], body.len().to_string().as_str());
    assert_eq!(r.headers()["x-smh-crc64"], crc.as_str());
    assert_eq!(r.headers()["x-smh-type"], "file");
    // Download: 302 then Range.
    let r = client()
        .get(api(&s, "file", "up/big.bin", &tok, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["x-smh-size"], body.len().to_string().as_str());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = client()
        .get(&loc)
        .header("Range", "bytes=1048570-1048589")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 1048570-1048589/{}", body.len())
    );
    assert_eq!(r.headers()["x-cos-hash-crc64ecma"], crc.as_str());
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[1048570..1048590]);
    let r = client()
        .get(&loc)
        .header("Range", "bytes=-100")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[body.len() - 100..]);
    let r = client().get(&loc).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[..]);
    // A tampered signature is refused with COS XML.
    let r = client()
        .get(loc.replace("signature=", "signature=00"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>AccessDenied</Code>"));
    // ?info carries a working cosUrl.
    let (st, v) = send(
        Method::GET,
        &api(&s, "file", "up/big.bin", &tok, "info&period=60"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["size"], body.len().to_string());
    assert_eq!(v["type"], "file");
    let r = client()
        .get(v["cosUrl"].as_str().unwrap())
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[..10]);
    let st = s.stats().await;
    assert_eq!(st["part_bytes"], body.len());
    assert_eq!(st["requests"]["part_put"], 3);
    assert_eq!(st["requests"]["upload_confirm"], 3);
}

#[tokio::test]
async fn confirm_checks_crc_and_parts() {
    let s = TestServer::start();
    let tok = s.token().await;
    // Bad crc64.
    let t = multipart_begin(&s, &tok, "x.bin").await;
    put_part(&t, 1, data(1000, 1)).await;
    let key = t["confirmKey"].as_str().unwrap();
    let (st, v) = confirm(&s, &tok, key, json!({"crc64": "12345"}), "").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadCrc64"))
    );
    // Still confirmable with the right value.
    let (st, _) = confirm(
        &s,
        &tok,
        key,
        json!({"crc64": ContentHashes::of(&data(1000, 1)).crc64_string()}),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK);

    // Non-contiguous parts.
    let t = multipart_begin(&s, &tok, "y.bin").await;
    put_part(&t, 1, data(MIB, 1)).await;
    put_part(&t, 3, data(10, 1)).await;
    let (st, v) = confirm(&s, &tok, t["confirmKey"].as_str().unwrap(), json!({}), "").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("MultipartUploadIncomplete"))
    );

    // Non-last part below 1 MiB.
    let t = multipart_begin(&s, &tok, "z.bin").await;
    put_part(&t, 1, data(MIB - 1, 1)).await;
    put_part(&t, 2, data(10, 1)).await;
    let (st, v) = confirm(&s, &tok, t["confirmKey"].as_str().unwrap(), json!({}), "").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("MultipartUploadPartTooSmall"))
    );

    // No data at all.
    let t = multipart_begin(&s, &tok, "w.bin").await;
    let (st, v) = confirm(&s, &tok, t["confirmKey"].as_str().unwrap(), json!({}), "").await;
    assert_eq!(v["code"], "UploadIncomplete");
    assert!(st.is_client_error());

    // Part numbers out of range, wrong credentials.
    let r = put_part(&t, 10001, vec![1]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut bad = t.clone();
    bad["headers"]["x-cos-security-token"] = json!("nope");
    let r = put_part(&bad, 1, vec![1]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>AccessDenied</Code>"));
    // Abort.
    let key = t["confirmKey"].as_str().unwrap();
    let (st, _) = send(Method::DELETE, &api(&s, "file", key, &tok, "upload"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = send(Method::GET, &api(&s, "file", key, &tok, "upload"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn conflict_strategies_on_upload() {
    let s = TestServer::start();
    let tok = s.token().await;
    let (st, v) = upload(&s, &tok, "a.txt", b"first", "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["path"], json!(["a.txt"]));
    let (_, v) = upload(&s, &tok, "a.txt", b"second", "").await;
    assert_eq!(v["path"], json!(["a (1).txt"]));
    assert_eq!(v["name"], "a (1).txt");
    let (_, v) = upload(&s, &tok, "a.txt", b"third", "").await;
    assert_eq!(v["path"], json!(["a (2).txt"]));
    let (_, v) = upload(&s, &tok, "noext", b"x", "").await;
    assert_eq!(v["path"], json!(["noext"]));
    let (_, v) = upload(&s, &tok, "noext", b"y", "").await;
    assert_eq!(v["path"], json!(["noext (1)"]));
    // ask → 409 at begin.
    let (st, v) = send(
        Method::PUT,
        &api(
            &s,
            "file",
            "a.txt",
            &tok,
            "conflict_resolution_strategy=ask",
        ),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("SameNameDirectoryOrFileExists"))
    );
    // overwrite.
    let (st, v) = upload(
        &s,
        &tok,
        "a.txt",
        b"replaced",
        "conflict_resolution_strategy=overwrite",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["isOverwritten"], true);
    assert_eq!(v["path"], json!(["a.txt"]));
    assert_eq!(v["size"], "8");
    // overwrite onto a directory → 409.
    mkdir(&s, &tok, "d").await;
    let (st, _) = send(
        Method::PUT,
        &api(
            &s,
            "file",
            "d",
            &tok,
            "conflict_resolution_strategy=overwrite",
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // Missing parent → 404 DirectoryNotFound.
    let (st, v) = send(Method::PUT, &api(&s, "file", "nodir/x.txt", &tok, ""), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("DirectoryNotFound"))
    );
    // Conflict decided at confirm time: a task begun before the file existed.
    let (_, t) = send(
        Method::PUT,
        &api(
            &s,
            "file",
            "late.txt",
            &tok,
            "conflict_resolution_strategy=ask",
        ),
        None,
    )
    .await;
    upload(&s, &tok, "late.txt", b"winner", "").await;
    put_object(&t, "", b"loser".to_vec()).await;
    let (st, _) = confirm(&s, &tok, t["confirmKey"].as_str().unwrap(), json!({}), "").await;
    assert_eq!(st, StatusCode::CONFLICT);
}

#[tokio::test]
async fn instant_upload() {
    let s = TestServer::start();
    let tok = s.token().await;
    let body = data(3 * MIB, 9);
    let h = ContentHashes::of(&body);
    let t = multipart_begin(&s, &tok, "orig.bin").await;
    for i in 0..3 {
        put_part(&t, i as u32 + 1, body[i * MIB..(i + 1) * MIB].to_vec()).await;
    }
    let (st, _) = confirm(
        &s,
        &tok,
        t["confirmKey"].as_str().unwrap(),
        json!({"crc64": h.crc64_string()}),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    s.reset_stats().await;

    let size = body.len().to_string();
    let (st, v) = send(
        Method::POST,
        &api(&s, "file", "copy.bin", &tok, "multipart"),
        Some(json!({"beginningHash": h.beginning_hash, "size": size})),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    assert_eq!(v, Value::Null, "202 has an empty body");
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "copy.bin", &tok, ""),
        Some(json!({"beginningHash": h.beginning_hash, "fullHash": h.full_hash, "size": size})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["path"], json!(["copy.bin"]));
    assert_eq!(v["size"], size.as_str());
    assert_eq!(v["crc64"], h.crc64_string());
    // Conflict strategy applies: rename.
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "copy.bin", &tok, ""),
        Some(json!({"beginningHash": h.beginning_hash, "fullHash": h.full_hash, "size": size})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["path"], json!(["copy (1).bin"]));
    // Unknown hashes → 201 ticket.
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "other.bin", &tok, ""),
        Some(json!({"beginningHash": "00", "size": size})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    assert!(v["confirmKey"].is_string());
    // Under 1 MiB never instant.
    let small = ContentHashes::of(b"tiny");
    upload(&s, &tok, "tiny", b"tiny", "").await;
    let (st, _) = send(Method::PUT, &api(&s, "file", "tiny2", &tok, ""), Some(json!({"beginningHash": small.beginning_hash, "fullHash": small.full_hash, "size": "4"}))).await;
    assert_eq!(st, StatusCode::CREATED);
    let stats = s.stats().await;
    assert_eq!(stats["part_bytes"], 4);
    assert_eq!(stats["instant_upload_hits"], 2);
    // The instant copy downloads the same bytes.
    let got = download(&s, &tok, "copy.bin").await;
    assert_eq!(&got[..], &body[..]);
}

#[tokio::test]
async fn ticket_expiry_and_renew() {
    let s = TestServer::start_with(&["--ticket-ttl", "1"]);
    let tok = s.token().await;
    let t = multipart_begin(&s, &tok, "slow.bin").await;
    let r = put_part(&t, 1, data(MIB, 1)).await;
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = put_part(&t, 2, data(10, 1)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("AccessDenied"));
    let key = t["confirmKey"].as_str().unwrap();
    let (st, t2) = send(Method::POST, &api(&s, "file", key, &tok, "renew"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(t2["confirmKey"], key);
    assert_eq!(t2["uploadId"], t["uploadId"]);
    assert_ne!(
        t2["headers"]["Authorization"],
        t["headers"]["Authorization"]
    );
    let r = put_part(&t2, 2, data(10, 1)).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Old credentials stay refused.
    let r = put_part(&t, 2, data(10, 1)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (st, v) = confirm(&s, &tok, key, json!({}), "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["size"], (MIB + 10).to_string());
}

#[tokio::test]
async fn injected_faults() {
    let s = TestServer::start_with(&["--fault", "part:503:2"]);
    let tok = s.token().await;
    let t = multipart_begin(&s, &tok, "f.bin").await;
    // A large body gets the error reply too (not a connection reset).
    let r = put_part(&t, 1, data(8 * MIB, 1)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>ServerOverloaded</Code>"));
    assert_eq!(
        put_part(&t, 1, vec![1, 2, 3]).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        put_part(&t, 1, vec![1, 2, 3]).await.status(),
        StatusCode::OK
    );
    assert_eq!(s.stats().await["part_bytes"], 3);
    // Runtime faults on API routes give SMH JSON.
    s.admin("/__fault", "list:429:1").await;
    let (st, v) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("RateLimitExceeded"))
    );
    let (st, _) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(st, StatusCode::OK);
    s.admin("/__fault", "api:500:100%").await;
    let (st, v) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("InternalServerError")
        )
    );
    s.admin("/__faults/clear", "").await;
    let (st, _) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert_eq!(st, StatusCode::OK);
    s.admin("/__latency", "list:300").await;
    let t0 = std::time::Instant::now();
    send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    assert!(t0.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn file_move_copy_delete() {
    let s = TestServer::start();
    let tok = s.token().await;
    upload(&s, &tok, "src.txt", b"hello", "").await;
    // No parent creation on file move.
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "missing/dst.txt", &tok, ""),
        Some(json!({"from": "src.txt"})),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("DirectoryNotFound"))
    );
    mkdir(&s, &tok, "d").await;
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "d/dst.txt", &tok, ""),
        Some(json!({"from": "src.txt"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["path"], json!(["d", "dst.txt"]));
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "d/x.txt", &tok, ""),
        Some(json!({"from": "src.txt"})),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("SourceFileNotFound"))
    );
    // Copy, then rename on conflict, overwrite.
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "d/dst.txt", &tok, ""),
        Some(json!({"copyFrom": "d/dst.txt"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["path"], json!(["d", "dst (1).txt"]));
    upload(&s, &tok, "other.txt", b"other!", "").await;
    let (st, _) = send(
        Method::PUT,
        &api(
            &s,
            "file",
            "d/dst.txt",
            &tok,
            "conflict_resolution_strategy=ask",
        ),
        Some(json!({"from": "other.txt"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = send(
        Method::PUT,
        &api(
            &s,
            "file",
            "d/dst.txt",
            &tok,
            "conflict_resolution_strategy=overwrite",
        ),
        Some(json!({"from": "other.txt"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = send(
        Method::GET,
        &api(&s, "directory", "d/dst.txt", &tok, "info"),
        None,
    )
    .await;
    assert_eq!(v["size"], "6");
    let (st, _) = send(
        Method::PUT,
        &api(
            &s,
            "file",
            "d",
            &tok,
            "conflict_resolution_strategy=overwrite",
        ),
        Some(json!({"from": "d/dst.txt"})),
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // Delete to bin, then permanent.
    let (st, v) = send(
        Method::DELETE,
        &api(&s, "file", "d/dst.txt", &tok, ""),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(v["recycledItemId"].is_u64());
    let (st, v) = send(
        Method::GET,
        &format!("{}/api/v1/recycled/smhlocal/-?access_token={tok}", s.url),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["contents"][0]["name"], "dst.txt");
    assert_eq!(v["contents"][0]["originalPath"], json!(["d", "dst.txt"]));
    let (st, _) = send(
        Method::DELETE,
        &api(&s, "file", "d/dst (1).txt", &tok, "permanent=1"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = send(
        Method::DELETE,
        &api(&s, "file", "d/dst (1).txt", &tok, "permanent=1"),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("FileNotFound"))
    );
}

#[tokio::test]
async fn directory_move_copy_and_recursive_delete() {
    let s = TestServer::start();
    let tok = s.token().await;
    mkdir(&s, &tok, "p/q/r").await;
    upload(&s, &tok, "p/q/r/f.txt", b"deep", "").await;
    // Move creates destination parents; ask (default) → 204.
    let (st, _) = send(
        Method::PUT,
        &api(&s, "directory", "new/parent/q2", &tok, ""),
        Some(json!({"from": "p/q"})),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = send(
        Method::GET,
        &api(&s, "directory", "new/parent/q2/r/f.txt", &tok, "info"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = send(
        Method::PUT,
        &api(&s, "directory", "x", &tok, ""),
        Some(json!({"from": "p/q"})),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("SourceDirectoryNotFound"))
    );
    let (st, v) = send(
        Method::PUT,
        &api(&s, "directory", "new/parent/q2/r/inner", &tok, ""),
        Some(json!({"from": "new/parent"})),
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("SourceDirectoryIsParentOfDestination")
        )
    );
    // Copy with rename.
    let (st, v) = send(
        Method::PUT,
        &api(
            &s,
            "directory",
            "new/parent/q2",
            &tok,
            "conflict_resolution_strategy=rename",
        ),
        Some(json!({"copyFrom": "new/parent/q2"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["path"], json!(["new", "parent", "q2 (1)"]));
    let (st, _) = send(
        Method::GET,
        &api(&s, "directory", "new/parent/q2 (1)/r/f.txt", &tok, "info"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    // Recursive delete, permanent.
    let (st, _) = send(
        Method::DELETE,
        &api(&s, "directory", "new", &tok, "permanent=1"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = send(
        Method::GET,
        &api(&s, "directory", "new/parent/q2 (1)/r/f.txt", &tok, "info"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = send(Method::GET, &api(&s, "directory", "", &tok, ""), None).await;
    let names: Vec<&str> = v["contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p"]);
    // To the bin.
    let (st, v) = send(Method::DELETE, &api(&s, "directory", "p", &tok, ""), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(v["recycledItemId"].is_u64());
}

#[tokio::test]
async fn no_recycle_bin_deletes_permanently() {
    let s = TestServer::start_with(&["--no-recycle-bin"]);
    let tok = s.token().await;
    mkdir(&s, &tok, "d").await;
    let (st, _) = send(Method::DELETE, &api(&s, "directory", "d", &tok, ""), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn usage_and_quota() {
    let s = TestServer::start_with(&["--capacity", "3000000"]);
    let tok = s.token().await;
    upload(&s, &tok, "a.bin", &data(1_000_000, 1), "").await;
    let (st, v) = send(
        Method::GET,
        &format!("{}/api/v1/usage/smhlocal/-?access_token={tok}", s.url),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        v,
        json!([{"spaceId": "-", "capacity": "3000000", "availableSpace": "2000000", "size": "1000000"}])
    );
    let (_, v) = send(
        Method::GET,
        &format!("{}/api/v1/space/smhlocal/-/size?access_token={tok}", s.url),
        None,
    )
    .await;
    assert_eq!(v, json!({"size": "1000000"}));
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "big.bin", &tok, "filesize=2500000"),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("QuotaLimitReached"))
    );
    // Exceeding at confirm.
    let (st, t) = send(Method::PUT, &api(&s, "file", "big.bin", &tok, ""), None).await;
    assert_eq!(st, StatusCode::CREATED);
    put_object(&t, "", data(2_500_000, 2)).await;
    let (st, v) = confirm(&s, &tok, t["confirmKey"].as_str().unwrap(), json!({}), "").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("QuotaLimitReached"))
    );
}

#[tokio::test]
async fn restart_keeps_files_and_upload_tasks() {
    let mut s = TestServer::start();
    let tok = s.token().await;
    upload(&s, &tok, "kept.txt", b"persistent", "").await;
    let t = multipart_begin(&s, &tok, "resume.bin").await;
    let p1 = data(MIB, 5);
    assert_eq!(put_part(&t, 1, p1.clone()).await.status(), StatusCode::OK);
    let old_url = s.url.clone();
    s.restart();
    assert_eq!(s.url, old_url);
    let tok = s.token().await;
    let (st, v) = send(
        Method::GET,
        &api(&s, "directory", "kept.txt", &tok, "info"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["size"], "10");
    let key = t["confirmKey"].as_str().unwrap();
    let (st, v) = send(Method::GET, &api(&s, "file", key, &tok, "upload"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["parts"][0]["PartNumber"], 1);
    assert_eq!(
        put_part(&v["uploadPartInfo"], 2, b"tail".to_vec())
            .await
            .status(),
        StatusCode::OK
    );
    let mut all = p1;
    all.extend_from_slice(b"tail");
    let (st, v) = confirm(
        &s,
        &tok,
        key,
        json!({"crc64": ContentHashes::of(&all).crc64_string()}),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn multi_space_library() {
    let s = TestServer::start_with(&["--multi-space"]);
    let tok = s.token().await;
    let (st, v) = send(
        Method::POST,
        &format!("{}/api/v1/space/smhlocal?access_token={tok}", s.url),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let sp = v["spaceId"].as_str().unwrap().to_string();
    let (st, _) = send(
        Method::PUT,
        &format!(
            "{}/api/v1/directory/smhlocal/{sp}/d?access_token={tok}",
            s.url
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, v) = send(
        Method::GET,
        &format!("{}/api/v1/directory/smhlocal/-/?access_token={tok}", s.url),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("SpaceNotFound"))
    );
    let (st, v) = send(
        Method::GET,
        &format!("{}/api/v1/space/smhlocal/list?access_token={tok}", s.url),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["list"][0]["spaceId"], sp.as_str());
    let (st, v) = send(
        Method::DELETE,
        &format!("{}/api/v1/space/smhlocal/{sp}?access_token={tok}", s.url),
        None,
    )
    .await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("SpaceNotEmpty"))
    );
    let (st, _) = send(
        Method::DELETE,
        &format!(
            "{}/api/v1/space/smhlocal/{sp}?access_token={tok}&force=1",
            s.url
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn reuploaded_part_wins() {
    let s = TestServer::start();
    let tok = s.token().await;
    let t = multipart_begin(&s, &tok, "re.bin").await;
    let (a, b, c) = (data(MIB, 1), data(MIB, 2), data(100, 3));
    assert_eq!(put_part(&t, 1, a.clone()).await.status(), StatusCode::OK);
    assert_eq!(put_part(&t, 2, b.clone()).await.status(), StatusCode::OK);
    // Let the background assembly consume parts 1 and 2, then replace part 1.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let a2 = data(MIB, 7);
    assert_eq!(put_part(&t, 1, a2.clone()).await.status(), StatusCode::OK);
    assert_eq!(put_part(&t, 3, c.clone()).await.status(), StatusCode::OK);
    let mut all = a2;
    all.extend_from_slice(&b);
    all.extend_from_slice(&c);
    let h = ContentHashes::of(&all);
    let (st, v) = confirm(
        &s,
        &tok,
        t["confirmKey"].as_str().unwrap(),
        json!({"crc64": h.crc64_string()}),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // The stored hashes are those of the final content: instant upload finds it.
    let (st, _) = send(
        Method::PUT,
        &api(&s, "file", "again.bin", &tok, ""),
        Some(json!({"beginningHash": h.beginning_hash, "fullHash": h.full_hash, "size": all.len().to_string()})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let r = client()
        .get(api(&s, "file", "re.bin", &tok, ""))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        client()
            .get(loc)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        &all[..]
    );
}

#[tokio::test]
async fn in_order_parts_hash_for_instant_upload() {
    let s = TestServer::start();
    let tok = s.token().await;
    let body = data(5 * MIB + 7, 4);
    let h = ContentHashes::of(&body);
    let t = multipart_begin(&s, &tok, "seq.bin").await;
    for (i, chunk) in body.chunks(MIB).enumerate() {
        assert_eq!(
            put_part(&t, i as u32 + 1, chunk.to_vec()).await.status(),
            StatusCode::OK
        );
    }
    let (st, v) = confirm(&s, &tok, t["confirmKey"].as_str().unwrap(), json!({}), "").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["crc64"], h.crc64_string());
    let (st, _) = send(
        Method::POST,
        &api(&s, "file", "seq2.bin", &tok, "multipart"),
        Some(json!({"beginningHash": h.beginning_hash, "fullHash": h.full_hash, "size": body.len().to_string()})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn recycle_bin_restore_and_purge() {
    let s = TestServer::start();
    let tok = s.token().await;
    let bin = |rest: &str, q: &str| {
        format!(
            "{}/api/v1/recycled/smhlocal/-{rest}?access_token={tok}{q}",
            s.url
        )
    };
    upload(&s, &tok, "r.txt", b"recycle me", "").await;
    let (_, v) = send(Method::DELETE, &api(&s, "file", "r.txt", &tok, ""), None).await;
    let id = v["recycledItemId"].as_u64().unwrap();
    let (st, _) = send(
        Method::GET,
        &api(&s, "directory", "r.txt", &tok, "info"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // A new file takes the name; restore with ask → 409, rename → "r (1).txt".
    upload(&s, &tok, "r.txt", b"new", "").await;
    let (st, _) = send(Method::POST, &bin(&format!("/{id}"), "&restore"), None).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, v) = send(
        Method::POST,
        &bin(
            &format!("/{id}"),
            "&restore&conflict_resolution_strategy=rename",
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["path"], json!(["r (1).txt"]));
    let (_, v) = send(
        Method::GET,
        &api(&s, "directory", "r (1).txt", &tok, "info"),
        None,
    )
    .await;
    assert_eq!(v["size"], "10");
    // Purge one, then empty the bin.
    mkdir(&s, &tok, "d1/sub").await;
    mkdir(&s, &tok, "d2").await;
    let (_, v) = send(Method::DELETE, &api(&s, "directory", "d1", &tok, ""), None).await;
    let id1 = v["recycledItemId"].as_u64().unwrap();
    send(Method::DELETE, &api(&s, "directory", "d2", &tok, ""), None).await;
    let (_, v) = send(Method::GET, &bin("", ""), None).await;
    assert_eq!(v["contents"].as_array().unwrap().len(), 2);
    assert_eq!(v["contents"][0]["type"], "dir");
    let (st, _) = send(Method::DELETE, &bin(&format!("/{id1}"), ""), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = send(Method::DELETE, &bin(&format!("/{id1}"), ""), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = send(Method::DELETE, &bin("", ""), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, v) = send(Method::GET, &bin("", ""), None).await;
    assert_eq!(v["contents"], json!([]));
}

// ---- Multipart assembly: every layout the task blob must cope with ----

/// Confirms with the right crc64, then checks the reply, the stored bytes
/// and the hashes (instant upload of the same content finds it).
async fn confirm_and_verify(s: &TestServer, tok: &str, t: &Value, path: &str, all: &[u8]) {
    let h = ContentHashes::of(all);
    let (st, v) = confirm(
        s,
        tok,
        t["confirmKey"].as_str().unwrap(),
        json!({"crc64": h.crc64_string()}),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "confirm {path}: {v}");
    assert_eq!(v["crc64"], h.crc64_string());
    assert_eq!(v["size"], all.len().to_string());
    let got = download(s, tok, path).await;
    assert!(got == all, "{path}: stored bytes differ");
    if all.len() >= MIB {
        let (st, v) = send(
            Method::PUT,
            &api(s, "file", &format!("{path}.again"), tok, ""),
            Some(json!({"beginningHash": h.beginning_hash, "fullHash": h.full_hash, "size": all.len().to_string()})),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "instant upload of {path}: {v}");
    }
}

/// Files left under the data directory's `uploads/`.
fn upload_leftovers(s: &TestServer) -> Vec<String> {
    std::fs::read_dir(s.data.join("uploads"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn non_uniform_part_sizes_are_assembled() {
    let s = TestServer::start();
    let tok = s.token().await;
    // Part 2 is longer than part 1 (the task blob's part size): fallback.
    let sizes = [MIB, 2 * MIB + 3, MIB + 17, 1000];
    let t = multipart_begin(&s, &tok, "odd.bin").await;
    let mut all = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let p = data(*n, 10 + i as u8);
        all.extend_from_slice(&p);
        assert_eq!(put_part(&t, i as u32 + 1, p).await.status(), StatusCode::OK);
    }
    confirm_and_verify(&s, &tok, &t, "odd.bin", &all).await;
    assert!(
        upload_leftovers(&s).is_empty(),
        "{:?}",
        upload_leftovers(&s)
    );
}

#[tokio::test]
async fn part_replaced_before_confirm_keeps_the_new_bytes() {
    let s = TestServer::start();
    let tok = s.token().await;
    let t = multipart_begin(&s, &tok, "swap.bin").await;
    let mut parts: Vec<Vec<u8>> = (0..4).map(|i| data(MIB, 20 + i)).collect();
    parts[3].truncate(4321);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(
            put_part(&t, i as u32 + 1, p.clone()).await.status(),
            StatusCode::OK
        );
    }
    // Let the background hasher pass part 2, then replace it twice (the
    // second replacement goes back into the task blob slot).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    parts[1] = data(MIB, 77);
    assert_eq!(
        put_part(&t, 2, parts[1].clone()).await.status(),
        StatusCode::OK
    );
    parts[1] = data(MIB, 78);
    assert_eq!(
        put_part(&t, 2, parts[1].clone()).await.status(),
        StatusCode::OK
    );
    // And the last part, shorter than before.
    parts[3] = data(999, 79);
    assert_eq!(
        put_part(&t, 4, parts[3].clone()).await.status(),
        StatusCode::OK
    );
    let (st, v) = send(
        Method::GET,
        &api(
            &s,
            "file",
            t["confirmKey"].as_str().unwrap(),
            &tok,
            "upload",
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["parts"].as_array().unwrap().len(), 4);
    assert_eq!(v["parts"][3]["Size"], 999);
    let all = parts.concat();
    confirm_and_verify(&s, &tok, &t, "swap.bin", &all).await;
    assert!(
        upload_leftovers(&s).is_empty(),
        "{:?}",
        upload_leftovers(&s)
    );
}

#[tokio::test]
async fn parts_out_of_order_with_and_without_announced_size() {
    let s = TestServer::start();
    let tok = s.token().await;
    let body = data(3 * MIB + 5555, 30);
    for (name, begin_body) in [
        ("rev.bin", None),
        (
            "rev-sized.bin",
            Some(json!({"size": body.len().to_string()})),
        ),
    ] {
        let (st, t) = send(
            Method::POST,
            &api(&s, "file", name, &tok, "multipart"),
            begin_body,
        )
        .await;
        assert_eq!(st, StatusCode::CREATED, "{t}");
        // The short last part first, then the others backwards.
        let chunks: Vec<&[u8]> = body.chunks(MIB).collect();
        for i in (0..chunks.len()).rev() {
            assert_eq!(
                put_part(&t, i as u32 + 1, chunks[i].to_vec())
                    .await
                    .status(),
                StatusCode::OK
            );
        }
        confirm_and_verify(&s, &tok, &t, name, &body).await;
    }
    // Part 2 first (a full part or the tail? undecidable), then 1, 3.
    let (_, t) = send(
        Method::POST,
        &api(&s, "file", "mid.bin", &tok, "multipart"),
        Some(json!({"size": body.len().to_string()})),
    )
    .await;
    let chunks: Vec<&[u8]> = body.chunks(MIB).collect();
    for i in [1, 0, 2, 3] {
        put_part(&t, i as u32 + 1, chunks[i].to_vec()).await;
    }
    confirm_and_verify(&s, &tok, &t, "mid.bin", &body).await;
    assert!(
        upload_leftovers(&s).is_empty(),
        "{:?}",
        upload_leftovers(&s)
    );
}

#[tokio::test]
async fn bad_crc64_then_correct_confirm() {
    let s = TestServer::start();
    let tok = s.token().await;
    // Multipart with uniform parts (the task blob is renamed at confirm).
    let body = data(2 * MIB + 99, 40);
    let t = multipart_begin(&s, &tok, "crc.bin").await;
    for (i, c) in body.chunks(MIB).enumerate() {
        put_part(&t, i as u32 + 1, c.to_vec()).await;
    }
    let key = t["confirmKey"].as_str().unwrap();
    let (st, v) = confirm(&s, &tok, key, json!({"crc64": "1"}), "").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("BadCrc64"))
    );
    let (st, v) = send(Method::GET, &api(&s, "file", key, &tok, "upload"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["confirmed"], false);
    assert_eq!(v["parts"].as_array().unwrap().len(), 3);
    confirm_and_verify(&s, &tok, &t, "crc.bin", &body).await;
    // Simple uploads, small (kept in the database) and large (a file); the
    // second time with a re-sent body.
    for (name, n) in [("small.txt", 3000), ("large.bin", 300 * 1024)] {
        let body = data(n, 41);
        let (st, t) = send(Method::PUT, &api(&s, "file", name, &tok, ""), None).await;
        assert_eq!(st, StatusCode::CREATED);
        assert_eq!(
            put_object(&t, "", data(n, 42)).await.status(),
            StatusCode::OK
        );
        let key = t["confirmKey"].as_str().unwrap();
        let (st, v) = confirm(&s, &tok, key, json!({"crc64": "7"}), "").await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("BadCrc64"))
        );
        // The crc64 of the intended body does not match the bytes sent
        // either; the client sends them again.
        let want = ContentHashes::of(&body).crc64_string();
        let (st, v) = confirm(&s, &tok, key, json!({"crc64": want}), "").await;
        assert_eq!(
            (st, v["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("BadCrc64"))
        );
        assert_eq!(
            put_object(&t, "", body.clone()).await.status(),
            StatusCode::OK
        );
        confirm_and_verify(&s, &tok, &t, name, &body).await;
    }
    assert!(
        upload_leftovers(&s).is_empty(),
        "{:?}",
        upload_leftovers(&s)
    );
}

#[tokio::test]
async fn parts_after_a_server_restart_complete_the_file() {
    let mut s = TestServer::start();
    let tok = s.token().await;
    let mut parts: Vec<Vec<u8>> = (0..3).map(|i| data(MIB, 50 + i)).collect();
    parts[2].truncate(777);
    let t = multipart_begin(&s, &tok, "restart.bin").await;
    put_part(&t, 1, parts[0].clone()).await;
    put_part(&t, 2, parts[1].clone()).await;
    // A small simple upload stored but not confirmed.
    let small = data(5000, 59);
    let (_, ts) = send(Method::PUT, &api(&s, "file", "small.txt", &tok, ""), None).await;
    assert_eq!(
        put_object(&ts, "", small.clone()).await.status(),
        StatusCode::OK
    );
    s.restart();
    let tok = s.token().await;
    let key = t["confirmKey"].as_str().unwrap();
    let (st, v) = send(Method::GET, &api(&s, "file", key, &tok, "upload"), None).await;
    assert_eq!(st, StatusCode::OK);
    let ticket = v["uploadPartInfo"].clone();
    // Part 2 replaced, part 3 added after the restart.
    parts[1] = data(MIB, 60);
    assert_eq!(
        put_part(&ticket, 2, parts[1].clone()).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        put_part(&ticket, 3, parts[2].clone()).await.status(),
        StatusCode::OK
    );
    confirm_and_verify(&s, &tok, &t, "restart.bin", &parts.concat()).await;
    confirm_and_verify(&s, &tok, &ts, "small.txt", &small).await;
    assert!(
        upload_leftovers(&s).is_empty(),
        "{:?}",
        upload_leftovers(&s)
    );
}

#[tokio::test]
async fn abort_removes_stored_parts() {
    let s = TestServer::start();
    let tok = s.token().await;
    let t = multipart_begin(&s, &tok, "gone.bin").await;
    put_part(&t, 1, data(MIB, 1)).await;
    put_part(&t, 2, data(2 * MIB, 2)).await; // fallback file
    let (_, ts) = send(Method::PUT, &api(&s, "file", "gone.txt", &tok, ""), None).await;
    put_object(&ts, "", data(100, 3)).await;
    assert!(!upload_leftovers(&s).is_empty());
    for t in [&t, &ts] {
        let key = t["confirmKey"].as_str().unwrap();
        let (st, _) = send(Method::DELETE, &api(&s, "file", key, &tok, "upload"), None).await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        let (st, _) = confirm(&s, &tok, key, json!({}), "").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
    }
    assert!(
        upload_leftovers(&s).is_empty(),
        "{:?}",
        upload_leftovers(&s)
    );
}

#[tokio::test]
async fn concurrent_duplicate_parts_store_the_recorded_version() {
    let s = TestServer::start();
    let tok = s.token().await;
    let t = multipart_begin(&s, &tok, "race.bin").await;
    let n = 6;
    let versions: Vec<[Vec<u8>; 2]> = (0..n)
        .map(|i| {
            let len = if i == n - 1 { 12345 } else { MIB };
            [data(len, 100 + i as u8), data(len, 200 + i as u8)]
        })
        .collect();
    // Every part twice at once, with different bytes.
    let mut reqs = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        for body in v {
            reqs.push(put_part(&t, i as u32 + 1, body.clone()));
        }
    }
    for r in futures::future::join_all(reqs).await {
        assert_eq!(r.status(), StatusCode::OK);
    }
    // The recorded eTag tells which version of each part won.
    let key = t["confirmKey"].as_str().unwrap();
    let (_, v) = send(Method::GET, &api(&s, "file", key, &tok, "upload"), None).await;
    let mut all = Vec::new();
    for (i, pair) in versions.iter().enumerate() {
        let etag = v["parts"][i]["ETag"].as_str().unwrap().to_string();
        let pick = pair
            .iter()
            .find(|b| {
                use md5::Digest;
                etag == format!("\"{}\"", hex::encode(md5::Md5::digest(b)))
            })
            .expect("the recorded eTag is one of the versions sent");
        all.extend_from_slice(pick);
    }
    confirm_and_verify(&s, &tok, &t, "race.bin", &all).await;
    assert!(
        upload_leftovers(&s).is_empty(),
        "{:?}",
        upload_leftovers(&s)
    );
}
