//! The scheduler end to end: real PostgreSQL, the real `orderly-scheduler` binary (several
//! at once, killed with SIGKILL), and the jobs its entries enqueue run against the database.
//! Nothing here sleeps to wait: it polls with deadlines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod catch_up;
mod commands;
mod entries;
mod harness;
mod metrics;
mod replicas;
mod runs;
