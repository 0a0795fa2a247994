//! The dashboard in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! `chromedriver` (found on `PATH`; `deploy/test.sh` installs both), which this test starts
//! on a free port and stops. It signs in, reads the queues, watches the auto-refresh
//! change a count without a reload, opens a dead job, reads its explanation, retries it
//! after confirming, and sees it done: the dead job is the payment capture of a real
//! booking, and once it is retried a worker (`orderly-worker`, in this process, draining
//! only `payments`) captures the payment and the booking becomes `paid`.
//!
//! With `DASHBOARD_SCREENSHOTS=<dir>` it also saves the queues page and the dead job's
//! page there (`dashboard.png`, `dashboard-job.png`): how `docs/` gets its pictures.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use orderly_jobs::Queue;
use orderly_testing::Process;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::admin_jobs::{Row, insert, job_row, sql};
use crate::helpers::{TestApp, spawn_app};

/// How long any one thing the browser should show may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// `chromedriver` on a free loopback port, stopped when dropped.
struct Driver {
    process: Process,
    url: String,
}

impl Driver {
    async fn start() -> Self {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start chromedriver ({e}): install chromium and chromium-driver (deploy/test.sh does)")
            });
        let driver = Self {
            process: Process::new(child, "chromedriver"),
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = format!("{}/status", driver.url);
        let client = reqwest::Client::new();
        poll("chromedriver answers /status", || {
            let req = client.get(&status).send();
            async move {
                match req.await {
                    Ok(resp) => {
                        resp.json::<Value>()
                            .await
                            .ok()
                            .and_then(|v| v["value"]["ready"].as_bool())
                            == Some(true)
                    }
                    Err(_) => false,
                }
            }
        })
        .await;
        driver
    }

    /// Stops it (SIGTERM, then waits); dropping it kills it instead.
    async fn stop(mut self) {
        self.process.sigterm();
        self.process.exited(PATIENCE).await;
    }

    /// A new headless Chromium session.
    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1000", "--hide-scrollbars",
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver")
    }
}

/// Polls `check` until it holds; panics after [`PATIENCE`].
async fn poll<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    orderly_testing::wait_until(what, PATIENCE, check).await;
}

/// The text of the first element matching `css`, or `None` while there is none.
async fn text(browser: &Client, css: &str) -> Option<String> {
    match browser.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.ok(),
        Err(_) => None,
    }
}

/// Waits until the element matching `css` reads `expected`.
async fn until_text(browser: &Client, css: &str, expected: &str) {
    poll(&format!("{css} reads {expected:?}"), || async {
        text(browser, css).await.as_deref() == Some(expected)
    })
    .await;
}

/// Saves the browser's view as `name` under `DASHBOARD_SCREENSHOTS`, when that is set.
async fn screenshot(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("DASHBOARD_SCREENSHOTS") else {
        return;
    };
    let png = browser.screenshot().await.unwrap();
    let path = PathBuf::from(dir).join(name);
    std::fs::write(&path, png).unwrap();
}

/// The request the dead job's booking was made in, shown on the job's page.
const REQUEST_ID: &str = "req-7f3a";

/// A real booking of one seat, made through the API in request [`REQUEST_ID`]: with the
/// simulated provider it is confirmed at once with an authorised payment, and its jobs are
/// queued (the capture on `payments`, the confirmation e-mail, the hold's expiry).
async fn book(app: &TestApp) -> Uuid {
    let provider = app.register("provider").await;
    let customer = app.register("customer").await;
    let listing = app
        .create_listing(&provider, json!({"title": "Sunset kayak tour"}))
        .await;
    let resp = app
        .client
        .post(app.url("/api/v1/bookings"))
        .bearer_auth(&customer.access)
        .header("x-request-id", REQUEST_ID)
        .json(&json!({"listing_id": listing["id"], "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let booking: Value = resp.json().await.unwrap();
    assert_eq!(booking["status"], "confirmed", "{booking}");
    assert_eq!(booking["payment"]["status"], "authorized", "{booking}");
    booking["id"].as_str().unwrap().parse().unwrap()
}

/// The status of booking `id`, read from the database.
async fn booking_status(app: &TestApp, id: Uuid) -> Value {
    sql(
        app,
        "SELECT status FROM bookings WHERE id = $1",
        vec![id.into()],
    )
    .await
    .pop()
    .unwrap()["status"]
        .clone()
}

/// Some traffic to look at: each queue with jobs in several states, two live workers, and
/// one payment capture that died on a declined card. That one is the capture of a real
/// booking (from request [`REQUEST_ID`]), so that retrying it can succeed; the booking's
/// confirmation e-mail and hold expiry are real too, and stand in for two made-up rows.
/// Nothing else is on `payments`, the only queue the test's worker drains. Returns the
/// dead job and its booking.
async fn seed(app: &TestApp) -> (Uuid, Uuid) {
    let booking = book(app).await;
    let captures = sql(
        app,
        "SELECT id, status, request_id FROM outbox
          WHERE job_type = 'capture_payment' AND payload ->> 'booking_id' = $1",
        vec![booking.to_string().into()],
    )
    .await;
    let [capture] = captures.as_slice() else {
        panic!("one capture queued for the booking: {captures:?}");
    };
    assert_eq!(capture["status"], "pending", "{capture}");
    assert_eq!(capture["request_id"], REQUEST_ID, "{capture}");
    let dead: Uuid = capture["id"].as_str().unwrap().parse().unwrap();

    let rows: Vec<Row<'_>> = vec![
        Row {
            queue: "email",
            job_type: "send_email",
            run_in_s: -30,
            ..Row::default()
        },
        Row {
            queue: "email",
            job_type: "send_email",
            status: "running",
            attempts: 1,
            locked_by: Some("worker-a-1"),
            ..Row::default()
        },
        Row {
            queue: "email",
            job_type: "send_email",
            run_in_s: 90,
            attempts: 3,
            last_error: Some("SMTP 451 4.7.1 try again later"),
            ..Row::default()
        },
        Row {
            queue: "sms",
            job_type: "send_sms",
            run_in_s: 600,
            ..Row::default()
        },
        Row {
            queue: "bookings",
            job_type: "expire_booking",
            run_in_s: 840,
            ..Row::default()
        },
        Row {
            queue: "bookings",
            job_type: "expire_booking",
            status: "done",
            attempts: 1,
            completed_ago_s: Some(20),
            ..Row::default()
        },
        Row {
            queue: "email",
            job_type: "send_email",
            status: "done",
            attempts: 1,
            completed_ago_s: Some(10),
            ..Row::default()
        },
        Row {
            queue: "reports",
            job_type: "daily_report",
            status: "done",
            attempts: 2,
            completed_ago_s: Some(900),
            ..Row::default()
        },
    ];
    for row in rows {
        insert(app, row).await;
    }
    // The capture's one attempt, two minutes ago: the card was declined.
    app.db
        .execute_unprepared(&format!(
            "UPDATE outbox SET status = 'dead', attempts = 1,
                               last_error = 'card declined (insufficient_funds)',
                               created_at = now() - interval '3 minutes',
                               run_at = now() - interval '3 minutes',
                               started_at = now() - interval '121 seconds',
                               completed_at = now() - interval '120 seconds'
              WHERE id = '{dead}';
             INSERT INTO outbox_attempts (outbox_id, attempt, started_at, finished_at, outcome, error, worker)
             VALUES ('{dead}', 1, now() - interval '121 seconds', now() - interval '120 seconds',
                     'dead', 'card declined (insufficient_funds)', 'worker-a-1');
             INSERT INTO workers (name, host, pid, queues, concurrency)
             VALUES ('worker-a-1', 'worker-a', 101, '{{bookings,payments}}', '{{16,8}}'),
                    ('worker-b-1', 'worker-b', 202, '{{email,sms,reports}}', '{{64,16,2}}')"
        ))
        .await
        .unwrap();
    let others = sql(
        app,
        "SELECT id FROM outbox WHERE queue = 'payments' AND id <> $1",
        vec![dead.into()],
    )
    .await;
    assert!(
        others.is_empty(),
        "only the dead capture is on payments: {others:?}"
    );
    (dead, booking)
}

/// `orderly-worker` in this process, draining only `payments` against the test's database
/// and Redis prefix, with `/metrics` on a free port (tests run in parallel).
struct Worker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Worker {
    fn start(app: &TestApp) -> Self {
        let mut settings = (*app.settings).clone();
        settings.worker.queues = vec![Queue::Payments];
        settings.worker.concurrency = 2;
        settings.worker.db_pool_size = 8;
        settings.worker.shutdown_grace = Duration::from_secs(5);
        settings.metrics_addr = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(orderly_worker::run_until(settings, async move {
            let _ = stopped.await;
        }));
        Self { stop, task }
    }

    /// Asks it to stop and waits until it has, cleanly.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the worker stops")
            .expect("the worker's task")
            .expect("the worker ran without an error");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_watches_the_queues_refresh_and_retries_a_dead_job_in_a_real_browser() {
    let app = spawn_app().await;
    let mut admin = app.admin().await;
    // A name that reads well in the screenshots.
    admin.email = format!(
        "ops-{}@orderly.example",
        &admin.id.simple().to_string()[..6]
    );
    app.db
        .execute_unprepared(&format!(
            "UPDATE users SET email = '{}' WHERE id = '{}'",
            admin.email, admin.id
        ))
        .await
        .unwrap();
    let (dead, booking) = seed(&app).await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;

    let outcome = std::panic::AssertUnwindSafe(async {
        // Not signed in: the dashboard sends the browser to its login page.
        browser.goto(&app.url("/admin")).await.unwrap();
        let form = browser
            .wait()
            .for_element(Locator::Css("form[action='/admin/login']"))
            .await
            .unwrap();
        form.find(Locator::Css("input[name=email]"))
            .await
            .unwrap()
            .send_keys(&admin.email)
            .await
            .unwrap();
        form.find(Locator::Css("input[name=password]"))
            .await
            .unwrap()
            .send_keys(&admin.password)
            .await
            .unwrap();
        form.find(Locator::Css("button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        // The queues, with the payments queue's one dead job.
        until_text(&browser, "#queue-payments [data-count=dead]", "1").await;
        until_text(&browser, "#queue-email [data-count=pending]", "2").await;
        assert_eq!(
            browser.current_url().await.unwrap().path(),
            "/admin",
            "back where it was sent from"
        );

        // The live part refreshes without reloading the page: a mark left on the page
        // survives while a count changes.
        browser
            .execute("window.orderlyMark = 'still here'; return null;", vec![])
            .await
            .unwrap();
        insert(
            &app,
            Row {
                queue: "sms",
                job_type: "send_sms",
                status: "dead",
                attempts: 1,
                last_error: Some("invalid phone number"),
                completed_ago_s: Some(1),
                ..Row::default()
            },
        )
        .await;
        until_text(&browser, "#queue-sms [data-count=dead]", "1").await;
        let mark = browser
            .execute("return window.orderlyMark;", vec![])
            .await
            .unwrap();
        assert_eq!(mark, json!("still here"), "the page was not reloaded");
        let points = browser
            .execute(
                "return document.querySelectorAll('#chart polyline').length;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(points, json!(3), "the chart draws its three series");
        screenshot(&browser, "dashboard.png").await;

        // To the dead job: through the queue's dead count, then the job in the list.
        browser
            .find(Locator::Css("#queue-payments [data-count=dead] a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let link = browser
            .wait()
            .for_element(Locator::Css(&format!("tr[data-job='{dead}'] a")))
            .await
            .unwrap();
        link.click().await.unwrap();
        browser
            .wait()
            .for_element(Locator::Id("explanation"))
            .await
            .unwrap();
        let explanation = text(&browser, "#explanation").await.unwrap();
        assert!(
            explanation.starts_with(
                "dead: card declined (insufficient_funds) (given up after 1 attempt at "
            ),
            "{explanation}"
        );
        assert_eq!(
            text(&browser, "#request-id").await.as_deref(),
            Some("req-7f3a")
        );
        screenshot(&browser, "dashboard-job.png").await;

        // Retry asks first; once confirmed, the job is back in line (no worker runs yet).
        browser
            .find(Locator::Id("retry"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let question = browser.get_alert_text().await.unwrap();
        assert_eq!(question, "Retry this capture_payment job now?");
        browser.accept_alert().await.unwrap();
        poll("the job leaves dead", || async {
            matches!(text(&browser, "#job-state").await.as_deref(), Some(state) if state != "dead")
        })
        .await;
        assert_eq!(
            text(&browser, "#job-state").await.as_deref(),
            Some("pending")
        );
        let status = job_row(&app, dead).await.unwrap()["status"].clone();
        assert_eq!(status, "pending");
        assert_eq!(booking_status(&app, booking).await, "confirmed");

        // A worker on `payments` captures the payment; the page, refreshing itself, says so.
        let worker = Worker::start(&app);
        poll("the job's page says it is done", || async {
            text(&browser, "#job-state").await.as_deref() == Some("done")
        })
        .await;
        let explanation = text(&browser, "#explanation").await.unwrap();
        assert!(
            explanation.starts_with("done at ") && explanation.contains(" after 2 attempts"),
            "{explanation}"
        );
        assert_eq!(job_row(&app, dead).await.unwrap()["status"], "done");
        assert_eq!(booking_status(&app, booking).await, "paid");
        worker.stop().await;
    })
    .catch_unwind()
    .await;

    // Whatever happened, the browser and its driver go.
    let _ = browser.close().await;
    driver.stop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
