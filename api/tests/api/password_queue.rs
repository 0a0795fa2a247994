//! The bounded queue in front of password hashing (`PASSWORD_HASH_QUEUE`): a burst past it
//! is refused at once with `503` and `Retry-After`, and service is normal after it.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn a_flood_of_logins_past_the_hash_queue_gets_503_with_retry_after_then_service_resumes() {
    let app = spawn_app_with(&[
        ("PASSWORD_HASH_QUEUE", "1"),
        ("LOGIN_MAX_FAILURES_PER_CLIENT", "1000"),
    ])
    .await;
    let user = app.register("customer").await;

    // Each a different e-mail, so that no login limit is reached; an unknown one is checked
    // against a dummy hash, so each costs a hash all the same.
    let emails: Vec<String> = (0..16)
        .map(|i| format!("nobody-{i}-{}@example.com", uuid::Uuid::new_v4().simple()))
        .collect();
    let flood: Vec<_> = emails
        .iter()
        .map(|email| app.try_login(email, "correct horse battery"))
        .collect();
    let answers = futures::future::join_all(flood).await;
    let mut refused = 0;
    for resp in answers {
        match resp.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                assert!(resp.headers().contains_key("retry-after"), "Retry-After");
                let problem: Value = resp.json().await.unwrap();
                assert_eq!(problem["code"], "unavailable", "{problem}");
            }
            other => panic!("unexpected {other}: {}", resp.text().await.unwrap()),
        }
    }
    assert!(refused > 0, "16 logins at once through a queue of 1");

    // The burst is over: every login is served again, one after another.
    for _ in 0..3 {
        assert_eq!(
            app.try_login(&user.email, &user.password).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_login_refused_for_a_full_hash_queue_does_not_count_against_the_client() {
    let app = spawn_app_with(&[
        ("PASSWORD_HASH_QUEUE", "1"),
        ("LOGIN_MAX_FAILURES_PER_CLIENT", "20"),
    ])
    .await;
    let emails: Vec<String> = (0..16).map(|i| format!("flood-{i}@example.com")).collect();
    let flood: Vec<_> = emails
        .iter()
        .map(|email| app.try_login(email, "whatever pw"))
        .collect();
    let refused = futures::future::join_all(flood)
        .await
        .iter()
        .filter(|resp| resp.status() == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(refused > 0, "16 logins at once through a queue of 1");
    // Only the attempts that reached a password count: the client has this many left.
    let left = 20 - (16 - refused);
    for i in 0..left {
        let resp = app
            .try_login(&format!("later-{i}@example.com"), "whatever pw")
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {i} of {left}"
        );
    }
    let past = app.try_login("one-more@example.com", "whatever pw").await;
    assert_eq!(past.status(), StatusCode::TOO_MANY_REQUESTS);
}
