//! Registration, login, token refresh and logout, and every way they refuse bad input.

use chrono::Utc;
use orderly_api::auth::AccessClaims;
use orderly_db::users::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, fields, spawn_app, spawn_app_with};

fn new_user(email: &str) -> Value {
    json!({"email": email, "password": "correct horse battery", "name": "Ada"})
}

#[tokio::test]
async fn registering_returns_the_user_and_working_tokens() {
    let app = spawn_app().await;
    let resp = app
        .post_json("/api/v1/auth/register", &json!({"email": " Ada@Example.COM ", "password": "correct horse battery", "name": "Ada", "phone": "+4915112345678"}), None)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["user"]["role"], "customer");
    assert_eq!(body["user"]["phone"], "+4915112345678");
    assert!(body["user"].get("password_hash").is_none());
    let me = app.get("/api/v1/me", body["access"].as_str()).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json::<Value>().await.unwrap()["id"], body["user"]["id"]);
}

#[tokio::test]
async fn a_provider_can_register_but_an_admin_cannot() {
    let app = spawn_app().await;
    let provider = app.register("provider").await;
    let me = app.get_json("/api/v1/me", Some(&provider.access)).await;
    assert_eq!(me["role"], "provider");

    let mut body = new_user("boss@example.com");
    body["role"] = json!("admin");
    let problem = assert_problem(
        app.post_json("/api/v1/auth/register", &body, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(fields(&problem), ["role"]);
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn bad_registrations_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"email": "a@example.com", "password": "short", "name": "A"}),
            "password",
        ),
        (
            json!({"email": "not-an-email", "password": "correct horse battery", "name": "A"}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "password": "correct horse battery", "name": "A", "phone": "0151 123"}),
            "phone",
        ),
        (
            json!({"email": "a@example.com", "password": "correct horse battery", "name": ""}),
            "name",
        ),
        (
            json!({"email": "a@example.com", "password": "correct horse battery", "name": "   "}),
            "name",
        ),
        (
            json!({"email": "a@example.com", "password": "correct horse battery", "name": "A\u{0}B"}),
            "name",
        ),
        (
            json!({"email": "a@example.com", "password": "correct horse battery"}),
            "name",
        ),
        (
            json!({"email": "a@example.com", "password": "correct horse battery", "name": "A", "is_admin": true}),
            "is_admin",
        ),
        (
            json!({"email": "a@example.com", "password": 1234567890123_i64, "name": "A"}),
            "password",
        ),
    ];
    for (body, field) in cases {
        let problem = assert_problem(
            app.post_json("/api/v1/auth/register", &body, None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(fields(&problem), [field], "{body}");
    }
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn an_e_mail_can_be_registered_once_whatever_its_case() {
    let app = spawn_app().await;
    let resp = app
        .post_json("/api/v1/auth/register", &new_user("ada@example.com"), None)
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = app
        .post_json("/api/v1/auth/register", &new_user("ADA@example.com"), None)
        .await;
    assert_problem(resp, StatusCode::CONFLICT, "email_taken").await;
    assert_eq!(app.count("users").await, 1);
}

#[tokio::test]
async fn malformed_json_is_400_and_the_wrong_content_type_is_415() {
    let app = spawn_app().await;
    let resp = app
        .post_raw(
            "/api/v1/auth/register",
            "application/json",
            b"{\"email\": ".to_vec(),
            None,
        )
        .await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "malformed_json").await;
    let resp = app
        .post_raw(
            "/api/v1/auth/register",
            "text/plain",
            new_user("a@example.com").to_string().into_bytes(),
            None,
        )
        .await;
    assert_problem(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413() {
    let app = spawn_app().await;
    let mut body = new_user("a@example.com");
    body["name"] = json!("x".repeat(1024 * 1024 + 10));
    let resp = app.post_json("/api/v1/auth/register", &body, None).await;
    assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn login_succeeds_with_the_right_password_only() {
    let app = spawn_app().await;
    let user = app.register("customer").await;
    let ok = app.login(&user.email.to_uppercase(), &user.password).await;
    assert_eq!(ok.id, user.id);

    let wrong = app.try_login(&user.email, "wrong password!").await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let unknown = app.try_login("nobody@example.com", "whatever pw").await;
    assert_problem(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn five_failed_logins_for_an_e_mail_from_one_client_limit_that_client_with_retry_after() {
    let app = spawn_app().await;
    let user = app.register("customer").await;
    for _ in 0..5 {
        assert_eq!(
            app.try_login(&user.email, "wrong password!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = app.try_login(&user.email, "correct horse battery").await;
    let retry_after: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_problem(locked, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn wrong_passwords_for_a_victim_from_one_client_never_stop_the_victim_from_another() {
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.0/8, ::1")]).await;
    let victim = app.register("customer").await;
    let attacker = "203.0.113.66";
    let mut refused = 0;
    for _ in 0..12 {
        let resp = app
            .try_login_via(attacker, &victim.email, "a wrong guess")
            .await;
        match resp.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("{other}"),
        }
    }
    assert_eq!(refused, 7, "the attacker is refused after 5 failures");
    // The victim, elsewhere, with the right password: slowed at most, never refused.
    let started = std::time::Instant::now();
    let own = app
        .try_login_via("198.51.100.20", &victim.email, &victim.password)
        .await;
    assert_eq!(own.status(), StatusCode::OK);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn with_redis_unreachable_login_limits_count_in_the_process_and_login_works() {
    let mut redis = crate::helpers::RedisServer::start().await;
    let app = spawn_app_with(&[
        ("REDIS_URL", redis.url.clone().as_str()),
        ("LOGIN_MAX_FAILURES_PER_EMAIL", "2"),
    ])
    .await;
    let user = app.register("customer").await;
    redis.stop();
    assert_eq!(
        app.try_login(&user.email, &user.password).await.status(),
        StatusCode::OK,
        "no 503 for want of a counter"
    );
    for _ in 0..2 {
        let resp = app.try_login(&user.email, "wrong password!").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = app.try_login(&user.email, &user.password).await;
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn failures_from_one_client_address_are_limited_across_e_mails() {
    let app = spawn_app_with(&[("LOGIN_MAX_FAILURES_PER_CLIENT", "3")]).await;
    for i in 0..3 {
        let resp = app
            .try_login(&format!("u{i}@example.com"), "whatever pw")
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = app.try_login("fresh@example.com", "whatever pw").await;
    assert_problem(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_limited_and_spoofed_hops_change_nothing() {
    // The test client's loopback address plays the ingress.
    let app = spawn_app_with(&[("TRUSTED_PROXIES", "127.0.0.0/8, ::1")]).await;
    let user = app.register("customer").await;
    let mut limited = 0;
    for i in 0..60 {
        // The attacker rotates the leftmost hop, which it writes itself.
        let forwarded = format!("198.51.100.{i}, 203.0.113.7");
        let resp = app
            .try_login_via(&forwarded, &format!("guess{i}@example.com"), "whatever pw")
            .await;
        match resp.status() {
            StatusCode::UNAUTHORIZED => assert!(i < 50, "attempt {i} was not limited"),
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("attempt {i}: {other}"),
        }
    }
    assert_eq!(limited, 10, "the 51st to 60th failures are refused");
    let spoofed = app
        .try_login_via("192.0.2.200, 203.0.113.7", &user.email, &user.password)
        .await;
    assert_problem(spoofed, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let other_client = app
        .try_login_via("203.0.113.8", &user.email, &user.password)
        .await;
    assert_eq!(other_client.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let app = spawn_app_with(&[("LOGIN_MAX_FAILURES_PER_CLIENT", "2")]).await;
    for i in 0..2 {
        let resp = app
            .try_login_via(
                &format!("203.0.113.{i}"),
                &format!("u{i}@example.com"),
                "whatever pw",
            )
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = app
        .try_login_via("203.0.113.99", "fresh@example.com", "whatever pw")
        .await;
    assert_problem(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn the_login_limit_holds_across_api_replicas_sharing_redis() {
    let first = spawn_app().await;
    let prefix = first.settings.redis_prefix.clone();
    let second = spawn_app_with(&[
        ("REDIS_PREFIX", prefix.as_str()),
        ("LOGIN_MAX_FAILURES_PER_EMAIL", "2"),
    ])
    .await;
    let (email, password) = ("ada@example.com", "whatever pw");
    assert_eq!(
        first.try_login(email, password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        second.try_login(email, password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_problem(
        second.try_login(email, password).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
}

#[tokio::test]
async fn of_two_concurrent_refreshes_of_one_token_exactly_one_succeeds_and_the_login_is_revoked() {
    let app = spawn_app().await;
    let user = app.register("customer").await;
    for _ in 0..5 {
        let login = app.login(&user.email, &user.password).await;
        let (a, b) = tokio::join!(app.refresh(&login.refresh), app.refresh(&login.refresh));
        let statuses = [a.status(), b.status()];
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(ok, 1, "{statuses:?}");
        let (winner, loser) = if a.status() == StatusCode::OK {
            (a, b)
        } else {
            (b, a)
        };
        assert_problem(loser, StatusCode::UNAUTHORIZED, "token_reused").await;
        let next: Value = winner.json().await.unwrap();
        let after = app.refresh(next["refresh"].as_str().unwrap()).await;
        assert_eq!(
            after.status(),
            StatusCode::UNAUTHORIZED,
            "the reuse revoked the winner's successor too"
        );
    }
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_stops_working() {
    let app = spawn_app().await;
    let user = app.register("customer").await;
    let resp = app.refresh(&user.refresh).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let pair: Value = resp.json().await.unwrap();
    assert_ne!(pair["refresh"], user.refresh.as_str());
    assert_eq!(
        app.get("/api/v1/me", pair["access"].as_str())
            .await
            .status(),
        StatusCode::OK
    );

    let again = app.refresh(&user.refresh).await;
    assert_problem(again, StatusCode::UNAUTHORIZED, "token_reused").await;
}

#[tokio::test]
async fn reusing_a_refresh_token_revokes_its_successors_too() {
    let app = spawn_app().await;
    let user = app.register("customer").await;
    let pair: Value = app.refresh(&user.refresh).await.json().await.unwrap();
    // The stolen old token is replayed: the family dies, so the thief's victim must log in again.
    app.refresh(&user.refresh).await;
    let successor = app.refresh(pair["refresh"].as_str().unwrap()).await;
    assert_problem(successor, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

#[tokio::test]
async fn an_unknown_refresh_token_is_401() {
    let app = spawn_app().await;
    let resp = app.refresh("made-up").await;
    assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let app = spawn_app().await;
    let user = app.register("customer").await;
    let resp = app
        .post_json(
            "/api/v1/auth/logout",
            &json!({"refresh": user.refresh}),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = app.refresh(&user.refresh).await;
    assert_problem(resp, StatusCode::UNAUTHORIZED, "token_revoked").await;
}

#[tokio::test]
async fn me_needs_a_valid_unexpired_token() {
    let app = spawn_app().await;
    let user = app.register("customer").await;
    assert_problem(
        app.get("/api/v1/me", None).await,
        StatusCode::UNAUTHORIZED,
        "not_authenticated",
    )
    .await;
    assert_problem(
        app.get("/api/v1/me", Some("not.a.jwt")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    let forged = orderly_api::auth::TokenKeys::new(b"another-secret-of-at-least-32-bytes!!")
        .issue_access(user.id, Role::Admin, Utc::now())
        .unwrap();
    assert_problem(
        app.get("/api/v1/me", Some(&forged)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    let now = Utc::now().timestamp();
    let expired = app
        .tokens
        .sign(&AccessClaims {
            sub: user.id,
            role: Role::Customer,
            iat: now - 7200,
            exp: now - 3600,
            iss: "orderly".into(),
        })
        .unwrap();
    assert_problem(
        app.get("/api/v1/me", Some(&expired)).await,
        StatusCode::UNAUTHORIZED,
        "token_expired",
    )
    .await;
}

#[tokio::test]
async fn create_admin_makes_an_admin_from_a_password_on_stdin() {
    use std::io::Write;
    let app = spawn_app().await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_orderly-api"))
        .args([
            "create-admin",
            "--email",
            "root@example.com",
            "--password-stdin",
        ])
        .env("DATABASE_URL", &app.database_url)
        .env("REDIS_URL", std::env::var("REDIS_URL").unwrap())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long admin password\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let admin = app.login("root@example.com", "a long admin password").await;
    let me = app.get_json("/api/v1/me", Some(&admin.access)).await;
    assert_eq!(me["role"], "admin");
}
