//! `smhfs serve` keeps its data private (issue 12): file modes, where the
//! secret comes from and where it never goes, test knobs only on request,
//! a read timeout on request bodies, usage for admins only, COS part ETags.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::http::{
    api, confirm, mint, multipart_begin, part_url, put_part, send, token_with,
};
use crate::common::TestServer;

const MIB: usize = 1024 * 1024;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A `smhfs serve` process started by a test, with everything it printed.
struct Serve {
    url: String,
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// Runs `smhfs serve` with `args` (and `env`, request log on) until it
/// prints its URL.
fn spawn_serve(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_smhfs"));
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("SMHFS_SECRET")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn smhfs serve");
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
    let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
    for stream in [out, err] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => {
                let url = l
                    .strip_prefix("listening on ")
                    .map(|u| u.trim().to_string());
                seen.push(l);
                if let Some(url) = url {
                    return Serve {
                        url,
                        child,
                        lines,
                        seen,
                    };
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("smhfs serve did not start: {seen:?}");
            }
        }
    }
}

impl Serve {
    /// Stops the server; returns everything it printed (stdout + stderr).
    fn stop(mut self) -> String {
        // SAFETY: signalling our own child process by its pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.seen.extend(self.lines.try_iter());
        self.seen.join("\n")
    }
}

#[tokio::test]
async fn data_dir_database_and_blobs_are_private() {
    let s = TestServer::start();
    let tok = token_with(&s, "admin").await;
    // A multipart file (a blob file, not a database row) and a token row.
    let t = multipart_begin(&s, &tok, "big.bin").await;
    let r = put_part(&t, 1, vec![7u8; MIB]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let key = t["confirmKey"].as_str().unwrap();
    let (st, v) = confirm(&s, &tok, key, serde_json::json!({}), "").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(mode(&s.data), 0o700, "data dir");
    for f in ["smh.db", "smh.db-wal"] {
        assert_eq!(mode(&s.data.join(f)), 0o600, "{f}");
    }
    let mut blobs = 0;
    for e in walkdir(&s.data.join("blobs")) {
        let m = mode(&e);
        if e.is_dir() {
            assert_eq!(m & 0o077, 0, "{} is {m:o}", e.display());
        } else {
            assert_eq!(m, 0o600, "{}", e.display());
            blobs += 1;
        }
    }
    assert!(blobs >= 1, "no blob file written");
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn existing_data_dir_made_private_shared_dir_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    spawn_serve(&data, &[], &[("SMHFS_SECRET", "s3")]).stop();
    assert_eq!(mode(&data), 0o700);
    // A directory others may write to (like /tmp) is refused, untouched.
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&shared)
        .env("SMHFS_SECRET", "s3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("writable by others"), "{err}");
    assert_eq!(mode(&shared), 0o1777);
}

#[tokio::test]
async fn secret_from_file_or_env_never_printed_or_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let secret = "file-secret-8f2e61c0";
    let file = tmp.path().join("secret");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let data = tmp.path().join("data");
    let srv = spawn_serve(&data, &["--secret-file", file.to_str().unwrap()], &[]);
    let r = mint(&srv.url, secret, "admin").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = mint(&srv.url, "smhlocal-secret", "admin").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "the old default works");
    let printed = srv.stop();
    assert!(printed.contains("listening on"), "{printed}");
    assert!(!printed.contains(secret), "secret printed: {printed}");

    let env_secret = "env-secret-19ab77de";
    let srv = spawn_serve(&data, &[], &[("SMHFS_SECRET", env_secret)]);
    assert_eq!(
        mint(&srv.url, env_secret, "").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        mint(&srv.url, secret, "").await.status(),
        StatusCode::NOT_FOUND
    );
    let printed = srv.stop();
    assert!(!printed.contains(env_secret), "secret printed: {printed}");
}

#[tokio::test]
async fn generated_secret_kept_private_and_not_logged() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let srv = spawn_serve(&data, &[], &[]);
    let stored = data.join("secret");
    assert_eq!(mode(&stored), 0o600);
    let secret = std::fs::read_to_string(&stored).unwrap().trim().to_string();
    assert!(secret.len() >= 32, "{secret:?}");
    assert_eq!(mint(&srv.url, &secret, "").await.status(), StatusCode::OK);
    let printed = srv.stop();
    // Stdout is a pipe here (a log), not a terminal.
    assert!(!printed.contains(&secret), "secret printed: {printed}");
    assert!(printed.contains("secret: generated"), "{printed}");
    // The next start reuses it.
    let srv = spawn_serve(&data, &[], &[]);
    assert_eq!(mint(&srv.url, &secret, "").await.status(), StatusCode::OK);
    let printed = srv.stop();
    assert!(!printed.contains(&secret), "secret printed: {printed}");
}

#[tokio::test]
async fn test_endpoints_only_with_the_flag() {
    let knobs = [
        ("GET", "/__stats"),
        ("POST", "/__stats/reset"),
        ("POST", "/__fault"),
        ("POST", "/__latency"),
        ("POST", "/__faults/clear"),
        ("POST", "/__revoke-tokens"),
    ];
    let c = reqwest::Client::new();
    let plain = TestServer::start_opts(&[], false);
    let tok = token_with(&plain, "admin").await;
    for (m, p) in knobs {
        let body = match p {
            "/__fault" => "api:500:5",
            "/__latency" => "api:1000",
            _ => "",
        };
        let r = c
            .request(m.parse().unwrap(), format!("{}{p}", plain.url))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{m} {p}");
    }
    // Neither the fault nor the revocation took effect.
    let r = c
        .get(format!(
            "{}/api/v1/directory/smhlocal/-/?access_token={tok}",
            plain.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let knobbed = TestServer::start();
    let r = c
        .get(format!("{}/__stats", knobbed.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .post(format!("{}/__faults/clear", knobbed.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

/// Sends `head` and `partial` of a longer body, then waits: the server must
/// answer or close within `within`.
fn held_body_is_cut(addr: &str, head: &str, partial: &[u8], within: Duration) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(partial).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "no reply and no close after {:?} ({e}); got {:?}",
                started.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    assert!(started.elapsed() < within);
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn held_request_bodies_time_out() {
    let s = TestServer::start_with(&["--body-timeout", "2"]);
    let tok = token_with(&s, "admin").await;
    let addr = s.url.trim_start_matches("http://").to_string();
    // An API body (JSON) that stops after 10 of 100 bytes.
    let head = format!(
        "PUT /api/v1/file/smhlocal/-/x.bin?access_token={tok} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    let a = addr.clone();
    let reply = tokio::task::spawn_blocking(move || {
        held_body_is_cut(&a, &head, b"{\"size\":  ", Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("ReadRequestTimeout"), "{reply}");

    // A part body that stops after 1000 of 1 MiB bytes.
    let t = multipart_begin(&s, &tok, "held.bin").await;
    let url = part_url(&t, 1);
    let path = url.split_once(&addr).unwrap().1.to_string();
    let mut head = format!("PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {MIB}\r\n");
    for (k, v) in t["headers"].as_object().unwrap() {
        head.push_str(&format!("{k}: {}\r\n", v.as_str().unwrap()));
    }
    head.push_str("\r\n");
    let a = addr.clone();
    let reply = tokio::task::spawn_blocking(move || {
        held_body_is_cut(&a, &head, &[1u8; 1000], Duration::from_secs(10))
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    // Nothing was recorded for the part.
    let key = t["confirmKey"].as_str().unwrap();
    let (_, st) = send(Method::GET, &api(&s, "file", key, &tok, "upload"), None).await;
    assert_eq!(st["parts"], serde_json::json!([]), "{st}");
}

#[tokio::test]
async fn usage_needs_admin_or_space_admin() {
    let s = TestServer::start_with(&["--capacity", "3000000"]);
    let c = reqwest::Client::new();
    let usage = |tok: String| {
        c.get(format!(
            "{}/api/v1/usage/smhlocal/-?access_token={tok}",
            s.url
        ))
        .send()
    };
    let plain = token_with(&s, "").await;
    let r = usage(plain.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "NoPermission");
    let reader = token_with(&s, "upload_file,delete_file").await;
    assert_eq!(usage(reader).await.unwrap().status(), StatusCode::FORBIDDEN);
    for grant in ["admin", "space_admin"] {
        let r = usage(token_with(&s, grant).await).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{grant}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v[0]["capacity"], "3000000", "{grant}: {v}");
    }
    // The space size stays open to any token (statfs falls back to it).
    let r = c
        .get(format!(
            "{}/api/v1/space/smhlocal/-/size?access_token={plain}",
            s.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn part_put_etag_is_the_md5_of_the_part() {
    let s = TestServer::start();
    let tok = token_with(&s, "admin").await;
    let t = multipart_begin(&s, &tok, "md5.bin").await;
    let part: Vec<u8> = (0..MIB + 5).map(|i| (i * 31 % 251) as u8).collect();
    for (n, body) in [(1, part.clone()), (2, b"tail".to_vec())] {
        let want = format!("\"{}\"", hex::encode(Md5::digest(&body)));
        let r = put_part(&t, n, body).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["etag"].to_str().unwrap(), want, "part {n}");
    }
    // Upload status lists the same ETags.
    let key = t["confirmKey"].as_str().unwrap();
    let (_, st) = send(Method::GET, &api(&s, "file", key, &tok, "upload"), None).await;
    assert_eq!(
        st["parts"][1]["ETag"],
        format!("\"{}\"", hex::encode(Md5::digest(b"tail")))
    );
}

/// `--part-etag crc` (benchmarks) answers `"<crc64>-<size>"` and skips the MD5.
#[tokio::test]
async fn part_etag_crc_for_benchmarks() {
    let s = TestServer::start_with(&["--part-etag", "crc"]);
    let tok = token_with(&s, "admin").await;
    let t = multipart_begin(&s, &tok, "crc.bin").await;
    let part: Vec<u8> = (0..MIB + 5).map(|i| (i * 7 % 253) as u8).collect();
    let r = put_part(&t, 1, part.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let crc = smhfs::smh::hash::crc64(&part);
    let want = format!("\"{crc:016x}-{}\"", part.len());
    assert_eq!(r.headers()["etag"].to_str().unwrap(), want);
    assert_ne!(want, format!("\"{}\"", hex::encode(Md5::digest(&part))));
}
