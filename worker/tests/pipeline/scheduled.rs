//! The scheduler's jobs, run by the worker: a reminder goes out once however many ticks ask
//! for it, and the sweep expires a booking whose expiry job was lost.

use std::time::Duration;

use chrono::Utc;
use orderly_db::users::Role;
use orderly_jobs::outbox::{self, NewJob};
use orderly_jobs::{Reminders, Sweep};
use orderly_testing::wait_until;
use sea_orm::ConnectionTrait;

use crate::harness::Pipeline;

#[tokio::test]
async fn a_reminder_goes_out_once_by_email_and_sms_when_its_tick_runs_twice() {
    let p = Pipeline::new(&[]).await;
    let listing = p.listing(5).await;
    p.db.execute_unprepared(&format!(
        "UPDATE listings SET starts_at = now() + interval '5 hours' WHERE id = '{}'",
        listing.id
    ))
    .await
    .unwrap();
    let customer = p.user(Role::Customer, Some("+4915112345678")).await;
    let booking = p.book(&customer, &listing, 1).await;
    let tick = Utc::now();
    let ticks = [tick, tick + chrono::Duration::minutes(15)].map(|tick| {
        NewJob::of(
            &Reminders {
                tick,
                lead_hours: 24,
            },
            None,
            None,
        )
        .unwrap()
    });
    assert_eq!(outbox::enqueue_many(&p.db, &ticks).await.unwrap(), 2);
    let _worker = p.spawn_worker(&[]);

    wait_until("both ticks ran", Duration::from_secs(30), || async {
        p.scalar("SELECT count(*) FROM outbox WHERE job_type = 'reminders' AND status = 'done'")
            .await
            == 2
    })
    .await;
    p.wait_until_drained(Duration::from_secs(30)).await;
    let reminders: Vec<_> = p
        .mails()
        .into_iter()
        .filter(|m| m.contains("Coming up soon"))
        .collect();
    assert_eq!(reminders.len(), 1);
    assert!(reminders[0].contains(&booking.to_string()));
    let sms = std::fs::read_to_string(p.data_dir.join("sms.log")).unwrap();
    assert_eq!(
        sms.lines().filter(|l| l.contains("reminder")).count(),
        1,
        "{sms}"
    );
}

#[tokio::test]
async fn the_sweep_expires_a_booking_whose_expiry_job_was_lost() {
    let p = Pipeline::new(&[("SIMULATED_PAYMENTS", "never")]).await;
    let listing = p.listing(5).await;
    let customer = p.user(Role::Customer, None).await;
    let booking = p.book(&customer, &listing, 2).await;
    // Its hold ended two minutes ago, and its expire_booking job is gone.
    p.db.execute_unprepared(&format!(
        "UPDATE bookings SET hold_expires_at = now() - interval '2 minutes' WHERE id = '{booking}';
         DELETE FROM outbox WHERE task_id = 'expire_booking:{booking}'"
    ))
    .await
    .unwrap();
    outbox::enqueue(&p.db, &Sweep { tick: Utc::now() }, None, None)
        .await
        .unwrap();
    let _worker = p.spawn_worker(&[]);

    wait_until("the booking expired", Duration::from_secs(30), || async {
        p.text(&format!(
            "SELECT status FROM bookings WHERE id = '{booking}'"
        ))
        .await
        .as_deref()
            == Some("expired")
    })
    .await;
    assert_eq!(
        p.scalar(&format!(
            "SELECT seats_left::bigint FROM listings WHERE id = '{}'",
            listing.id
        ))
        .await,
        5
    );
}
