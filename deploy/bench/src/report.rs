//! The table `deploy/bench.sh` prints: each figure beside its target.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The JSON-lines file of results (`{"name", "result"}` per line).
    #[arg(long)]
    results: PathBuf,
}

/// Renders the table.
pub fn report(args: ReportArgs) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&args.results).context("reading the results")?;
    let mut r: HashMap<String, Value> = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("bad line: {line}"))?;
        r.insert(
            v["name"].as_str().unwrap_or_default().to_owned(),
            v["result"].clone(),
        );
    }
    let f = |name: &str, key: &str| {
        r.get(name)
            .and_then(|v| v[key].as_f64())
            .unwrap_or(f64::NAN)
    };
    let mut rows: Vec<(String, String, String, Option<bool>)> = Vec::new();
    let mut row = |what: &str, value: String, target: &str, met: Option<bool>| {
        rows.push((what.to_owned(), value, target.to_owned(), met));
    };
    let rps = f("bookings", "rps");
    let pg = f("pgbench", "tps");
    row(
        "POST /bookings, 64 connections",
        format!("{rps:.0} req/s"),
        "",
        None,
    );
    row(
        "pgbench, same SQL transaction",
        format!(
            "{pg:.0} tps (p50 {:.1} / p99 {:.1} ms)",
            f("pgbench", "p50_ms"),
            f("pgbench", "p99_ms")
        ),
        "",
        None,
    );
    row(
        "bookings / pgbench",
        format!("{:.0} %", 100.0 * rps / pg),
        ">= 80 %",
        Some(rps >= 0.8 * pg),
    );
    let p50 = f("bookings", "p50_ms");
    let p99 = f("bookings", "p99_ms");
    row(
        "POST /bookings p50 / p99",
        format!("{p50:.1} / {p99:.1} ms"),
        "p99 < 50 ms",
        Some(p99 < 50.0),
    );
    let errors = f("bookings", "errors")
        + f("bookings_full", "errors")
        + f("bookings_with_worker", "errors")
        + f("get_booking", "errors");
    row(
        "errors (every response checked)",
        format!("{errors:.0}"),
        "0",
        Some(errors == 0.0),
    );
    let get = f("get_booking", "rps");
    row(
        "GET /bookings/{id}",
        format!("{get:.0} req/s (p99 {:.1} ms)", f("get_booking", "p99_ms")),
        ">= 15000 req/s",
        Some(get >= 15000.0),
    );
    let full = f("bookings_full", "rps");
    row(
        "POST /bookings, instant authorisation",
        format!(
            "{full:.0} req/s (p99 {:.1} ms)",
            f("bookings_full", "p99_ms")
        ),
        "",
        None,
    );
    let with = f("bookings_with_worker", "rps");
    let drop = 100.0 * (1.0 - with / full);
    row(
        "  ... while a worker drains",
        format!("{with:.0} req/s ({drop:.0} % drop)"),
        "drop < 20 %",
        Some(drop < 20.0),
    );
    let left = f("backlog_after_load", "jobs");
    let drained = f("backlog_drained_after", "jobs");
    row(
        "queue backlog at end of load / after",
        format!("{left:.0} / {drained:.0} jobs"),
        "bounded, drains",
        Some(drained == 0.0),
    );
    let noop = f("drain_noop", "jobs_per_s");
    row(
        "one worker drains noop jobs",
        format!("{noop:.0} jobs/s"),
        ">= 10000",
        Some(noop >= 10000.0),
    );
    let email = f("drain_send_email", "jobs_per_s");
    row(
        "one worker drains send_email (files)",
        format!("{email:.0} jobs/s"),
        ">= 6000",
        Some(email >= 6000.0),
    );
    let enq = f("enqueue", "jobs_per_s");
    row(
        "enqueue from one process (1 job per call, grouped commits)",
        format!("{enq:.0} jobs/s"),
        ">= 20000",
        Some(enq >= 20000.0),
    );
    row(
        "  ... each job in a transaction of its own",
        format!("{:.0} jobs/s", f("enqueue_transaction", "jobs_per_s")),
        "",
        None,
    );
    row(
        "  ... enqueue_many, 500 jobs per transaction",
        format!("{:.0} jobs/s", f("enqueue_bulk", "jobs_per_s")),
        "",
        None,
    );
    let (l50, l99) = (f("latency", "p50_ms"), f("latency", "p99_ms"));
    row(
        "enqueue-to-done (noop) p50 / p99",
        format!("{l50:.1} / {l99:.1} ms"),
        "p99 < 50 ms",
        Some(l99 < 50.0),
    );
    let (e50, e99) = (f("expiry", "p50_ms"), f("expiry", "p99_ms"));
    row(
        "expiry lateness p50 / p99",
        format!("{e50:.0} / {e99:.0} ms"),
        "p99 < 1000 ms",
        Some(e99 < 1000.0),
    );
    for (name, label, limit) in [
        ("rss_api", "API", 100.0),
        ("rss_worker", "worker", 50.0),
        ("rss_scheduler", "scheduler", 50.0),
    ] {
        let mb = f(name, "kb") / 1024.0;
        row(
            &format!("peak RSS, {label}"),
            format!("{mb:.1} MB"),
            &format!("< {limit:.0} MB"),
            Some(mb < limit),
        );
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(10);
    let vwidth = rows.iter().map(|r| r.1.len()).max().unwrap_or(10);
    let mut out = String::new();
    for (what, value, target, met) in rows {
        let mark = match met {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "",
        };
        out.push_str(&format!(
            "{what:<width$}  {value:>vwidth$}  {target:<16} {mark}\n"
        ));
    }
    Ok(out)
}
