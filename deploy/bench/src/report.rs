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

/// Work per completed booking measured by this benchmark on the main of 2026-12-03 (commit
/// f157331, before the work was cut; medians of two runs), the figures the targets halve.
const WORK_ON_MAIN: [(&str, &str, f64); 3] = [
    ("commits_per_booking", "PostgreSQL commits", 9.5),
    ("statements_per_booking", "PostgreSQL statements", 32.4),
    ("redis_commands_per_booking", "Redis commands", 14.0),
];

/// `1.23 ms: postgres 0.80, orderly-api 0.30, ...`: a phase's CPU per unit by program,
/// largest first (from `cpu_ms_per_*`).
fn cpu_breakdown(cpu: &Value) -> String {
    let Some(map) = cpu.as_object() else {
        return "?".to_owned();
    };
    let mut parts: Vec<(&String, f64)> = map
        .iter()
        .filter(|(name, _)| name.as_str() != "total")
        .filter_map(|(name, v)| Some((name, v.as_f64()?)))
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total = map.get("total").and_then(Value::as_f64).unwrap_or(f64::NAN);
    let parts: Vec<String> = parts
        .iter()
        .map(|(name, ms)| format!("{name} {ms:.3}"))
        .collect();
    format!("{total:.3} ms: {}", parts.join(", "))
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
    let durability = r.get("durability").cloned().unwrap_or_default();
    let setting = |name: &str| durability[name].as_str().unwrap_or("?").to_owned();
    let durable = setting("fsync") == "on" && setting("synchronous_commit") == "on";
    row(
        "PostgreSQL durability (fsync / synchronous_commit / full_page_writes)",
        format!(
            "{} / {} / {}",
            setting("fsync"),
            setting("synchronous_commit"),
            setting("full_page_writes")
        ),
        "on / on (as in production)",
        Some(durable),
    );
    let rps = f("bookings", "rps");
    let pg = f("pgbench", "tps");
    let (p50, p99) = (f("bookings", "p50_ms"), f("bookings", "p99_ms"));
    let pg_p99 = f("pgbench", "p99_ms");
    row(
        "POST /bookings, booking only, 64 connections",
        format!("{rps:.0} req/s (p50 {p50:.1} / p99 {p99:.1} ms)"),
        "",
        None,
    );
    row(
        "pgbench, same SQL transaction",
        format!(
            "{pg:.0} tps (p50 {:.1} / p99 {pg_p99:.1} ms)",
            f("pgbench", "p50_ms")
        ),
        "",
        None,
    );
    row(
        "booking only / pgbench",
        format!("{:.0} %", 100.0 * rps / pg),
        ">= 90 %",
        Some(rps >= 0.9 * pg),
    );
    row(
        "booking p99 against pgbench's p99",
        format!("{p99:.1} / {pg_p99:.1} ms"),
        "no worse",
        Some(p99 <= pg_p99),
    );
    let errors = f("bookings", "errors")
        + f("bookings_full", "errors")
        + f("flow", "errors")
        + f("get_booking", "errors");
    row(
        "errors (every response checked)",
        format!("{errors:.0}"),
        "0",
        Some(errors == 0.0),
    );
    let get = f("get_booking", "rps");
    let pg_get = f("pgbench_get", "tps");
    row(
        "GET /bookings/{id}",
        format!("{get:.0} req/s (p99 {:.1} ms)", f("get_booking", "p99_ms")),
        "",
        None,
    );
    row(
        "pgbench, same SELECT (prepared)",
        format!("{pg_get:.0} tps"),
        "",
        None,
    );
    row(
        "GET / pgbench",
        format!("{:.0} %", 100.0 * get / pg_get),
        ">= 50 %",
        Some(get >= 0.5 * pg_get),
    );
    row(
        "full flow (instant authorisation), worker stopped",
        format!(
            "{:.0} req/s (p99 {:.1} ms)",
            f("bookings_full", "rps"),
            f("bookings_full", "p99_ms")
        ),
        "",
        None,
    );
    row(
        "full flow, worker draining: accepted",
        format!(
            "{:.0} req/s (p50 {:.1} / p99 {:.1} ms)",
            f("flow", "rps"),
            f("flow", "p50_ms"),
            f("flow", "p99_ms")
        ),
        "",
        None,
    );
    let completed = f("flow", "completed_per_s");
    row(
        "  ... completed bookings/s (load + drain)",
        format!(
            "{completed:.0} /s ({:.0} % of booking only)",
            100.0 * completed / rps
        ),
        ">= 70 %",
        Some(completed >= 0.7 * rps),
    );
    let drain = f("flow", "drain_s");
    row(
        "  ... backlog at end of load, drained in",
        format!("{:.0} jobs, {drain:.1} s", f("flow", "backlog_jobs")),
        "<= 10 s",
        Some(drain <= 10.0),
    );
    row(
        "  ... bookings completed / made",
        format!("{:.0} / {:.0}", f("flow", "completed"), f("flow", "booked")),
        "all",
        Some(f("flow", "completed") == f("flow", "booked")),
    );
    for (key, label, main) in WORK_ON_MAIN {
        let value = f("flow", key);
        row(
            &format!("  ... {label} per completed booking"),
            format!("{value:.1} (main of 2026-12-03: {main:.1})"),
            "<= half of main's",
            Some(value <= main / 2.0),
        );
    }
    row(
        "  ... WAL per completed booking",
        format!("{:.1} kB", f("flow", "wal_kb_per_booking")),
        "",
        None,
    );
    for (name, key, label) in [
        (
            "bookings",
            "cpu_ms_per_request",
            "CPU per booking, booking only",
        ),
        (
            "get_booking",
            "cpu_ms_per_request",
            "CPU per GET /bookings/{id}",
        ),
        (
            "flow",
            "cpu_ms_per_booking",
            "CPU per completed booking, whole flow",
        ),
        (
            "drain_noop",
            "cpu_ms_per_job",
            "CPU per noop job (the pipeline's own cost)",
        ),
        (
            "drain_send_email",
            "cpu_ms_per_job",
            "CPU per send_email job (files)",
        ),
    ] {
        if let Some(cpu) = r.get(name).map(|v| &v[key]) {
            row(label, cpu_breakdown(cpu), "", None);
        }
    }
    let noop = f("drain_noop", "jobs_per_s");
    row(
        "one worker drains noop jobs",
        format!("{noop:.0} jobs/s"),
        "",
        None,
    );
    let email = f("drain_send_email", "jobs_per_s");
    row(
        "one worker drains send_email (files)",
        format!("{email:.0} jobs/s"),
        "",
        None,
    );
    let enq = f("enqueue", "jobs_per_s");
    row(
        "enqueue from one process (1 job per call, grouped commits)",
        format!("{enq:.0} jobs/s"),
        "",
        None,
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
