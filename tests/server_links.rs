//! Native symlinks (`linkTo`, smh-api.md §4.7) and info by inode (§4.14) on
//! `smhfs serve`, over raw HTTP (the client side is in `client_api`).

use crate::common;

use common::http::*;
use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn link(s: &TestServer, tok: &str, path: &str, to: &str, query: &str) -> (StatusCode, Value) {
    send(
        Method::PUT,
        &api(s, "file", path, tok, query),
        Some(json!({ "linkTo": to })),
    )
    .await
}

async fn info(s: &TestServer, tok: &str, path: &str) -> Value {
    let (st, v) = send(Method::GET, &api(s, "directory", path, tok, "info"), None).await;
    assert_eq!(st, StatusCode::OK, "info {path}: {v}");
    v
}

async fn item(s: &TestServer, tok: &str, dir: &str, name: &str) -> Value {
    let (st, v) = send(
        Method::GET,
        &api(s, "directory", dir, tok, "with_inode=1"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["contents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {dir:?}: {v}"))
        .clone()
}

fn code(v: &Value) -> Option<&str> {
    v["code"].as_str()
}

#[tokio::test]
async fn create_list_info_and_follow() {
    let s = TestServer::start();
    let tok = s.token().await;
    mkdir(&s, &tok, "d").await;
    let (_, f) = upload(&s, &tok, "d/target.txt", b"hello", "").await;
    let target_inode = f["inode"].as_str().unwrap().to_string();

    let (st, v) = link(&s, &tok, "ln", "d/target.txt", "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"path": ["ln"]}));

    let e = item(&s, &tok, "", "ln").await;
    assert_eq!(e["type"], "symlink", "{e}");
    assert_eq!(e["linkTo"], target_inode.as_str());
    assert_eq!(e["size"], "5", "size of the target");
    assert_eq!(e["crc64"], f["crc64"]);
    assert_eq!(e["eTag"], f["eTag"]);
    assert!(e["inode"].is_string());
    assert_ne!(
        e["inode"],
        target_inode.as_str(),
        "the link is its own item"
    );
    let i = info(&s, &tok, "ln").await;
    assert_eq!(
        (&i["type"], &i["linkTo"]),
        (&json!("symlink"), &json!(target_inode))
    );
    assert_eq!(i["path"], json!(["ln"]));
    // The target itself is a plain file.
    assert_eq!(item(&s, &tok, "d", "target.txt").await["type"], "file");

    // Download, file ?info and HEAD follow the link.
    assert_eq!(download(&s, &tok, "ln").await, b"hello");
    let (st, fi) = send(Method::GET, &api(&s, "file", "ln", &tok, "info"), None).await;
    assert_eq!((st, &fi["size"]), (StatusCode::OK, &json!("5")), "{fi}");
    let r = client()
        .head(api(&s, "file", "ln", &tok, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-smh-size"], "5");

    // The target moves: the link follows (by inode).
    let (st, _) = send(
        Method::PUT,
        &api(&s, "file", "moved.txt", &tok, ""),
        Some(json!({"from": "d/target.txt"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(download(&s, &tok, "ln").await, b"hello");
    assert_eq!(info(&s, &tok, "ln").await["linkTo"], target_inode.as_str());
    // The target is overwritten: the link shows the new content.
    upload(
        &s,
        &tok,
        "moved.txt",
        b"new content",
        "conflict_resolution_strategy=overwrite",
    )
    .await;
    assert_eq!(download(&s, &tok, "ln").await, b"new content");
    assert_eq!(item(&s, &tok, "", "ln").await["size"], "11");

    // A link to a link: followed; moves, copies and deletes act on the link.
    let (st, v) = link(&s, &tok, "d/ln2", "ln", "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let ln_inode = item(&s, &tok, "", "ln").await["inode"].clone();
    assert_eq!(info(&s, &tok, "d/ln2").await["linkTo"], ln_inode);
    assert_eq!(download(&s, &tok, "d/ln2").await, b"new content");
    let (st, _) = send(
        Method::PUT,
        &api(&s, "file", "ln-copy", &tok, ""),
        Some(json!({"copyFrom": "ln"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(info(&s, &tok, "ln-copy").await["type"], "symlink");
    assert_eq!(
        info(&s, &tok, "ln-copy").await["linkTo"],
        target_inode.as_str()
    );
    let (st, _) = send(
        Method::PUT,
        &api(&s, "file", "d/ln-moved", &tok, ""),
        Some(json!({"from": "ln-copy"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(info(&s, &tok, "d/ln-moved").await["type"], "symlink");
    let (st, _) = send(
        Method::DELETE,
        &api(&s, "file", "d/ln-moved", &tok, "permanent=1"),
        None,
    )
    .await;
    assert!(st.is_success());
    assert_eq!(
        download(&s, &tok, "moved.txt").await,
        b"new content",
        "target untouched"
    );

    // The target is deleted: the link dangles (listed, no content).
    let (st, _) = send(
        Method::DELETE,
        &api(&s, "file", "moved.txt", &tok, ""),
        None,
    )
    .await;
    assert!(st.is_success());
    let e = item(&s, &tok, "", "ln").await;
    assert_eq!(
        (&e["type"], &e["linkTo"]),
        (&json!("symlink"), &json!(target_inode))
    );
    assert_eq!(e["size"], "0");
    assert!(e.get("eTag").is_none(), "{e}");
    assert_eq!(try_download(&s, &tok, "ln").await, None);
    let (st, v) = send(Method::GET, &api(&s, "file", "d/ln2", &tok, "info"), None).await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::NOT_FOUND, Some("FileNotFound"))
    );
}

#[tokio::test]
async fn errors_and_conflict_strategies() {
    let s = TestServer::start();
    let tok = s.token().await;
    mkdir(&s, &tok, "dir").await;
    upload(&s, &tok, "f", b"f", "").await;
    upload(&s, &tok, "g", b"gg", "").await;

    let (st, v) = link(&s, &tok, "l", "missing", "").await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::NOT_FOUND, Some("FileNotFound"))
    );
    let (st, v) = link(&s, &tok, "l", "dir", "").await;
    assert_eq!(
        (st, code(&v)),
        (
            StatusCode::BAD_REQUEST,
            Some("SymlinkToDirectoryNotAllowed")
        )
    );
    let (st, v) = link(&s, &tok, "nodir/l", "f", "").await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::NOT_FOUND, Some("DirectoryNotFound"))
    );
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "l", &tok, ""),
        Some(json!({"linkTo": 5})),
    )
    .await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::BAD_REQUEST, Some("BadRequest"))
    );

    // Strategies: rename (default), ask, overwrite (a file; a directory is
    // still a conflict).
    assert_eq!(link(&s, &tok, "l", "f", "").await.0, StatusCode::OK);
    let (st, v) = link(&s, &tok, "l", "f", "").await;
    assert_eq!((st, &v["path"]), (StatusCode::OK, &json!(["l (1)"])));
    let (st, v) = link(&s, &tok, "l", "g", "conflict_resolution_strategy=ask").await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::CONFLICT, Some("SameNameDirectoryOrFileExists"))
    );
    let inode_l = item(&s, &tok, "", "l").await["inode"].clone();
    let (st, v) = link(
        &s,
        &tok,
        "l",
        "g",
        "conflict_resolution_strategy=overwrite&with_inode=1",
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["inode"], inode_l, "an overwrite keeps the node");
    assert_eq!(download(&s, &tok, "l").await, b"gg");
    let (st, _) = link(
        &s,
        &tok,
        "dir",
        "g",
        "conflict_resolution_strategy=overwrite",
    )
    .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // A file overwritten by a link becomes one.
    let (st, _) = link(&s, &tok, "f", "g", "conflict_resolution_strategy=overwrite").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(info(&s, &tok, "f").await["type"], "symlink");
    // ... and a link overwritten by an upload becomes a file again.
    upload(
        &s,
        &tok,
        "f",
        b"plain",
        "conflict_resolution_strategy=overwrite",
    )
    .await;
    assert_eq!(info(&s, &tok, "f").await["type"], "file");
    assert_eq!(download(&s, &tok, "f").await, b"plain");

    // Cycles: a link onto itself, or onto a chain that comes back to it.
    let (st, v) = link(&s, &tok, "l", "l", "conflict_resolution_strategy=overwrite").await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::CONFLICT, Some("CircleSymlink"))
    );
    assert_eq!(link(&s, &tok, "m", "l", "").await.0, StatusCode::OK);
    let (st, v) = link(&s, &tok, "l", "m", "conflict_resolution_strategy=overwrite").await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::CONFLICT, Some("CircleSymlink"))
    );
    assert_eq!(download(&s, &tok, "m").await, b"gg", "nothing changed");

    // Depth: chain c1 → g, c2 → c1, ... a link resolves through at most 8.
    let mut prev = "g".to_string();
    for i in 1..=8 {
        let name = format!("c{i}");
        let (st, v) = link(&s, &tok, &name, &prev, "").await;
        assert_eq!(st, StatusCode::OK, "{name}: {v}");
        prev = name;
    }
    assert_eq!(download(&s, &tok, "c8").await, b"gg");
    let (st, v) = link(&s, &tok, "c9", "c8", "").await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::BAD_REQUEST, Some("SymlinkDepthLimitExceeded"))
    );

    // Grants: create_symlink, and create_symlink_force to overwrite.
    let weak = token_with(&s, "create_symlink").await;
    assert_eq!(link(&s, &weak, "w", "g", "").await.0, StatusCode::OK);
    let (st, v) = link(
        &s,
        &weak,
        "w",
        "g",
        "conflict_resolution_strategy=overwrite",
    )
    .await;
    assert_eq!(
        (st, code(&v)),
        (StatusCode::FORBIDDEN, Some("NoPermission"))
    );
    let none = token_with(&s, "").await;
    assert_eq!(
        link(&s, &none, "w2", "g", "").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn inode_endpoint_and_change_feed() {
    let s = TestServer::start();
    let tok = s.token().await;
    mkdir(&s, &tok, "a").await;
    let (_, f) = upload(&s, &tok, "a/t.txt", b"t", "").await;
    let t_inode = f["inode"].as_str().unwrap().to_string();
    let feed = format!("{}/api/v1/fs-delta/{}/-", s.url, s.library);
    let (_, c) = send(
        Method::GET,
        &format!("{feed}/cursor?access_token={tok}"),
        None,
    )
    .await;
    let cursor = c["cursor"].as_str().unwrap().to_string();
    let (st, _) = link(&s, &tok, "a/l", "a/t.txt", "").await;
    assert_eq!(st, StatusCode::OK);
    let l_inode = item(&s, &tok, "a", "l").await["inode"]
        .as_str()
        .unwrap()
        .to_string();

    let by_inode = |i: &str| {
        format!(
            "{}/api/v1/inode/{}/-/{i}?access_token={tok}",
            s.url, s.library
        )
    };
    let (st, v) = send(Method::GET, &by_inode(&t_inode), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["path"], &v["type"]),
        (&json!(["a", "t.txt"]), &json!("file"))
    );
    let (st, v) = send(Method::GET, &by_inode(&l_inode), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["path"], json!(["a", "l"]));
    assert_eq!(
        (&v["type"], &v["linkTo"]),
        (&json!("symlink"), &json!(t_inode))
    );
    let dir_inode = info(&s, &tok, "a").await["inode"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, v) = send(Method::GET, &by_inode(&dir_inode), None).await;
    assert_eq!((&v["path"], &v["type"]), (&json!(["a"]), &json!("dir")));
    for bad in ["ffffff", "zz", ""] {
        let (st, v) = send(Method::GET, &by_inode(bad), None).await;
        assert_eq!(
            (st, code(&v)),
            (StatusCode::NOT_FOUND, Some("FileNotFound")),
            "{bad}"
        );
    }
    // Renamed: the new path; in the recycle bin: unknown.
    send(
        Method::PUT,
        &api(&s, "file", "t2.txt", &tok, ""),
        Some(json!({"from": "a/t.txt"})),
    )
    .await;
    assert_eq!(
        send(Method::GET, &by_inode(&t_inode), None).await.1["path"],
        json!(["t2.txt"])
    );
    send(Method::DELETE, &api(&s, "file", "t2.txt", &tok, ""), None).await;
    assert_eq!(
        send(Method::GET, &by_inode(&t_inode), None).await.0,
        StatusCode::NOT_FOUND
    );

    // The feed reported the link's creation as a symlink with linkTo.
    let (st, d) = send(
        Method::GET,
        &format!("{feed}/delta?cursor={cursor}&access_token={tok}"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{d}");
    let created: Vec<&Value> = d["contents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["inode"] == l_inode.as_str())
        .collect();
    assert_eq!(created.len(), 1, "{d}");
    assert_eq!(created[0]["eventType"], "FILE.CREATE");
    assert_eq!(created[0]["type"], "symlink");
    assert_eq!(created[0]["linkTo"], t_inode.as_str());
}
