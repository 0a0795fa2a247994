//! The scheduler's cron table, in one place: each entry's expression and time zone (from
//! the settings), when it fires ([`ticks`]), the one job each tick enqueues, and what was
//! recorded of its runs. `orderly-scheduler` runs the table; the API shows it.

mod runs;
mod table;
pub mod ticks;

pub use runs::{LEASE, Leader, last_runs, leader};
pub use table::{Entry, Scheduled, Table, TickJob};
