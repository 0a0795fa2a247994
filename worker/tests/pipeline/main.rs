//! The job pipeline end to end: real PostgreSQL, real Redis, the real worker binary, and
//! fake SMTP and SMS servers on loopback. Nothing here sleeps to wait: it polls with deadlines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod cluster;
mod crashes;
mod delivery;
mod emails;
mod expiry;
mod fakes;
mod faults;
mod flow;
mod harness;
mod metrics;
mod money;
mod paused;
mod reports;
mod retries;
mod scheduled;
mod sentinel;
mod startup;
mod stripe;
mod wake;
