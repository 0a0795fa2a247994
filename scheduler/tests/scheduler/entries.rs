//! What the entries' jobs do, run as the worker runs them (the domain functions behind
//! `reminders`, `sweep` and `retention`).

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use orderly_core::config::SimulatedPayments;
use orderly_domain::{reminders, retention, sweep};
use orderly_jobs::{Job, Reminders};
use orderly_providers::payments::SimulatedGateway;

use crate::harness::Harness;

#[tokio::test]
async fn a_reminder_is_asked_once_when_its_tick_runs_twice() {
    let h = Harness::new(&[]).await;
    let soon = h.listing(Duration::hours(5), "published").await;
    let confirmed = h.booking(soon, "confirmed", Duration::minutes(10)).await;
    let paid = h.booking(soon, "paid", Duration::minutes(10)).await;
    // Not reminded: unpaid, cancelled, a listing too far off, one cancelled, one started.
    h.booking(soon, "pending_payment", Duration::zero()).await;
    h.booking(soon, "cancelled", Duration::zero()).await;
    let later = h.listing(Duration::hours(30), "published").await;
    h.booking(later, "confirmed", Duration::minutes(10)).await;
    let called_off = h.listing(Duration::hours(5), "cancelled").await;
    h.booking(called_off, "confirmed", Duration::minutes(10))
        .await;
    let started = h.listing(Duration::minutes(-5), "published").await;
    h.booking(started, "paid", Duration::hours(1)).await;

    let tick = Utc::now();
    let first = Reminders {
        tick,
        lead_hours: 24,
    };
    let second = Reminders {
        tick: tick + Duration::minutes(15),
        lead_hours: 24,
    };
    assert_ne!(first.dedup_key(), second.dedup_key());
    // Batches of one, so the batching is exercised too.
    let asked = reminders::ask_due(&h.db, first.until(), 1, 100)
        .await
        .unwrap();
    assert_eq!(asked, 2);
    let asked = reminders::ask_due(&h.db, second.until(), 1, 100)
        .await
        .unwrap();
    assert_eq!(asked, 0);

    for booking in [confirmed, paid] {
        let sql = format!(
            "SELECT count(*) FROM notifications WHERE booking_id = '{booking}' AND kind = 'reminder'"
        );
        assert_eq!(
            h.scalar(&sql).await,
            2,
            "an e-mail and an SMS for {booking}"
        );
    }
    assert_eq!(
        h.scalar("SELECT count(*) FROM notifications WHERE kind = 'reminder'")
            .await,
        4
    );
    assert_eq!(h.jobs("send_email").await.len(), 2);
    assert_eq!(h.jobs("send_sms").await.len(), 2);
}

#[tokio::test]
async fn the_sweep_expires_lost_holds_and_counts_bookings_stuck_confirmed() {
    let h = Harness::new(&[]).await;
    let listing = h.listing(Duration::days(3), "published").await;
    // Unpaid, its hold over for five minutes, its expiry job lost.
    let lost = h
        .booking(listing, "pending_payment", Duration::minutes(5))
        .await;
    h.execute(
        "INSERT INTO payments (id, booking_id, provider, status, amount_cents, currency)
         VALUES (gen_random_uuid(), $1, 'simulated', 'requires_payment', 4200, 'eur')",
        vec![lost.into()],
    )
    .await;
    // Confirmed twenty minutes ago: one whose capture died, one whose capture is retrying.
    let stuck = h.booking(listing, "confirmed", Duration::minutes(20)).await;
    h.job(
        "capture_payment",
        &format!("capture_payment:{stuck}"),
        "dead",
        Duration::minutes(19),
    )
    .await;
    let retrying = h.booking(listing, "confirmed", Duration::minutes(20)).await;
    h.job(
        "capture_payment",
        &format!("capture_payment:{retrying}"),
        "pending",
        Duration::zero(),
    )
    .await;
    // Confirmed a moment ago: its capture is simply not done yet.
    h.booking(listing, "confirmed", Duration::seconds(5)).await;

    let swept = sweep::sweep(
        &h.db,
        &SimulatedGateway {
            mode: SimulatedPayments::Authorize,
        },
    )
    .await
    .unwrap();
    assert_eq!(swept.expired, 1);
    assert_eq!(swept.stuck_confirmed, 1);
    assert_eq!(swept.stuck_sample, [stuck]);
    let status = h
        .scalar(&format!(
            "SELECT count(*) FROM bookings WHERE id = '{lost}' AND status = 'expired'"
        ))
        .await;
    assert_eq!(status, 1);
    assert_eq!(
        sweep::sweep(
            &h.db,
            &SimulatedGateway {
                mode: SimulatedPayments::Authorize
            }
        )
        .await
        .unwrap()
        .expired,
        0
    );
}

#[tokio::test]
async fn retention_keeps_dead_jobs_and_what_still_guards_and_removes_old_finished_ones() {
    let h = Harness::new(&[]).await;
    let hours = Duration::hours;
    let days = Duration::days;
    for (job_type, key, status, ago) in [
        ("expire_booking", "gone:done-2-days-ago", "done", days(2)),
        ("expire_booking", "kept:done-an-hour-ago", "done", hours(1)),
        ("capture_payment", "kept:dead-10-days-ago", "dead", days(10)),
        ("capture_payment", "gone:dead-31-days-ago", "dead", days(31)),
        ("send_email", "kept:sent-10-days-ago", "done", days(10)),
        ("send_sms", "gone:sent-31-days-ago", "done", days(31)),
        ("daily_report", "kept:report-3-days-ago", "done", days(3)),
        ("expire_booking", "kept:pending", "pending", days(0)),
        (
            "reminders",
            "kept:done-but-its-run-has-not-read-it",
            "done",
            days(2),
        ),
    ] {
        h.job(job_type, key, status, ago).await;
    }
    h.execute(
        "INSERT INTO schedule_runs (schedule_name, scheduled_for, leader, task_id)
         VALUES ('reminders', now() - interval '2 days', 'x', 'kept:done-but-its-run-has-not-read-it')",
        vec![],
    )
    .await;
    let user = h.user("customer").await;
    for (key, expires_in) in [("gone:expired", hours(-1)), ("kept:live", hours(20))] {
        h.execute(
            "INSERT INTO idempotency_keys (user_id, key, method, path, request_hash, expires_at)
             VALUES ($1, $2, 'POST', '/api/v1/bookings', 'h', now() + make_interval(secs => $3))",
            vec![
                user.into(),
                key.into(),
                (expires_in.num_seconds() as f64).into(),
            ],
        )
        .await;
    }
    for (hash, expires_in) in [("a", hours(-1)), ("b", hours(20))] {
        h.execute(
            "INSERT INTO admin_sessions (token_hash, user_id, created_at, idle_expires_at, expires_at)
             VALUES (repeat($1, 64), $2, now() - interval '1 day',
                     now() + make_interval(secs => $3), now() + make_interval(secs => $3))",
            vec![
                hash.into(),
                user.into(),
                (expires_in.num_seconds() as f64).into(),
            ],
        )
        .await;
    }
    for (event, ago) in [("gone:evt_old", days(31)), ("kept:evt_recent", days(29))] {
        h.execute(
            "INSERT INTO processed_webhook_events (event_id, event_type, received_at)
             VALUES ($1, 'payment_intent.succeeded', now() - make_interval(secs => $2))",
            vec![event.into(), (ago.num_seconds() as f64).into()],
        )
        .await;
    }
    let now = Utc::now();
    for ago in [40, 35, 31, 2] {
        h.seed_run("sweep", now - days(ago)).await;
    }
    h.seed_run("retention", now - days(45)).await;

    // Batches of two: several per rule.
    let pruned = retention::prune(&h.db, 2, StdDuration::from_secs(60))
        .await
        .unwrap();
    let total: u64 = pruned.iter().map(|p| p.rows).sum();
    assert_eq!(total, 3 + 1 + 1 + 1 + 3, "{pruned:?}");

    for (table, column) in [
        ("outbox", "task_id"),
        ("idempotency_keys", "key"),
        ("processed_webhook_events", "event_id"),
    ] {
        let sql = format!("SELECT count(*) FROM {table} WHERE {column} LIKE 'gone:%'");
        assert_eq!(h.scalar(&sql).await, 0, "{table}");
    }
    assert_eq!(
        h.scalar("SELECT count(*) FROM outbox WHERE task_id LIKE 'kept:%'")
            .await,
        6
    );
    assert_eq!(
        h.scalar("SELECT count(*) FROM admin_sessions WHERE token_hash = repeat('a', 64)")
            .await,
        0,
        "an expired dashboard session goes"
    );
    assert_eq!(
        h.scalar("SELECT count(*) FROM admin_sessions WHERE token_hash = repeat('b', 64)")
            .await,
        1,
        "a live one stays"
    );
    assert_eq!(
        h.scalar("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'kept:%'")
            .await,
        1
    );
    assert_eq!(
        h.scalar("SELECT count(*) FROM processed_webhook_events WHERE event_id LIKE 'kept:%'")
            .await,
        1
    );
    // Runs older than 30 days go, but never an entry's latest.
    let sweeps: Vec<_> = h
        .runs("sweep")
        .await
        .iter()
        .map(|r| (now - r.tick).num_days())
        .collect();
    assert_eq!(sweeps, [2]);
    assert_eq!(h.runs("retention").await.len(), 1);
    assert_eq!(h.runs("reminders").await.len(), 1);
}
