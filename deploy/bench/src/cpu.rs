//! Where the machine's CPU went during a phase: user + system time of every process, summed
//! by program (`postgres`, `orderly-api`, `orderly-worker`, `redis-server`, this load
//! generator), read from `/proc/<pid>/stat` before and after. PostgreSQL's backends are
//! pooled by the processes that use them, so they live through a phase and are counted.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};

/// CPU seconds used so far, by process id, with the process's program name.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(BTreeMap<u32, (String, f64)>);

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux when it cannot be read).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Reads every process's CPU time now (processes this user may not read are skipped).
pub fn snapshot() -> Snapshot {
    let ticks = ticks_per_second();
    let mut by_pid = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Snapshot::default();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After comm: state is field 3 of stat(5), utime 14 and stime 15.
        let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let (Ok(utime), Ok(stime)) = (utime.parse::<f64>(), stime.parse::<f64>()) else {
            continue;
        };
        by_pid.insert(pid, (program(comm), (utime + stime) / ticks));
    }
    Snapshot(by_pid)
}

/// Groups helper processes under their program (`postgres: walwriter` is `postgres`; the
/// kernel truncates names to 15 bytes, so `orderly-schedul` is the scheduler). A kernel
/// worker renames itself after the work it is doing, so all of them are `kworker`.
fn program(comm: &str) -> String {
    match comm {
        c if c.starts_with("kworker") => "kworker".to_owned(),
        c if c.starts_with("postgres") => "postgres".to_owned(),
        c if c.starts_with("redis-server") => "redis-server".to_owned(),
        c if c.starts_with("orderly-schedul") => "orderly-scheduler".to_owned(),
        c => c.to_owned(),
    }
}

/// CPU milliseconds per unit of work (`units`: bookings, requests) between two snapshots,
/// by program, for the programs that used at least 1 % of the total; plus the total.
pub fn per_unit(before: &Snapshot, after: &Snapshot, units: f64) -> Value {
    // Per process, so that a process that exited or renamed itself between the snapshots
    // is not counted as another's; one that started in between counts whole.
    let mut by_program: BTreeMap<&String, f64> = BTreeMap::new();
    for (pid, (name, a)) in &after.0 {
        let b = before.0.get(pid).map_or(0.0, |(_, b)| *b);
        *by_program.entry(name).or_insert(0.0) += (a - b).max(0.0);
    }
    let deltas: Vec<(&String, f64)> = by_program.into_iter().filter(|(_, d)| *d > 0.0).collect();
    let total: f64 = deltas.iter().map(|(_, d)| d).sum();
    let units = units.max(1.0);
    let mut out = serde_json::Map::new();
    for (name, d) in deltas {
        if d >= 0.01 * total {
            out.insert(name.clone(), json!(1000.0 * d / units));
        }
    }
    out.insert("total".to_owned(), json!(1000.0 * total / units));
    Value::Object(out)
}
