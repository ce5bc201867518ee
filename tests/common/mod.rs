//! Shared test harness: spawns `smhfs serve` on a free port with a fresh
//! temporary data directory.
#![allow(dead_code)]

pub mod content;
pub mod http;
pub mod mount;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub library: String,
    pub secret: String,
    pub data: PathBuf,
    child: Option<Child>,
    _tempdir: Option<tempfile::TempDir>,
    extra: Vec<String>,
    port: u16,
    test_endpoints: bool,
}

impl TestServer {
    /// Defaults, fresh temporary data directory.
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Extra `serve` arguments, e.g. `["--fault", "part:503:3"]`.
    pub fn start_with(args: &[&str]) -> TestServer {
        Self::start_opts(args, true)
    }

    /// Like [`TestServer::start_with`]; `test_endpoints` says whether the
    /// server gets `--test-endpoints` (the `/__...` knobs).
    pub fn start_opts(args: &[&str], test_endpoints: bool) -> TestServer {
        let tempdir = tempfile::tempdir().expect("tempdir");
        let data = tempdir.path().join("smh-data");
        let extra: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, url, port) = spawn(&data, 0, &extra, test_endpoints);
        TestServer {
            url,
            library: "smhlocal".into(),
            secret: "smhlocal-secret".into(),
            data,
            child: Some(child),
            _tempdir: Some(tempdir),
            extra,
            port,
            test_endpoints,
        }
    }

    /// Stops the server and starts it again on the same data dir and port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match try_spawn(&self.data, self.port, &self.extra, self.test_endpoints) {
                Ok((child, url, _)) => {
                    self.child = Some(child);
                    self.url = url;
                    return;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("restarting smhfs serve failed: {e}"),
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM first (graceful shutdown), then SIGKILL; bounded.
            // SAFETY: kill(2) takes no pointers; the pid is our own
            // unreaped child, so it names no other process.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("{}/__stats", self.url))
            .await
            .expect("GET /__stats")
            .json()
            .await
            .expect("stats JSON")
    }

    pub async fn reset_stats(&self) {
        self.admin("/__stats/reset", "").await;
    }

    /// POST to an admin endpoint (`/__fault`, `/__revoke-tokens`, ...).
    pub async fn admin(&self, path: &str, body: &str) {
        let path = if path.starts_with("/__") {
            path.to_string()
        } else {
            format!("/__{}", path.trim_start_matches('/'))
        };
        let r = reqwest::Client::new()
            .post(format!("{}{}", self.url, path))
            .body(body.to_string())
            .send()
            .await
            .expect("admin request");
        assert!(
            r.status().is_success(),
            "admin {path} failed: {}",
            r.status()
        );
    }

    /// Mints an admin token through the API.
    pub async fn token(&self) -> String {
        self.token_with("").await
    }

    /// Mints an admin token with more query parameters (`&user_id=...`).
    pub async fn token_with(&self, query: &str) -> String {
        let v: serde_json::Value = reqwest::get(format!(
            "{}/api/v1/token?library_id={}&library_secret={}&grant=admin{query}",
            self.url, self.library, self.secret
        ))
        .await
        .expect("token request")
        .json()
        .await
        .expect("token JSON");
        v["accessToken"].as_str().expect("accessToken").to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(
    data: &std::path::Path,
    port: u16,
    extra: &[String],
    test_endpoints: bool,
) -> (Child, String, u16) {
    try_spawn(data, port, extra, test_endpoints).unwrap_or_else(|e| panic!("{e}"))
}

fn try_spawn(
    data: &std::path::Path,
    port: u16,
    extra: &[String],
    test_endpoints: bool,
) -> Result<(Child, String, u16), String> {
    let knobs: &[&str] = if test_endpoints {
        &["--test-endpoints"]
    } else {
        &[]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_smhfs"))
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(data)
        .args(knobs)
        .env("SMHFS_SECRET", "smhlocal-secret")
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning smhfs serve: {e}"))?;
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(u) = line.strip_prefix("listening on ") {
                let _ = tx.send(u.trim().to_string());
                break;
            }
        }
        for _ in lines {}
    });
    let (etx, erx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        // Drain stderr forever; keep the first 64 KiB for diagnostics.
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if kept.len() < 65536 {
                        kept.extend_from_slice(&buf[..n]);
                        let _ = etx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(url) => {
            let port = url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(port);
            Ok((child, url, port))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            let err: String = erx.try_iter().collect();
            Err(format!("smhfs serve did not start; stderr:\n{err}"))
        }
    }
}

/// A client on the server's library (space `-`), retrying quickly so tests
/// that inject 429/503 bursts stay fast.
pub fn client_for(server: &TestServer) -> smhfs::smh::SmhClient {
    client_at(
        &server.url,
        &server.library,
        &server.secret,
        smhfs::smh::RetryPolicy {
            max_retries: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(200),
        },
    )
}

/// A client on a library (space `-`) of the server at `url`, with its own
/// retry policy.
pub fn client_at(
    url: &str,
    library: &str,
    secret: &str,
    retry: smhfs::smh::RetryPolicy,
) -> smhfs::smh::SmhClient {
    let mut cfg = smhfs::smh::ClientConfig::new(
        url.parse().unwrap(),
        library,
        "-",
        smhfs::smh::Credentials::LibrarySecret(secret.to_string()),
    );
    cfg.retry = retry;
    smhfs::smh::SmhClient::new(cfg).unwrap()
}

/// The core's configuration the core tests use: `root` mounted, 1 MiB
/// parts, two in flight.
pub fn core_config(
    root: smhfs::smh::SmhPath,
    conflict: smhfs::smh::ConflictStrategy,
    cache_dir: &std::path::Path,
) -> smhfs::fs::FsConfig {
    smhfs::fs::FsConfig {
        root,
        conflict,
        cache_dir: cache_dir.to_path_buf(),
        read_only: false,
        attr_timeout: Duration::from_secs(1),
        dir_timeout: Duration::from_secs(5),
        dir_cache_entries: 100_000,
        poll_interval: Duration::ZERO,
        part_size: 1 << 20,
        upload_concurrency: 2,
        permanent_delete: false,
        update_conflict: Default::default(),
        look: Default::default(),
    }
}

/// Polls `f` every 50 ms until it holds; fails the test after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
