//! Transient failures retry with growing delays up to a limit; permanent ones do not.

use std::time::Duration;

use orderly_db::users::Role;
use orderly_testing::wait_until;
use serde_json::json;

use crate::fakes::FakeTwilio;
use crate::harness::Pipeline;

async fn sms_pipeline(twilio: &FakeTwilio) -> Pipeline {
    let env = twilio.env();
    let vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Pipeline::new(&vars).await
}

#[tokio::test]
async fn a_transient_failure_retries_with_growing_delays_then_dies_keeping_its_error() {
    let twilio = FakeTwilio::start(
        503,
        json!({"code": 20500, "message": "Service unavailable"}),
    )
    .await;
    let p = sms_pipeline(&twilio).await;
    let listing = p.listing(5).await;
    let customer = p.user(Role::Customer, Some("+4915112345678")).await;
    p.book(&customer, &listing, 1).await;
    let _worker = p.spawn_worker(&[("JOB_RETRY_BASE_DELAY_MS", "50"), ("JOB_MAX_ATTEMPTS", "8")]);

    wait_until("the SMS job is dead", Duration::from_secs(40), || async {
        p.text("SELECT status FROM outbox WHERE job_type = 'send_sms'")
            .await
            .as_deref()
            == Some("dead")
    })
    .await;
    assert_eq!(
        p.scalar("SELECT attempts::bigint FROM outbox WHERE job_type = 'send_sms'")
            .await,
        8
    );
    let error = p
        .text("SELECT last_error FROM outbox WHERE job_type = 'send_sms'")
        .await
        .unwrap();
    assert!(
        error.contains("gave up after 8 attempts") && error.contains("503"),
        "{error}"
    );
    let note_error = p
        .text("SELECT last_error FROM notifications WHERE channel = 'sms'")
        .await
        .unwrap();
    assert!(note_error.contains("503"), "{note_error}");

    let arrivals = twilio.requests();
    assert_eq!(arrivals.len(), 8);
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    // Delays double from 50 ms (each a random point in the upper half): 25-50 ms first, 1.6-3.2 s last.
    assert!(gaps[0] < Duration::from_millis(1000), "{gaps:?}");
    assert!(gaps[6] >= Duration::from_millis(1600), "{gaps:?}");
    for pair in gaps.windows(2).skip(2) {
        assert!(pair[1] * 10 >= pair[0] * 8, "delays must grow: {gaps:?}");
    }
}

#[tokio::test]
async fn a_permanent_failure_goes_straight_to_dead() {
    let twilio = FakeTwilio::start(
        400,
        json!({"code": 21211, "message": "Invalid 'To' Phone Number"}),
    )
    .await;
    let p = sms_pipeline(&twilio).await;
    let listing = p.listing(5).await;
    let customer = p.user(Role::Customer, Some("+4915112345678")).await;
    p.book(&customer, &listing, 1).await;
    let _worker = p.spawn_worker(&[("JOB_RETRY_BASE_DELAY_MS", "50"), ("JOB_MAX_ATTEMPTS", "8")]);
    wait_until("the SMS job is dead", Duration::from_secs(20), || async {
        p.text("SELECT status FROM outbox WHERE job_type = 'send_sms'")
            .await
            .as_deref()
            == Some("dead")
    })
    .await;
    assert_eq!(
        p.scalar("SELECT attempts::bigint FROM outbox WHERE job_type = 'send_sms'")
            .await,
        1
    );
    assert_eq!(twilio.requests().len(), 1);
    assert_eq!(
        p.text("SELECT status FROM notifications WHERE channel = 'sms'")
            .await
            .as_deref(),
        Some("failed")
    );
    let error = p
        .text("SELECT last_error FROM outbox WHERE job_type = 'send_sms'")
        .await
        .unwrap();
    assert!(error.contains("21211"), "{error}");
}
