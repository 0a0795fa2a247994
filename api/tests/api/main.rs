//! API tests: the real server on a free port, its own database and Redis namespace per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin_jobs;
mod admin_reports;
mod admin_schedules;
mod auth;
mod bookings;
mod cors;
mod dashboard;
mod helpers;
mod idempotency;
mod limits;
mod listings;
mod openapi;
mod outage;
mod password_queue;
mod service;
mod stripe;
mod terminated;
mod time_limits;
