//! `spawn_app()`: the real API against a fresh database cloned from a migrated template.

use std::collections::HashMap;
use std::sync::Arc;

use orderly_api::auth::TokenKeys;
use orderly_api::startup::Application;
use orderly_migrations::{Migrator, MigratorTrait};
use orderly_shared::Settings;
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

/// Advisory lock key serialising template creation and cloning across test processes.
const TEMPLATE_LOCK: i64 = 7_301_977;

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

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with deploy/test.sh, which starts PostgreSQL and Redis")
    })
}

/// Starts the API with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the API with some variables overridden.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let test_id = Uuid::new_v4().simple().to_string();
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
    ]);
    for (k, v) in overrides {
        vars.insert((*k).into(), (*v).into());
    }
    let settings = Settings::from_map(&vars).expect("test settings");
    if std::env::var("TEST_LOG").is_ok() {
        let _telemetry = orderly_shared::telemetry::init("orderly-api-test", &settings);
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

/// Creates `orderly_test_<id>` from the template (made on first use) and returns its URL.
async fn create_test_database(test_id: &str) -> String {
    let admin_url = env("DATABASE_URL");
    let template =
        std::env::var("TEST_TEMPLATE_DATABASE").unwrap_or_else(|_| "orderly_test_template".into());
    let admin = Database::connect(&admin_url).await.expect("admin database");
    let backend = admin.get_database_backend();
    admin
        .execute_raw(Statement::from_string(
            backend,
            format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"),
        ))
        .await
        .unwrap();
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT 1 AS one FROM pg_database WHERE datname = $1",
            [template.clone().into()],
        ))
        .await
        .unwrap()
        .is_some();
    if !exists {
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{template}\""))
            .await
            .unwrap();
        let template_db = Database::connect(with_database(&admin_url, &template))
            .await
            .unwrap();
        Migrator::up(&template_db, None)
            .await
            .expect("migrating the template");
        template_db.close().await.unwrap();
    }
    let name = format!("orderly_test_{test_id}");
    admin
        .execute_unprepared(&format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\" STRATEGY FILE_COPY"
        ))
        .await
        .expect("cloning the template database");
    admin
        .execute_raw(Statement::from_string(
            backend,
            format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"),
        ))
        .await
        .unwrap();
    admin.close().await.unwrap();
    with_database(&admin_url, &name)
}

fn with_database(url: &str, name: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A private `redis-server` for tests that stop or empty their Redis.
pub struct RedisServer {
    pub url: String,
    child: std::process::Child,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub async fn start() -> Self {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting redis-server (REDIS_SERVER_BIN)");
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).unwrap();
        wait_until("redis-server answers", || {
            let client = client.clone();
            async move { client.get_multiplexed_async_connection().await.is_ok() }
        })
        .await;
        Self { url, child }
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `check` every 20 ms until it is true; panics after 10 s.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    pub async fn patch_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut req = self.client.patch(self.url(path)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
    }

    /// Posts raw bytes with a given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Response {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.unwrap()
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
        TestUser {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            email,
            password,
            access: body["access"].as_str().unwrap().to_owned(),
            refresh: body["refresh"].as_str().unwrap().to_owned(),
        }
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

    pub async fn login(&self, email: &str, password: &str) -> TestUser {
        let resp = self
            .post_json(
                "/api/v1/auth/login",
                &json!({"email": email, "password": password}),
                None,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        TestUser {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            email: email.to_owned(),
            password: password.to_owned(),
            access: body["access"].as_str().unwrap().to_owned(),
            refresh: body["refresh"].as_str().unwrap().to_owned(),
        }
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
