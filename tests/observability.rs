//! Observability (issue 16): the mount's Prometheus endpoint counts what a
//! workload did, `smhfs status --json` shows the same numbers, JSON logs
//! parse line by line and hold no secret, `smhfs serve` has its own
//! endpoint, and an unmount during a write-back upload that then completes
//! does not cry "unconfirmed upload".

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::http::download;
use crate::common::mount::{random_bytes, sh, MountGuard};
use crate::common::TestServer;

/// One scrape: `(name, labels) -> value`.
struct Scrape(BTreeMap<(String, BTreeMap<String, String>), f64>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("series and value");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').expect("label");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            let v: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("value in {line:?}"));
            out.insert((name.to_string(), labels), v);
        }
        Scrape(out)
    }

    /// The value of the series with exactly these labels (0 if absent).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .get(&(name.to_string(), want))
            .copied()
            .unwrap_or(0.0)
    }

    /// The sum over every series of `name` whose labels include these.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| *v)
            .sum()
    }
}

async fn scrape(url: &str) -> Scrape {
    let resp = reqwest::get(url).await.expect("GET metrics");
    assert!(resp.status().is_success(), "{}", resp.status());
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    Scrape::parse(&resp.text().await.expect("metrics text"))
}

/// The scrape URL the daemon logged (it was given port 0).
fn metrics_url(log: &str) -> Option<String> {
    let at = log.find("serving metrics on http://")? + "serving metrics on ".len();
    let url: String = log[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"')
        .collect();
    Some(url)
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_a_workload() {
    let server = TestServer::start();
    let m = MountGuard::new(&server, "metrics_addr=127.0.0.1:0");
    let url = wait_for("the metrics address in the log", || metrics_url(&m.log()));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    std::fs::create_dir(m.path("obs")).unwrap();
    let before = scrape(&url).await;

    // The workload: N files copied in (one object PUT refused with 503 and
    // retried), a listing, one file read back, one missing name.
    server.admin("/__fault", "part:503:1").await;
    const N: usize = 3;
    const SIZE: usize = 300_000;
    let files: Vec<Vec<u8>> = (0..N).map(|_| random_bytes(SIZE)).collect();
    for (i, data) in files.iter().enumerate() {
        std::fs::write(m.path(&format!("obs/f{i}")), data).unwrap();
    }
    let names = std::fs::read_dir(m.path("obs")).unwrap().count();
    assert_eq!(names, N);
    assert_eq!(std::fs::read(m.path("obs/f1")).unwrap(), files[1]);
    assert!(std::fs::metadata(m.path("obs/missing")).is_err());
    let mid = scrape(&url).await;
    // The same 2 MB twice: the second copy is stored by hash alone.
    let big = random_bytes(2_000_000);
    std::fs::write(m.path("obs/big1"), &big).unwrap();
    std::fs::write(m.path("obs/big2"), &big).unwrap();
    let after = scrape(&url).await;
    assert_eq!(
        after.sum("smhfs_smh_instant_uploads_total", &[])
            - mid.sum("smhfs_smh_instant_uploads_total", &[]),
        1.0
    );
    assert_eq!(
        after.sum("smhfs_smh_instant_upload_bytes_saved_total", &[])
            - mid.sum("smhfs_smh_instant_upload_bytes_saved_total", &[]),
        big.len() as f64
    );
    assert_eq!(
        after.sum("smhfs_smh_upload_bytes_total", &[])
            - mid.sum("smhfs_smh_upload_bytes_total", &[]),
        big.len() as f64,
        "the big file's bytes were sent once"
    );
    // Checked below: the first part of the workload; `last` for status.
    let last = after;
    let after = mid;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);

    // SMH requests, by kind and status.
    let n = N as f64;
    let reqs = "smhfs_smh_requests_total";
    assert_eq!(delta(reqs, &[("kind", "begin"), ("status", "201")]), n);
    assert_eq!(delta(reqs, &[("kind", "confirm"), ("status", "200")]), n);
    assert_eq!(delta(reqs, &[("kind", "object"), ("status", "200")]), n);
    assert_eq!(delta(reqs, &[("kind", "object"), ("status", "503")]), 1.0);
    assert_eq!(delta("smhfs_smh_retries_total", &[("kind", "object")]), 1.0);
    assert_eq!(delta("smhfs_smh_retries_total", &[]), 1.0);
    assert_eq!(
        delta("smhfs_smh_backoff_seconds_count", &[("kind", "object")]),
        1.0
    );
    assert!(delta("smhfs_smh_backoff_seconds_sum", &[("kind", "object")]) > 0.0);
    assert_eq!(
        delta("smhfs_smh_upload_bytes_total", &[]),
        (N * SIZE) as f64,
        "part bytes = bytes written"
    );
    assert_eq!(
        delta("smhfs_smh_download_bytes_total", &[]),
        SIZE as f64,
        "one file read back"
    );
    assert!(delta(reqs, &[("kind", "read"), ("status", "206")]) >= 1.0);
    assert_eq!(delta("smhfs_smh_instant_uploads_total", &[]), 0.0);
    // Every request was timed.
    assert_eq!(
        delta(
            "smhfs_smh_request_duration_seconds_count",
            &[("kind", "confirm")]
        ),
        n
    );

    // FUSE requests by operation, errors by errno, latency.
    let fuse = "smhfs_fuse_requests_total";
    assert!(delta(fuse, &[("op", "create")]) >= n);
    assert!(delta(fuse, &[("op", "write")]) >= n);
    assert!(delta(fuse, &[("op", "flush")]) >= n);
    assert!(delta(fuse, &[("op", "read")]) >= 1.0);
    assert!(delta(fuse, &[("op", "readdirplus")]) + delta(fuse, &[("op", "readdir")]) >= 1.0);
    assert!(
        delta(
            "smhfs_fuse_errors_total",
            &[("op", "lookup"), ("errno", "ENOENT")]
        ) >= 1.0,
        "the missing name"
    );
    assert_eq!(
        after.get(
            "smhfs_fuse_request_duration_seconds_count",
            &[("op", "create")]
        ),
        after.get(fuse, &[("op", "create")]),
        "every create timed"
    );
    assert!(
        delta("smhfs_readahead_misses_total", &[]) + delta("smhfs_readahead_hits_total", &[])
            >= 1.0
    );

    // Gauges, worked out at the scrape.
    assert_eq!(after.get("smhfs_upload_queue_depth", &[]), 0.0);
    assert_eq!(after.get("smhfs_journal_entries", &[]), 0.0);
    assert!(after.get("smhfs_known_inodes", &[]) >= 1.0 + n);
    assert!(after.get("smhfs_cache_bound_bytes", &[]) > 0.0);

    // `smhfs status --json` carries the same numbers (nothing ran since).
    let status = sh(&format!(
        "{} status --json {}",
        env!("CARGO_BIN_EXE_smhfs"),
        m.mnt.display()
    ));
    let v: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    let confirms = &v["metrics"]["smhfs_smh_requests_total{kind=\"confirm\",status=\"200\"}"];
    assert_eq!(
        confirms.as_f64(),
        Some(last.get(reqs, &[("kind", "confirm"), ("status", "200")])),
        "{status}"
    );
    assert!(v["metrics"]["smhfs_known_inodes"].as_f64().unwrap_or(0.0) >= 1.0 + n);
}

#[test]
fn metrics_addr_refuses_a_bad_address() {
    let server = TestServer::start();
    let e = MountGuard::try_new(&server, "", "metrics_addr=example.com:9100")
        .err()
        .expect("refused");
    assert!(e.contains("invalid metrics address"), "{e}");
    // A taken port fails the mount with one line, before anything is mounted.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = MountGuard::try_new(&server, "", &format!("metrics_addr={port}"))
        .err()
        .expect("refused");
    assert!(e.contains("cannot serve metrics on 127.0.0.1:"), "{e}");
}

/// Every line of `log` is one JSON object; returns them.
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
        })
        .inspect(|v| assert!(v.is_object(), "{v}"))
        .collect()
}

/// No secret in `log`: not the library secret, and every token or secret
/// query value redacted.
fn assert_no_secret(log: &str, secret: &str) {
    assert!(!log.contains(secret), "the library secret is in the log");
    for key in ["access_token=", "library_secret="] {
        for (at, _) in log.match_indices(key) {
            let rest = &log[at + key.len()..];
            assert!(
                rest.starts_with("REDACTED"),
                "{key} not redacted: {}",
                &rest[..rest.len().min(40)]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_parse_and_hold_no_secret() {
    let server = TestServer::start();
    let mut m = MountGuard::new(&server, "log_format=json");
    let data = random_bytes(100_000);
    std::fs::write(m.path("j.bin"), &data).unwrap();
    assert_eq!(std::fs::read(m.path("j.bin")).unwrap(), data);
    assert!(std::fs::metadata(m.path("nothing-here")).is_err());
    let st = m.unmount_and_wait(Duration::from_secs(30)).expect("exited");
    assert!(st.success());
    let log = m.log();
    let lines = json_lines(&log);
    assert_no_secret(&log, &server.secret);
    // Every SMH request at debug: kind, status, duration, request id.
    let smh: Vec<_> = lines
        .iter()
        .filter(|v| v["message"] == "smh request")
        .collect();
    let kinds: Vec<&str> = smh.iter().filter_map(|v| v["kind"].as_str()).collect();
    for k in ["token", "begin", "object", "confirm", "read"] {
        assert!(kinds.contains(&k), "no {k} request logged: {kinds:?}");
    }
    for v in &smh {
        assert!(v["status"].is_string() && v["ms"].is_u64(), "{v}");
        let id = v["request_id"].as_str().unwrap_or("-");
        assert!(id != "-" && !id.is_empty(), "no request id: {v}");
    }
    let token = smh.iter().find(|v| v["kind"] == "token").unwrap();
    assert!(
        token["url"]
            .as_str()
            .unwrap_or("")
            .contains("library_secret=REDACTED"),
        "{token}"
    );
    // Work done for a FUSE request runs in its span.
    let confirm = smh.iter().find(|v| v["kind"] == "confirm").unwrap();
    let span = &confirm["span"];
    assert_eq!(span["name"], "fuse", "{confirm}");
    assert_eq!(span["op"], "flush", "{confirm}");
    assert!(
        span["req"].is_u64() && span["ino"].is_u64() && span["pid"].is_u64(),
        "{span}"
    );
    // The startup line, for instance, is there too.
    assert!(lines.iter().any(|v| v["message"] == "mounted"), "{log}");
}

/// `smhfs serve` with `--metrics-addr` and `--log-format json`, killed on drop.
struct Serve {
    child: Child,
    dir: tempfile::TempDir,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let out = std::fs::File::create(dir.path().join("out")).unwrap();
        let err = std::fs::File::create(dir.path().join("err")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_smhfs"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .args(extra)
            .env("SMHFS_SECRET", "serve-obs-secret")
            .env("RUST_LOG", "smhfs=debug")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Serve { child, dir }
    }

    fn file(&self, name: &str) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join(name)) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The `PREFIX URL` line of stdout.
    fn url(&self, prefix: &str) -> String {
        wait_for(prefix, || {
            self.file("out")
                .lines()
                .find_map(|l| l.strip_prefix(prefix).map(|u| u.trim().to_string()))
        })
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_metrics_and_json_logs() {
    let s = Serve::start(&["--metrics-addr", "127.0.0.1:0", "--log-format", "json"]);
    let api = s.url("listening on ");
    let metrics = s.url("metrics: ");
    assert!(metrics.starts_with("http://127.0.0.1:"), "{metrics}");
    let tok = format!(
        "{api}/api/v1/token?library_id=smhlocal&library_secret=serve-obs-secret&grant=admin"
    );
    for _ in 0..3 {
        assert!(reqwest::get(&tok).await.unwrap().status().is_success());
    }
    let refused = reqwest::get(format!(
        "{api}/api/v1/directory/smhlocal/-/?access_token=bad"
    ))
    .await
    .unwrap();
    let code = refused.status().as_u16().to_string();
    assert!(code == "401" || code == "403", "{code}");
    let m = scrape(&metrics).await;
    assert_eq!(
        m.get(
            "smhfs_serve_requests_total",
            &[("op", "token_create"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        m.get(
            "smhfs_serve_request_duration_seconds_count",
            &[("op", "token_create")]
        ),
        3.0
    );
    assert_eq!(
        m.sum("smhfs_serve_requests_total", &[("status", &code)]),
        1.0
    );
    // The request log: JSON lines with the request id, no secret.
    let err = wait_for("the request log", || {
        let e = s.file("err");
        (e.matches("\"request\"").count() >= 4).then_some(e)
    });
    let lines = json_lines(&err);
    assert_no_secret(&err, "serve-obs-secret");
    let logged: Vec<_> = lines.iter().filter(|v| v["message"] == "request").collect();
    assert!(logged
        .iter()
        .all(|v| v["request_id"].as_str().is_some_and(|i| i != "-")));
    assert!(logged
        .iter()
        .any(|v| v["op"] == "token_create" && v["status"] == "200"));
}

#[tokio::test(flavor = "multi_thread")]
async fn unmount_during_write_back_upload_does_not_cry_wolf() {
    let server = TestServer::start();
    // The upload waits out its write-back delay, so it is still to go
    // (queued, then running during the drain) when umount comes.
    let mut m = MountGuard::new(&server, "write_back=60");
    let tok = server.token().await;
    server.admin("/__latency", "part:300").await;
    let data = random_bytes(2_000_000);
    std::fs::write(m.path("wb.bin"), &data).unwrap();
    assert!(
        crate::common::http::try_download(&server, &tok, "wb.bin")
            .await
            .is_none(),
        "the upload finished before the unmount; the test proves nothing"
    );
    let st = m
        .unmount_and_wait(Duration::from_secs(60))
        .expect("the daemon exited");
    let log = m.log();
    assert!(st.success(), "{log}");
    assert_eq!(download(&server, &tok, "wb.bin").await, data);
    assert!(
        !log.contains("unconfirmed upload"),
        "warned about an upload that was confirmed:\n{log}"
    );
    assert!(!log.contains("left unfinished"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_the_drain_leaves_is_named() {
    let server = TestServer::start();
    let mut m = MountGuard::new(&server, "write_back,unmount_timeout=1");
    server.admin("/__latency", "part:8000").await;
    std::fs::write(m.path("slow.bin"), random_bytes(50_000)).unwrap();
    m.unmount_and_wait(Duration::from_secs(30))
        .expect("the daemon exited");
    let log = m.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("unmounted with an unconfirmed upload"))
        .collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("path=slow.bin"), "{}", warned[0]);
    assert!(warned[0].contains("staged="), "{}", warned[0]);
}
