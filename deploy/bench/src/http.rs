//! HTTP load: set-up through the public API, then fixed-duration loads from N connections.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::stats::percentiles_ms;

/// Arguments of `setup`.
#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// API base URL.
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    api: String,
    /// Customers to register (one per connection).
    #[arg(long, default_value_t = 64)]
    customers: usize,
    /// Listings to create.
    #[arg(long, default_value_t = 200)]
    listings: usize,
    /// Where to write the result.
    #[arg(long)]
    out: PathBuf,
}

/// What `setup` made.
#[derive(Debug, Serialize, Deserialize)]
pub struct Fixture {
    /// Customers' access tokens.
    pub tokens: Vec<String>,
    /// Listing ids.
    pub listings: Vec<String>,
    /// One booking id per customer (for GET).
    pub bookings: Vec<String>,
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = client.post(url).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if !status.is_success() {
        bail!("{url}: {status} {body}");
    }
    Ok(body)
}

/// Registers users and creates listings and one booking per customer.
pub async fn setup(args: SetupArgs) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let register = |role: &str, i: usize| json!({"email": format!("{role}{i}-{run}@bench.example"), "password": "bench-password", "name": "Bench", "role": role});
    let provider = post(
        &client,
        &format!("{}/api/v1/auth/register", args.api),
        None,
        register("provider", 0),
    )
    .await?;
    let provider_token = provider["access"]
        .as_str()
        .context("provider token")?
        .to_owned();
    let mut listings = Vec::new();
    for i in 0..args.listings {
        let body = json!({
            "title": format!("Bench listing {i}"),
            "starts_at": (chrono::Utc::now() + chrono::Duration::days(60)).to_rfc3339(),
            "capacity": 100_000, "price_cents": 1000 + i as i64, "currency": "eur",
        });
        let listing = post(
            &client,
            &format!("{}/api/v1/listings", args.api),
            Some(&provider_token),
            body,
        )
        .await?;
        listings.push(listing["id"].as_str().context("listing id")?.to_owned());
    }
    let mut tokens = Vec::new();
    let mut bookings = Vec::new();
    for i in 0..args.customers {
        let customer = post(
            &client,
            &format!("{}/api/v1/auth/register", args.api),
            None,
            register("customer", i),
        )
        .await?;
        let token = customer["access"]
            .as_str()
            .context("customer token")?
            .to_owned();
        let booking = post(
            &client,
            &format!("{}/api/v1/bookings", args.api),
            Some(&token),
            json!({"listing_id": listings[i % listings.len()], "quantity": 1}),
        )
        .await?;
        bookings.push(booking["id"].as_str().context("booking id")?.to_owned());
        tokens.push(token);
    }
    let fixture = Fixture {
        tokens,
        listings,
        bookings,
    };
    std::fs::write(&args.out, serde_json::to_vec(&fixture)?).context("writing the fixture")?;
    Ok(json!({"customers": args.customers, "listings": args.listings}))
}

/// Arguments of the loads.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// API base URL.
    #[arg(long, default_value = "http://127.0.0.1:18080")]
    api: String,
    /// The file `setup` wrote.
    #[arg(long)]
    fixture: PathBuf,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long to run.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

struct Outcome {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

async fn load<F, Fut>(args: &LoadArgs, request: F) -> anyhow::Result<Value>
where
    F: Fn(reqwest::Client, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .tcp_nodelay(true)
        .build()?;
    let request = Arc::new(request);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|connection| {
            let client = client.clone();
            let request = request.clone();
            tokio::spawn(async move {
                let mut outcome = Outcome {
                    latencies: Vec::new(),
                    errors: 0,
                    first_error: None,
                };
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match request(client.clone(), connection, n).await {
                        Ok(()) => outcome.latencies.push(t.elapsed()),
                        Err(e) => {
                            outcome.errors += 1;
                            outcome.first_error.get_or_insert(e);
                        }
                    }
                    n += 1;
                }
                outcome
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let outcome = task.await?;
        latencies.extend(outcome.latencies);
        errors += outcome.errors;
        if first_error.is_none() {
            first_error = outcome.first_error;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = latencies.len();
    let (p50, p99) = percentiles_ms(&mut latencies);
    Ok(json!({
        "requests": ok as u64 + errors, "ok": ok, "errors": errors, "first_error": first_error,
        "rps": ok as f64 / elapsed, "p50_ms": p50, "p99_ms": p99, "seconds": elapsed,
    }))
}

fn fixture(path: &PathBuf) -> anyhow::Result<Arc<Fixture>> {
    let bytes = std::fs::read(path).context("reading the fixture")?;
    Ok(Arc::new(serde_json::from_slice(&bytes)?))
}

/// POST /api/v1/bookings: each connection books one seat on listing after listing.
pub async fn bookings(args: LoadArgs) -> anyhow::Result<Value> {
    let fx = fixture(&args.fixture)?;
    let url = format!("{}/api/v1/bookings", args.api);
    load(&args, move |client, connection, n| {
        let fx = fx.clone();
        let url = url.clone();
        async move {
            let token = &fx.tokens[connection % fx.tokens.len()];
            let listing = &fx.listings[(connection * 7919 + n as usize) % fx.listings.len()];
            let resp = client
                .post(&url)
                .bearer_auth(token)
                .json(&json!({"listing_id": listing, "quantity": 1}))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            let body: Value = resp.json().await.map_err(|e| e.to_string())?;
            if status != reqwest::StatusCode::CREATED
                || body["listing_id"] != listing.as_str()
                || !body["id"].is_string()
            {
                return Err(format!("{status} {body}"));
            }
            Ok(())
        }
    })
    .await
}

/// GET /api/v1/bookings/{id}: each connection reads its customer's booking.
pub async fn get_booking(args: LoadArgs) -> anyhow::Result<Value> {
    let fx = fixture(&args.fixture)?;
    let api = args.api.clone();
    load(&args, move |client, connection, _| {
        let fx = fx.clone();
        let api = api.clone();
        async move {
            let i = connection % fx.tokens.len();
            let id = &fx.bookings[i];
            let resp = client
                .get(format!("{api}/api/v1/bookings/{id}"))
                .bearer_auth(&fx.tokens[i])
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            let body: Value = resp.json().await.map_err(|e| e.to_string())?;
            if status != reqwest::StatusCode::OK || body["id"] != id.as_str() {
                return Err(format!("{status} {body}"));
            }
            Ok(())
        }
    })
    .await
}
