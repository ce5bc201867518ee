//! Metrics: the process-wide Prometheus recorder behind the `metrics`
//! facade, its scrape endpoint (`-o metrics_addr=`, `serve --metrics-addr`)
//! and a JSON snapshot for `smhfs status --json`. Every layer records
//! through the `metrics` macros; until [`install`] runs they do nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets of every `*_seconds` metric: 100 µs (a cached FUSE
/// reply) to 60 s (a large part on a slow link).
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// How often histogram samples are folded into their buckets.
const UPKEEP: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Sets the gauges that are worked out on demand, before each reading.
type Collector = Box<dyn Fn() + Send + Sync>;
static COLLECTOR: OnceLock<Collector> = OnceLock::new();

/// Registers what runs before every scrape and snapshot (the mount's
/// gauges); the first registration wins.
pub fn on_collect(f: impl Fn() + Send + Sync + 'static) {
    let _ = COLLECTOR.set(Box::new(f));
}

/// The Prometheus text of every series now.
fn render(handle: &PrometheusHandle) -> String {
    if let Some(f) = COLLECTOR.get() {
        f();
    }
    handle.render()
}

/// Installs the global recorder (once per process; later calls return the
/// same handle) and folds samples in the background on `rt`.
pub fn install(rt: &tokio::runtime::Handle) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is set, which nothing does.
            let _ = metrics::set_global_recorder(recorder);
            let h = handle.clone();
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(UPKEEP).await;
                    h.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// Every series now, for `smhfs status --json`: `name{labels}` -> value,
/// histograms as their `_sum` and `_count` (buckets are for Prometheus).
/// `None` when no recorder is installed.
pub fn snapshot() -> Option<serde_json::Map<String, serde_json::Value>> {
    let text = render(HANDLE.get()?);
    Some(parse_exposition(&text))
}

fn parse_exposition(text: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut out = serde_json::Map::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if name.ends_with("_bucket") {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            let v = if v.fract() == 0.0 && v.abs() < 9e15 {
                serde_json::Value::from(v as i64)
            } else {
                serde_json::Value::from(v)
            };
            out.insert(series.to_string(), v);
        }
    }
    out
}

/// The scrape endpoint's address: `PORT` or `:PORT` (loopback),
/// `localhost:PORT`, or `IP:PORT` / `[IPv6]:PORT`. Only an address that
/// names a non-loopback IP (`0.0.0.0:9100`) is reachable from elsewhere.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let bad = || {
        format!(
            "invalid metrics address {s:?}: expected PORT, localhost:PORT or IP:PORT \
             (e.g. 127.0.0.1:9100)"
        )
    };
    let loopback = |port: &str| {
        port.parse::<u16>()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
            .map_err(|_| bad())
    };
    if let Some(port) = s.strip_prefix(':').or(s.strip_prefix("localhost:")) {
        return loopback(port);
    }
    if !s.contains(':') {
        return loopback(s);
    }
    s.parse::<SocketAddr>().map_err(|_| bad())
}

/// Binds `addr` and serves the Prometheus text on `/metrics` (and `/`) on
/// `rt`. Binding happens here, so a taken port is an error at startup.
pub fn serve(
    handle: PrometheusHandle,
    addr: SocketAddr,
    rt: &tokio::runtime::Handle,
) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%local, "metrics are served to the network (a non-loopback metrics address)");
    }
    let render = move || {
        let handle = handle.clone();
        async move {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                render(&handle),
            )
        }
    };
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(render.clone()))
        .route("/", axum::routing::get(render));
    rt.spawn(async move {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => {
                if let Err(e) = axum::serve(l, router).await {
                    tracing::warn!("metrics endpoint stopped: {e}");
                }
            }
            Err(e) => tracing::warn!("metrics endpoint unavailable: {e}"),
        }
    });
    tracing::info!(%local, "serving metrics on http://{local}/metrics");
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let lo = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p);
        assert_eq!(parse_addr("9100"), Ok(lo(9100)));
        assert_eq!(parse_addr(":9100"), Ok(lo(9100)));
        assert_eq!(parse_addr("localhost:9100"), Ok(lo(9100)));
        assert_eq!(parse_addr("127.0.0.1:0"), Ok(lo(0)));
        assert_eq!(
            parse_addr("0.0.0.0:9100").unwrap().ip(),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
        assert!(parse_addr("[::1]:9100").unwrap().ip().is_loopback());
        for bad in ["", "host:1", "1.2.3.4", "99999", ":x", "1.2.3.4:99999"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exposition_to_json() {
        let text = "# TYPE a counter\na{op=\"read\"} 3\nb_seconds_bucket{le=\"0.1\"} 1\n\
                    b_seconds_sum 0.25\nb_seconds_count 2\ng 1.5\n";
        let m = parse_exposition(text);
        assert_eq!(m["a{op=\"read\"}"], 3);
        assert_eq!(m["b_seconds_sum"], 0.25);
        assert_eq!(m["b_seconds_count"], 2);
        assert_eq!(m["g"], 1.5);
        assert!(!m.keys().any(|k| k.contains("_bucket")));
    }
}
