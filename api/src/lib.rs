//! Orderly's HTTP API: routes, extractors, error mapping, OpenAPI, the `/admin` dashboard
//! and the `create-admin` command. `main.rs` only parses flags and calls [`cli::run`].

pub mod auth;
pub mod cli;
pub mod client_addr;
pub mod cors;
pub mod dashboard;
pub mod deadline;
pub mod errors_fallback;
pub mod extract;
pub mod idempotency;
pub mod middleware;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod validation;
