//! The change feed of `smhfs serve` (`fs-delta`, smh-api.md §4.15): every
//! kind of change is an entry naming the item by a stable inode, paging,
//! expired and unknown cursors, a server without the feed, and conditional
//! listings (304).

use crate::common;

use common::http::*;
use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use smhfs::smh::hash::ContentHashes;
use smhfs::smh::DeltaPoll;

const MIB: usize = 1024 * 1024;

fn feed(s: &TestServer, tok: &str, what: &str, query: &str) -> String {
    format!(
        "{}/api/v1/fs-delta/{}/-/{what}?access_token={tok}{query}",
        s.url, s.library
    )
}

async fn cursor(s: &TestServer, tok: &str) -> String {
    let (st, v) = send(Method::GET, &feed(s, tok, "cursor", ""), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["cursor"].as_str().expect("cursor").to_string()
}

/// Every entry after `cur` (following `hasMore`), and the last cursor.
async fn changes(s: &TestServer, tok: &str, cur: &str) -> (Vec<Value>, String) {
    let mut out = Vec::new();
    let mut cur = cur.to_string();
    for _ in 0..100 {
        let (st, v) = send(
            Method::GET,
            &feed(s, tok, "delta", &format!("&cursor={cur}&limit=1000")),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        out.extend(v["contents"].as_array().unwrap().iter().cloned());
        cur = v["cursor"].as_str().unwrap().to_string();
        if v["hasMore"] == false {
            return (out, cur);
        }
    }
    panic!("hasMore never ended");
}

/// `(eventType, name, location)` of each entry.
fn summary(entries: &[Value]) -> Vec<(String, String, u64)> {
    entries
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
                e["location"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn info(s: &TestServer, tok: &str, path: &str) -> Value {
    let (st, v) = send(Method::GET, &api(s, "directory", path, tok, "info"), None).await;
    assert_eq!(st, StatusCode::OK, "{path}: {v}");
    v
}

async fn put_from(s: &TestServer, tok: &str, kind: &str, to: &str, body: Value, q: &str) {
    let (st, v) = send(Method::PUT, &api(s, kind, to, tok, q), Some(body)).await;
    assert!(st.is_success(), "{kind} {to}: {st} {v}");
}

#[tokio::test]
async fn each_change_is_one_entry_with_a_stable_inode() {
    let s = TestServer::start();
    let tok = s.token().await;
    let c0 = cursor(&s, &tok).await;
    let (none, c1) = changes(&s, &tok, &c0).await;
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(c1, c0, "no change, same position");

    mkdir(&s, &tok, "d").await;
    let (st, _) = upload(&s, &tok, "d/a.txt", b"first", "").await;
    assert_eq!(st, StatusCode::OK);
    let ino = info(&s, &tok, "d/a.txt").await["inode"].clone();
    let d_ino = info(&s, &tok, "d").await["inode"].clone();
    let (st, _) = upload(
        &s,
        &tok,
        "d/a.txt",
        b"second, longer",
        "conflict_resolution_strategy=overwrite",
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let after = info(&s, &tok, "d/a.txt").await;
    assert_eq!(after["inode"], ino, "an overwrite keeps the inode");

    let (entries, c2) = changes(&s, &tok, &c0).await;
    assert_eq!(
        summary(&entries),
        [
            ("DIR.CREATE".into(), "d".into(), 0),
            ("FILE.CREATE".into(), "a.txt".into(), 0),
            ("FILE.MODIFY".into(), "a.txt".into(), 0),
        ]
    );
    let modify = &entries[2];
    // Each content of a file is the next version; directories have none.
    assert_eq!(entries[1]["versionId"], 1, "{}", entries[1]);
    assert_eq!(modify["versionId"], 2, "{modify}");
    assert!(entries[0].get("versionId").is_none(), "{}", entries[0]);
    assert_eq!(modify["inode"], ino);
    assert_eq!(modify["parentInode"], d_ino);
    assert_eq!(modify["type"], "file");
    assert_eq!(modify["size"], "14");
    assert_eq!(modify["eTag"], after["eTag"]);
    assert_eq!(modify["crc64"], after["crc64"]);
    assert_eq!(
        modify["crc64"],
        ContentHashes::of(b"second, longer").crc64_string()
    );
    for k in [
        "eventTime",
        "contentType",
        "creationTime",
        "modificationTime",
    ] {
        assert!(modify[k].is_string(), "{k} in {modify}");
    }
    assert_eq!(entries[0]["inode"], d_ino);
    assert_eq!(entries[0]["type"], "dir");
    assert!(entries[0].get("size").is_none(), "no size for directories");
    // The listing maps names to the same inodes.
    let (_, l) = send(
        Method::GET,
        &api(&s, "directory", "d", &tok, "with_inode=1"),
        None,
    )
    .await;
    assert_eq!(l["contents"][0]["inode"], ino);

    // Rename, copy, instant upload, recycle, restore, permanent delete.
    put_from(&s, &tok, "file", "d/b.txt", json!({"from": "d/a.txt"}), "").await;
    put_from(
        &s,
        &tok,
        "file",
        "c.txt",
        json!({"copyFrom": "d/b.txt"}),
        "",
    )
    .await;
    let big = data(2 * MIB, 3);
    upload(&s, &tok, "big.bin", &big, "").await;
    let h = ContentHashes::of(&big);
    let (st, v) = send(
        Method::PUT,
        &api(&s, "file", "twin.bin", &tok, ""),
        Some(json!({"beginningHash": h.beginning_hash, "fullHash": h.full_hash, "size": big.len().to_string()})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "instant upload: {v}");
    let (st, v) = send(Method::DELETE, &api(&s, "file", "c.txt", &tok, ""), None).await;
    assert_eq!(st, StatusCode::OK);
    let rid = v["recycledItemId"].as_u64().unwrap();
    let (st, _) = send(
        Method::POST,
        &format!(
            "{}/api/v1/recycled/smhlocal/-/{rid}?access_token={tok}&restore",
            s.url
        ),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = send(
        Method::DELETE,
        &api(&s, "file", "twin.bin", &tok, "permanent=1"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (entries, c3) = changes(&s, &tok, &c2).await;
    assert_eq!(
        summary(&entries),
        [
            ("FILE.MOVE".into(), "b.txt".into(), 0),
            ("FILE.CREATE".into(), "c.txt".into(), 0),
            ("FILE.CREATE".into(), "big.bin".into(), 0),
            ("FILE.CREATE".into(), "twin.bin".into(), 0),
            ("FILE.DELETE".into(), "c.txt".into(), 1),
            ("FILE.RESTORE".into(), "c.txt".into(), 0),
            ("FILE.DELETE".into(), "twin.bin".into(), 3),
        ]
    );
    assert_eq!(entries[0]["inode"], ino, "a rename keeps the inode");
    assert_eq!(entries[0]["extraInfo"]["fromName"], "a.txt");
    assert_eq!(entries[0]["extraInfo"]["fromParentInode"], d_ino);
    assert_eq!(entries[4]["inode"], entries[5]["inode"]);
    assert_eq!(entries[3]["eTag"], entries[2]["eTag"], "same content");

    // Directory move and delete, and batch operations.
    put_from(&s, &tok, "directory", "e", json!({"from": "d"}), "").await;
    let batch = |op: &str| format!("{}/api/v1/batch/smhlocal/-?{op}&access_token={tok}", s.url);
    let (st, v) = send(
        Method::POST,
        &batch("move"),
        Some(json!([{"from": "c.txt", "to": "e/c.txt"}])),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = send(
        Method::POST,
        &batch("delete"),
        Some(json!([{"path": "big.bin", "permanent": false}])),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = send(
        Method::DELETE,
        &api(&s, "directory", "e", &tok, "permanent=1"),
        None,
    )
    .await;
    assert!(st.is_success());
    let (entries, _) = changes(&s, &tok, &c3).await;
    let kinds = summary(&entries);
    assert_eq!(kinds[0], ("DIR.MOVE".into(), "e".into(), 0));
    assert_eq!(
        entries[0]["inode"], d_ino,
        "a directory move keeps the inode"
    );
    assert_eq!(kinds[1], ("FILE.MOVE".into(), "c.txt".into(), 0));
    assert_eq!(entries[1]["parentInode"], d_ino);
    assert_eq!(kinds[2], ("FILE.DELETE".into(), "big.bin".into(), 1));
    // The permanent delete of `e` reports its files and then `e` itself.
    assert_eq!(kinds.last().unwrap(), &("DIR.DELETE".into(), "e".into(), 3));
    let names: Vec<&str> = kinds[3..].iter().map(|k| k.1.as_str()).collect();
    assert!(
        names.contains(&"b.txt") && names.contains(&"c.txt"),
        "{names:?}"
    );
}

#[tokio::test]
async fn paging_follows_has_more() {
    let s = TestServer::start();
    let tok = s.token().await;
    let c0 = cursor(&s, &tok).await;
    for i in 0..5 {
        mkdir(&s, &tok, &format!("p{i}")).await;
    }
    let page = |cur: String| {
        let url = feed(&s, &tok, "delta", &format!("&cursor={cur}&limit=2"));
        async move { send(Method::GET, &url, None).await.1 }
    };
    let mut names = Vec::new();
    let mut cur = c0;
    let mut more = Vec::new();
    for _ in 0..3 {
        let v = page(cur).await;
        names.extend(
            v["contents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string()),
        );
        more.push(v["hasMore"].as_bool().unwrap());
        cur = v["cursor"].as_str().unwrap().to_string();
    }
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4"]);
    assert_eq!(more, [true, true, false]);
    assert_eq!(cur, cursor(&s, &tok).await);
    // Bad limits are refused.
    for l in ["0", "1001", "x"] {
        let (st, v) = send(
            Method::GET,
            &feed(&s, &tok, "delta", &format!("&cursor={cur}&limit={l}")),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "limit {l}: {v}");
    }
}

#[tokio::test]
async fn expired_and_unknown_cursors_say_start_over() {
    let s = TestServer::start_with(&["--delta-history", "3"]);
    let tok = s.token().await;
    let old = cursor(&s, &tok).await;
    mkdir(&s, &tok, "x1").await;
    mkdir(&s, &tok, "x2").await;
    mkdir(&s, &tok, "x3").await;
    // Three entries kept: the cursor before them still works.
    let (entries, _) = changes(&s, &tok, &old).await;
    assert_eq!(entries.len(), 3);
    mkdir(&s, &tok, "x4").await;
    for bad in [old.as_str(), "garbage", "0-0", "ffff-1"] {
        let (st, v) = send(
            Method::GET,
            &feed(&s, &tok, "delta", &format!("&cursor={bad}")),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{bad}: {v}");
        assert_eq!(v["code"], smhfs::smh::codes::DELTA_CURSOR_LOST, "{bad}");
    }
    // The client reports it as a lost cursor, and a new one works.
    let client = common::client_for(&s);
    match client.delta(&old, 10).await.unwrap() {
        DeltaPoll::CursorLost(e) => assert_eq!(e.status(), Some(404)),
        DeltaPoll::Changes(p) => panic!("expired cursor answered {p:?}"),
    }
    let fresh = client.delta_cursor().await.unwrap().expect("a feed");
    mkdir(&s, &tok, "x5").await;
    match client.delta(&fresh, 10).await.unwrap() {
        DeltaPoll::Changes(p) => {
            assert_eq!(p.contents.len(), 1);
            assert_eq!(p.contents[0].name, "x5");
            assert_eq!(p.contents[0].action(), "CREATE");
            assert!(!p.has_more);
        }
        DeltaPoll::CursorLost(e) => panic!("fresh cursor lost: {e}"),
    }
}

#[tokio::test]
async fn a_server_without_the_feed_says_so_and_forgets_cursors() {
    let s = TestServer::start_with(&["--no-delta"]);
    let tok = s.token().await;
    let (st, v) = send(Method::GET, &feed(&s, &tok, "cursor", ""), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], "FunctionNotEnabled");
    let client = common::client_for(&s);
    assert_eq!(client.delta_cursor().await.unwrap(), None);
    // Everything else works as before.
    mkdir(&s, &tok, "still").await;
    info(&s, &tok, "still").await;
    drop(client);
    drop(s);

    // A restart keeps the log and its cursors.
    let mut s2 = TestServer::start();
    let tok = s2.token().await;
    let before = cursor(&s2, &tok).await;
    s2.restart();
    let tok = s2.token().await;
    mkdir(&s2, &tok, "after").await;
    let (entries, _) = changes(&s2, &tok, &before).await;
    assert_eq!(
        summary(&entries),
        [("DIR.CREATE".into(), "after".into(), 0)]
    );
}

#[tokio::test]
async fn listings_revalidate_with_if_none_match() {
    let s = TestServer::start();
    let tok = s.token().await;
    mkdir(&s, &tok, "dir").await;
    upload(&s, &tok, "dir/one", b"1", "").await;
    let url = api(&s, "directory", "dir", &tok, "");
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let header = r.headers()["etag"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["eTag"], header.as_str(), "the listing carries its eTag");
    s.reset_stats().await;
    let r = client()
        .get(&url)
        .header("if-none-match", &header)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert!(r.bytes().await.unwrap().is_empty());
    // The client's conditional listing: unchanged → None; changed → the
    // listing with inodes.
    let client = common::client_for(&s);
    let dir = smhfs::smh::SmhPath::parse("dir").unwrap();
    let same = client
        .list_page_if_changed(&dir, None, 100, Some(&header))
        .await
        .unwrap();
    assert!(same.is_none());
    upload(&s, &tok, "dir/two", b"2", "").await;
    let changed = client
        .list_page_if_changed(&dir, None, 100, Some(&header))
        .await
        .unwrap()
        .expect("a changed directory is listed");
    assert_ne!(changed.e_tag.as_deref(), Some(header.as_str()));
    assert_eq!(changed.contents.len(), 2);
    assert!(changed.contents.iter().all(|e| e.inode.is_some()));
}

/// The eTag a listing of `dir` carries.
async fn dir_etag(s: &TestServer, tok: &str, dir: &str) -> String {
    let (st, v) = send(Method::GET, &api(s, "directory", dir, tok, ""), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["eTag"].as_str().expect("eTag").to_string()
}

#[tokio::test]
async fn a_directory_etag_changes_with_everything_its_listing_shows() {
    let s = TestServer::start();
    let tok = s.token().await;
    mkdir(&s, &tok, "d").await;
    mkdir(&s, &tok, "d/sub").await;
    upload(&s, &tok, "d/a.txt", b"1", "").await;
    let ow = "conflict_resolution_strategy=overwrite";
    let mut seen = vec![dir_etag(&s, &tok, "d").await];
    let mut root = vec![dir_etag(&s, &tok, "").await];
    let mut step = |what: &str, d: String, r: String| {
        assert!(!seen.contains(&d), "{what}: d's eTag did not change");
        assert!(!root.contains(&r), "{what}: the root's eTag did not change");
        seen.push(d);
        root.push(r);
    };
    // A child's new content of the same size.
    upload(&s, &tok, "d/a.txt", b"2", ow).await;
    step(
        "overwrite",
        dir_etag(&s, &tok, "d").await,
        dir_etag(&s, &tok, "").await,
    );
    // A change below a child directory (its time and eTag are listed).
    upload(&s, &tok, "d/sub/x", b"x", "").await;
    step(
        "grandchild",
        dir_etag(&s, &tok, "d").await,
        dir_etag(&s, &tok, "").await,
    );
    put_from(&s, &tok, "file", "d/sub/y", json!({"from": "d/sub/x"}), "").await;
    step(
        "rename below",
        dir_etag(&s, &tok, "d").await,
        dir_etag(&s, &tok, "").await,
    );
    put_from(&s, &tok, "file", "d/b.txt", json!({"from": "d/a.txt"}), "").await;
    step(
        "rename",
        dir_etag(&s, &tok, "d").await,
        dir_etag(&s, &tok, "").await,
    );
    let (st, _) = send(Method::DELETE, &api(&s, "file", "d/b.txt", &tok, ""), None).await;
    assert!(st.is_success());
    step(
        "delete",
        dir_etag(&s, &tok, "d").await,
        dir_etag(&s, &tok, "").await,
    );
    // Nothing changed: the same eTag, and a 304 for it.
    let now = dir_etag(&s, &tok, "d").await;
    assert_eq!(&now, seen.last().unwrap());
    s.reset_stats().await;
    let r = client()
        .get(api(&s, "directory", "d", &tok, ""))
        .header("if-none-match", &now)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        common::mount::op_count(&s.stats().await, "dir_list_not_modified"),
        1
    );
}

/// A token minted for `user` (with admin rights).
async fn user_token(s: &TestServer, user: &str) -> String {
    s.token_with(&format!("&user_id={user}")).await
}

#[tokio::test]
async fn each_entry_names_the_user_who_made_the_change() {
    let s = TestServer::start();
    let admin = s.token().await;
    let alice = user_token(&s, "alice").await;
    let c0 = cursor(&s, &admin).await;

    // A token of alice's: her changes, a delete included, are hers.
    mkdir(&s, &alice, "a").await;
    let (st, _) = upload(&s, &alice, "a/one.txt", b"one", "").await;
    assert_eq!(st, StatusCode::OK);
    // An admin token without a user acts as the user the request names;
    // a user's own token cannot act as another.
    let (st, _) = upload(&s, &admin, "a/two.txt", b"two", "user_id=bob").await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = upload(&s, &alice, "a/three.txt", b"three", "user_id=bob").await;
    assert_eq!(st, StatusCode::OK);
    // Nobody named: no user.
    mkdir(&s, &admin, "b").await;
    let (st, v) = send(
        Method::DELETE,
        &api(&s, "file", "a/two.txt", &alice, "permanent=1"),
        None,
    )
    .await;
    assert!(st.is_success(), "{st} {v}");

    let (entries, _) = changes(&s, &admin, &c0).await;
    let users: Vec<(String, String, Option<&str>)> = entries
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
                e["userId"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            ("DIR.CREATE".into(), "a".into(), Some("alice")),
            ("FILE.CREATE".into(), "one.txt".into(), Some("alice")),
            ("FILE.CREATE".into(), "two.txt".into(), Some("bob")),
            ("FILE.CREATE".into(), "three.txt".into(), Some("alice")),
            ("DIR.CREATE".into(), "b".into(), None),
            ("FILE.DELETE".into(), "two.txt".into(), Some("alice")),
        ]
    );
}

/// A deleted space's entries go, but not the sequence they had reached:
/// a cursor of another space that saw past them must still see what
/// comes next (entries are numbered after the newest one kept).
#[tokio::test]
async fn deleting_the_space_of_the_newest_entries_keeps_other_cursors() {
    let s = TestServer::start_with(&["--multi-space"]);
    let tok = s.token().await;
    // `tail` with `{lib}` and `{space}` in it.
    let url = |space: &str, tail: &str| {
        let tail = tail.replace("{lib}", &s.library).replace("{space}", space);
        format!("{}/api/v1/{tail}?access_token={tok}", s.url)
    };
    let mut spaces = Vec::new();
    for _ in 0..2 {
        let (st, v) = send(Method::POST, &url("", "space/{lib}"), None).await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        spaces.push(v["spaceId"].as_str().unwrap().to_string());
    }
    let (a, b) = (&spaces[0], &spaces[1]);
    let mkdir_in =
        |space: &str, name: &str| url(space, &format!("directory/{{lib}}/{{space}}/{name}"));
    let feed_of =
        |space: &str, what: &str| url(space, &format!("fs-delta/{{lib}}/{{space}}/{what}"));

    let (_, v) = send(Method::GET, &feed_of(a, "cursor"), None).await;
    let c0 = v["cursor"].as_str().unwrap().to_string();
    assert_eq!(
        send(Method::PUT, &mkdir_in(a, "a1"), None).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(Method::PUT, &mkdir_in(b, "b1"), None).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        send(Method::PUT, &mkdir_in(b, "b2"), None).await.0,
        StatusCode::CREATED
    );
    // A's client reads its entry; its cursor is past B's two.
    let page = |cur: String| {
        let u = feed_of(a, "delta") + "&cursor=" + &cur;
        async move {
            let (st, v) = send(Method::GET, &u, None).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            v
        }
    };
    let v = page(c0).await;
    assert_eq!(summary(v["contents"].as_array().unwrap())[0].1, "a1");
    assert_eq!(v["contents"].as_array().unwrap().len(), 1);
    let c1 = v["cursor"].as_str().unwrap().to_string();

    let (st, v) = send(
        Method::DELETE,
        &(url(b, "space/{lib}/{space}") + "&force=1"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        send(Method::PUT, &mkdir_in(a, "a2"), None).await.0,
        StatusCode::CREATED
    );
    let v = page(c1).await;
    assert_eq!(
        summary(v["contents"].as_array().unwrap()),
        [("DIR.CREATE".into(), "a2".into(), 0)],
        "{v}"
    );
}
