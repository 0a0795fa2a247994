//! Unpaid bookings expire on time and give their seats back once.

use std::time::Duration;

use orderly_db::users::Role;
use orderly_domain::bookings;
use orderly_testing::wait_until;

use crate::harness::Pipeline;

#[tokio::test]
async fn an_unpaid_booking_expires_within_two_seconds_of_its_hold_and_returns_its_seats_once() {
    let p = Pipeline::new(&[
        ("SIMULATED_PAYMENTS", "never"),
        ("BOOKING_HOLD_SECONDS", "2"),
    ])
    .await;
    let listing = p.listing(5).await;
    let customer = p.user(Role::Customer, None).await;
    let _worker = p.spawn_worker(&[]);
    let id = p.book(&customer, &listing, 3).await;
    assert_eq!(
        p.scalar(&format!(
            "SELECT seats_left::bigint FROM listings WHERE id = '{}'",
            listing.id
        ))
        .await,
        2
    );

    wait_until("the booking expired", Duration::from_secs(10), || async {
        p.text(&format!("SELECT status FROM bookings WHERE id = '{id}'"))
            .await
            .as_deref()
            == Some("expired")
    })
    .await;
    let lateness_ms = p
        .scalar(&format!(
            "SELECT (extract(epoch FROM expired_at - hold_expires_at) * 1000)::bigint FROM bookings WHERE id = '{id}'"
        ))
        .await;
    assert!(
        (0..2000).contains(&lateness_ms),
        "expired {lateness_ms} ms after the hold"
    );
    assert_eq!(
        p.scalar(&format!(
            "SELECT seats_left::bigint FROM listings WHERE id = '{}'",
            listing.id
        ))
        .await,
        5
    );

    // The job running again (a redelivery) changes nothing.
    assert!(!bookings::expire(&p.db, id, None).await.unwrap());
    assert_eq!(
        p.scalar(&format!(
            "SELECT seats_left::bigint FROM listings WHERE id = '{}'",
            listing.id
        ))
        .await,
        5
    );

    p.wait_until_drained(Duration::from_secs(10)).await;
    assert_eq!(
        p.text(&format!(
            "SELECT status FROM payments WHERE booking_id = '{id}'"
        ))
        .await
        .as_deref(),
        Some("cancelled")
    );
    let mail = p.mails();
    assert_eq!(
        mail.iter()
            .filter(|m| m.contains("hold has expired"))
            .count(),
        1
    );
}
