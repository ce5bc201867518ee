//! `smhfs status`: renders the typed [`StatusReport`] of a running mount
//! (asked over its control socket) or of a cache directory's journal.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::fs::progress::StatusReport;

/// `smhfs status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// A mounted smhfs directory (asks the running daemon).
    pub mountpoint: Option<std::path::PathBuf>,
    /// Read the journal of this cache directory instead (mount not running).
    #[arg(long)]
    pub cache_dir: Option<std::path::PathBuf>,
    /// Redraw progress bars until no upload is pending (with MOUNTPOINT).
    #[arg(long)]
    pub watch: bool,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
}

fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn report(args: &StatusArgs) -> Result<StatusReport, String> {
    match (&args.mountpoint, &args.cache_dir) {
        (Some(m), _) => {
            let v = crate::fs::control::query(m)?;
            serde_json::from_value(v).map_err(|e| format!("unexpected status reply: {e}"))
        }
        (None, Some(d)) => {
            crate::fs::cachedir::verify_if_present(d).map(|()| StatusReport::of_cache_dir(d))
        }
        (None, None) => Err("give a MOUNTPOINT or --cache-dir DIR".into()),
    }
}

/// Redraws one bar per upload until nothing is pending.
fn watch(args: &StatusArgs) -> Result<i32, String> {
    let multi = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .map_err(|e| e.to_string())?
    .progress_chars("=> ");
    let mut bars: HashMap<String, indicatif::ProgressBar> = HashMap::new();
    loop {
        let r = report(args)?;
        let seen: HashSet<String> = r.uploads.iter().map(|u| u.staged.clone()).collect();
        for u in &r.uploads {
            let bar = bars.entry(u.staged.clone()).or_insert_with(|| {
                let b = multi.add(indicatif::ProgressBar::new(u.size));
                b.set_style(style.clone());
                b
            });
            bar.set_length(u.size);
            bar.set_position(u.sent);
            bar.set_prefix(u.state.to_string());
            bar.set_message(match &u.error {
                Some(e) => format!("{}  ({e})", u.path),
                None => u.path.clone(),
            });
        }
        bars.retain(|k, b| {
            let keep = seen.contains(k);
            if !keep {
                b.finish_and_clear();
            }
            keep
        });
        let failed = r.failed();
        if r.uploads.len() == failed && r.pending == 0 {
            let _ = multi.clear();
            println!(
                "no pending uploads{}",
                if failed == 0 {
                    String::new()
                } else {
                    format!("; {failed} failed (see `smhfs status`)")
                }
            );
            return Ok(if failed == 0 { 0 } else { 1 });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs `smhfs status`; returns the process exit code (0: nothing failed).
pub fn run_status(args: StatusArgs) -> Result<i32, String> {
    // A journal read from disk does not move: --watch needs a live mount.
    if args.watch && args.mountpoint.is_some() {
        return watch(&args);
    }
    let r = report(&args)?;
    if args.json {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    } else {
        println!(
            "pending uploads: {}  cache: {} used{}",
            r.pending,
            human(r.cache_used),
            Some(r.cache_size)
                .filter(|s| *s != u64::MAX)
                .map(|s| format!(" of {}", human(s)))
                .unwrap_or_default()
        );
        for u in &r.uploads {
            println!(
                "{:>9}  {:>10} / {:<10}  {}{}",
                u.state.to_string(),
                human(u.sent),
                human(u.size),
                u.path,
                u.error
                    .as_deref()
                    .map(|e| format!("  ({e}; staged: {})", u.staged))
                    .unwrap_or_default()
            );
        }
        if !r.conflicts.is_empty() {
            println!(
                "conflict copies stored by this mount (the file kept the other client's version):"
            );
            for c in &r.conflicts {
                println!("  {}  <- ours of {}  ({})", c.copy, c.path, c.time);
            }
        }
    }
    Ok(if r.failed() > 0 { 1 } else { 0 })
}
