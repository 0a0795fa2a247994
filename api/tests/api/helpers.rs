//! `spawn_app()`: the real API against a fresh database cloned from a migrated template.

use std::collections::HashMap;
use std::sync::Arc;

use orderly_api::auth::TokenKeys;
use orderly_api::startup::Application;
use orderly_core::Settings;
use orderly_testing::test_id;
pub use orderly_testing::{RedisServer, create_test_database, env};
use reqwest::{RequestBuilder, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

/// A running API and handles on its own database and Redis namespace.
pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub client: reqwest::Client,
    pub tokens: TokenKeys,
}

/// A signed-up user with live tokens.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

impl TestUser {
    /// The user in a register or login answer (`{"user", "access", "refresh"}`).
    fn from_auth_body(email: &str, password: &str, body: &Value) -> Self {
        Self {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            email: email.to_owned(),
            password: password.to_owned(),
            access: body["access"].as_str().unwrap().to_owned(),
            refresh: body["refresh"].as_str().unwrap().to_owned(),
        }
    }
}

/// Starts the API with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the API with some variables overridden.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let test_id = test_id();
    let database_url = create_test_database(&test_id).await;
    let data_dir = std::env::temp_dir().join(format!("orderly-test-{test_id}"));
    let mut vars: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.clone()),
        ("REDIS_URL".into(), env("REDIS_URL")),
        ("REDIS_PREFIX".into(), format!("test:{test_id}")),
        ("API_ADDR".into(), "127.0.0.1:0".into()),
        (
            "JWT_SECRET".into(),
            "test-secret-that-is-at-least-32-bytes-long".into(),
        ),
        ("DATA_DIR".into(), data_dir.display().to_string()),
        // Tests register and book from one address faster than the production limits
        // allow; the tests of those limits set their own.
        ("RATE_LIMIT_REGISTRATIONS_PER_HOUR".into(), "10000".into()),
        ("RATE_LIMIT_BOOKINGS_PER_MINUTE".into(), "10000".into()),
    ]);
    for (k, v) in overrides {
        vars.insert((*k).into(), (*v).into());
    }
    let settings = Settings::from_map(&vars).expect("test settings");
    if std::env::var("TEST_LOG").is_ok() {
        let _telemetry = orderly_core::telemetry::init("orderly-api-test", &settings);
    }
    let tokens = TokenKeys::new(settings.jwt_key());
    let app = Application::build(settings.clone())
        .await
        .expect("the API starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let db = Database::connect(&database_url)
        .await
        .expect("test database");
    TestApp {
        address,
        database_url,
        db,
        settings: Arc::new(settings),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        tokens,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends `req`, with `token` as its bearer token if given.
    async fn send(req: RequestBuilder, token: Option<&str>) -> Response {
        let req = match token {
            Some(token) => req.bearer_auth(token),
            None => req,
        };
        req.send().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        Self::send(self.client.get(self.url(path)), token).await
    }

    /// The JSON body of a GET, whatever its status.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> Value {
        self.get(path, token).await.json().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        Self::send(self.client.post(self.url(path)).json(body), token).await
    }

    /// Posts JSON with an `Idempotency-Key` header.
    pub async fn post_json_with_key(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
        key: &str,
    ) -> Response {
        let req = self
            .client
            .post(self.url(path))
            .header("Idempotency-Key", key)
            .json(body);
        Self::send(req, token).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        Self::send(self.client.patch(self.url(path)).json(body), token).await
    }

    /// Posts raw bytes with a given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Response {
        let req = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        Self::send(req, token).await
    }

    /// Registers a user with a given role (`customer` or `provider`).
    pub async fn register(&self, role: &str) -> TestUser {
        let email = format!("{}-{}@example.com", role, Uuid::new_v4().simple());
        let password = "correct horse battery".to_owned();
        let resp = self
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": email, "password": password, "name": "Test User", "role": role}),
                None,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        TestUser::from_auth_body(&email, &password, &body)
    }

    /// Makes an admin directly in the database (the API never does) and signs it in.
    pub async fn admin(&self) -> TestUser {
        let user = self.register("customer").await;
        self.db
            .execute_unprepared(&format!(
                "UPDATE users SET role = 'admin' WHERE id = '{}'",
                user.id
            ))
            .await
            .unwrap();
        self.login(&user.email, &user.password).await
    }

    /// A login attempt, whatever its outcome.
    pub async fn try_login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    /// A login attempt sent through a proxy that wrote `x_forwarded_for`.
    pub async fn try_login_via(
        &self,
        x_forwarded_for: &str,
        email: &str,
        password: &str,
    ) -> Response {
        self.client
            .post(self.url("/api/v1/auth/login"))
            .header("x-forwarded-for", x_forwarded_for)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Logs in, asserting it succeeds.
    pub async fn login(&self, email: &str, password: &str) -> TestUser {
        let resp = self.try_login(email, password).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        TestUser::from_auth_body(email, password, &body)
    }

    /// Exchanges a refresh token, whatever the outcome.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh": refresh_token}),
            None,
        )
        .await
    }

    /// A listing body starting in 30 days; `changes` overrides fields.
    pub fn listing_body(&self, changes: Value) -> Value {
        let mut body = json!({
            "title": "Pottery workshop",
            "description": "Two hours at the wheel",
            "starts_at": (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339(),
            "capacity": 10,
            "price_cents": 2500,
            "currency": "eur",
        });
        if let (Some(body), Some(changes)) = (body.as_object_mut(), changes.as_object()) {
            for (k, v) in changes {
                body.insert(k.clone(), v.clone());
            }
        }
        body
    }

    /// Creates a listing as `provider` and returns it.
    pub async fn create_listing(&self, provider: &TestUser, changes: Value) -> Value {
        let resp = self
            .post_json(
                "/api/v1/listings",
                &self.listing_body(changes),
                Some(&provider.access),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.unwrap()
    }

    /// Rows in a table of this test's database.
    pub async fn count(&self, table: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                format!("SELECT count(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }
}

/// Asserts a problem response with `status` and `code`; returns its body.
pub async fn assert_problem(resp: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status, "unexpected status");
    let content_type = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "problem: {body}");
    assert_eq!(body["status"], status.as_u16(), "problem: {body}");
    assert!(
        body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(),
        "problem: {body}"
    );
    body
}

/// The `field`s listed in a problem's `errors`.
pub fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
