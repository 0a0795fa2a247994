//! A fake Stripe API for tests (feature `testing`): an HTTP server on loopback that the real
//! client (async-stripe, built with `stripe::ClientBuilder::new(key).url(fake.base_url())`)
//! talks to, serving objects shaped like Stripe's own (see `shared/fixtures/stripe/`), with
//! Stripe's idempotency rules, fault injection, observation and signed webhooks.
//!
//! # What it serves
//! - `POST /v1/payment_intents` (form: `amount`, `currency`, `capture_method`, `metadata[..]`,
//!   `automatic_payment_methods[enabled]` or `payment_method_types[]`, `description`, ...)
//!   → a PaymentIntent in `requires_payment_method`.
//! - `GET /v1/payment_intents/{id}`, `GET /v1/charges/{id}`, `GET /v1/refunds/{id}`.
//! - `POST /v1/payment_intents/{id}/capture` (`amount_to_capture` optional): only from
//!   `requires_capture`, else 400 `payment_intent_unexpected_state`.
//! - `POST /v1/payment_intents/{id}/cancel` (`cancellation_reason` optional): from
//!   `requires_payment_method`, `requires_capture`, `requires_confirmation`, `requires_action`
//!   or `processing`, else 400 `payment_intent_unexpected_state`.
//! - `POST /v1/refunds` (`payment_intent` or `charge`, `amount` optional): only for a
//!   `succeeded` PaymentIntent (else 400 `charge_not_refundable`); 400
//!   `charge_already_refunded` when nothing is left, 400 `amount_too_large` when the amount
//!   exceeds what is left (Stripe's own codes for these two cases).
//!
//! Every request needs `Authorization: Bearer <secret_key()>` (else 401). Errors have
//! Stripe's shape: `{"error": {"type", "code", "message", "param", "decline_code", ...}}`.
//! The customer's side (paying, a declined card) is driven from the test:
//! [`FakeStripe::authorize`], [`FakeStripe::decline`].
//!
//! # Idempotency (as Stripe documents it)
//! A `POST` with an `Idempotency-Key` header whose request *began executing* stores its answer
//! (status and body, errors included) under the key (per API key). A later request with the
//! same key, endpoint and parameters gets that answer again, with `Idempotent-Replayed: true`
//! and `Original-Request: <request id>`, without executing. The same key on another endpoint or
//! with other parameters is refused: 400 `idempotency_error`. Answers that did not begin
//! executing are not stored: 401, unknown objects (404), invalid parameters (400), and injected
//! 429/503/... failures; see [`FakeStripe::fail_next`] for the stored 500.
//!
//! Replays and idempotency refusals are decided before fault injection: faults only apply to
//! requests that would execute, and a replay never consumes one.
//!
//! # Faults
//! Each fault applies to the next `n` requests that match a [`Target`] (a [`Kind`], or a
//! method and path pattern) and would execute. Pre-execution faults ([`FakeStripe::fail_next`],
//! [`FakeStripe::decline_on_create`]) are checked first; then the request executes; then
//! [`FakeStripe::lose_answer_after_processing`] or else [`FakeStripe::delay_next`] apply.
//!
//! # Observation
//! [`FakeStripe::calls`] counts every request that arrived (replays, refusals and injected
//! failures included); [`FakeStripe::executions`] counts the requests that executed and
//! succeeded (2xx: for POSTs, those that changed state), never replays or injected failures.
//! [`FakeStripe::requests`] is the full log.
//!
//! # Use
//! ```ignore
//! let fake = FakeStripe::start().await;
//! let client = stripe::ClientBuilder::new(fake.secret_key()).url(fake.base_url()).build()?;
//! // ... or give the code under test fake.env("whsec_test") ...
//! let pi = fake.intents_for_booking("b-1").remove(0);
//! let pi = fake.authorize(pi["id"].as_str().unwrap());
//! let (payload, signature) = fake
//!     .webhooks("whsec_test")
//!     .event("payment_intent.amount_capturable_updated", pi);
//! // POST payload with `Stripe-Signature: <signature>` to the webhook endpoint.
//! fake.lose_answer_after_processing(Kind::Capture, 1);
//! assert_eq!(fake.executions(Kind::Capture), 1);
//! ```

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// The secret key the fake accepts (`Authorization: Bearer sk_test_fake`).
pub const SECRET_KEY: &str = "sk_test_fake";

/// The API version of async-stripe 1.0.0-rc.10 (`stripe_shared::version::VERSION`), put in
/// events and in the `Stripe-Version` response header.
pub const API_VERSION: &str = "2026-09-30.endive";

/// How long a lost answer is held when the connection cannot be closed under the client
/// (it always can on a plain TCP connection; this is only a fallback): longer than any client
/// timeout a test should use.
pub const LOST_ANSWER_FALLBACK: Duration = Duration::from_secs(120);

/// What a request does, for fault targets and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `POST /v1/payment_intents`.
    Create,
    /// `GET /v1/payment_intents/{id}` (and `GET /v1/charges/{id}`, `GET /v1/refunds/{id}`).
    Retrieve,
    /// `POST /v1/payment_intents/{id}/capture`.
    Capture,
    /// `POST /v1/payment_intents/{id}/cancel`.
    Cancel,
    /// `POST /v1/refunds`.
    Refund,
    /// `GET /v1/payment_intents/search` (by `metadata['booking_id']`).
    Search,
    /// Anything else (answered 404).
    Other,
}

/// Which requests a fault applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every request of this kind.
    Kind(Kind),
    /// Requests with this method (`"POST"`) whose path matches `pattern`, segment by segment;
    /// a segment `*` or `{name}` matches any one segment:
    /// `("POST", "/v1/payment_intents/*/capture")`, `("GET", "/v1/payment_intents/pi_123")`.
    Route {
        /// Upper-case HTTP method.
        method: String,
        /// Path pattern.
        pattern: String,
    },
}

impl From<Kind> for Target {
    fn from(kind: Kind) -> Self {
        Target::Kind(kind)
    }
}

impl From<(&str, &str)> for Target {
    fn from((method, pattern): (&str, &str)) -> Self {
        Target::Route {
            method: method.to_ascii_uppercase(),
            pattern: pattern.to_owned(),
        }
    }
}

impl Target {
    fn matches(&self, kind: Kind, method: &str, path: &str) -> bool {
        match self {
            Target::Kind(k) => *k == kind,
            Target::Route { method: m, pattern } => m == method && path_matches(pattern, path),
        }
    }
}

fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let path: Vec<&str> = path.trim_matches('/').split('/').collect();
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(&path)
            .all(|(p, s)| *p == "*" || (p.starts_with('{') && p.ends_with('}')) || p == s)
}

/// How a request was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 401: no or a wrong API key.
    Unauthorized,
    /// 400 `idempotency_error`: the key was used on another endpoint or with other parameters.
    IdempotencyMismatch,
    /// The stored answer of an earlier request with the same key (not executed again).
    Replayed,
    /// An injected failure ([`FakeStripe::fail_next`], [`FakeStripe::decline_on_create`]);
    /// nothing executed.
    Injected,
    /// Executed and succeeded (2xx).
    Executed,
    /// Executed and refused by Stripe's rules (unknown object, bad parameters, wrong state,
    /// unknown URL); nothing changed.
    Rejected,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Its kind.
    pub kind: Kind,
    /// `GET`, `POST`.
    pub method: String,
    /// The path, e.g. `/v1/payment_intents/pi_123/capture`.
    pub path: String,
    /// The `Idempotency-Key` header (POSTs only).
    pub idempotency_key: Option<String>,
    /// The form body (POST) or query (GET), nested: `metadata[booking_id]=x` becomes
    /// `{"metadata": {"booking_id": "x"}}`.
    pub params: Value,
    /// The status of the answer (also when it was lost).
    pub status: u16,
    /// How it was answered.
    pub outcome: Outcome,
    /// The answer was never sent (the connection was closed).
    pub answer_lost: bool,
    /// The answer was sent this late.
    pub delayed: Option<Duration>,
}

/// A capture that the fake executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// `pi_...`.
    pub payment_intent: String,
    /// `ch_...`.
    pub charge: String,
    /// The amount captured.
    pub amount: i64,
    /// The request's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug)]
enum Fault {
    Fail(u16),
    Decline,
    LoseAnswer,
    Delay(Duration),
}

impl Fault {
    fn before_execution(&self) -> bool {
        matches!(self, Fault::Fail(_) | Fault::Decline)
    }
}

#[derive(Debug)]
struct Rule {
    target: Target,
    remaining: usize,
    fault: Fault,
}

#[derive(Debug)]
struct Stored {
    endpoint: String,
    params: Vec<(String, String)>,
    status: u16,
    body: String,
    request_id: String,
}

#[derive(Debug, Default)]
struct State {
    intents: Vec<Value>,
    charges: Vec<Value>,
    refunds: Vec<Value>,
    captures: Vec<Capture>,
    /// (API key, Idempotency-Key) → the stored answer.
    idempotency: HashMap<(String, String), Stored>,
    rules: Vec<Rule>,
    calls: HashMap<Kind, usize>,
    executions: HashMap<Kind, usize>,
    log: Vec<RecordedRequest>,
}

impl State {
    fn intent_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.intents.iter_mut().find(|pi| pi["id"] == id)
    }

    fn charge_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.charges.iter_mut().find(|ch| ch["id"] == id)
    }

    /// Consumes one use of the first rule that matches and whose fault passes `which`.
    fn take_fault(
        &mut self,
        kind: Kind,
        method: &str,
        path: &str,
        which: impl Fn(&Fault) -> bool,
    ) -> Option<Fault> {
        let index = self.rules.iter().position(|r| {
            r.remaining > 0 && which(&r.fault) && r.target.matches(kind, method, path)
        })?;
        let rule = &mut self.rules[index];
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            self.rules.remove(index);
        }
        Some(fault)
    }
}

#[derive(Debug)]
struct Shared {
    secret_key: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connection's socket (a duplicate of its descriptor), kept by `on_connect` so that a
/// handler can close the connection under the client without answering.
struct ConnSocket(socket2::Socket);

/// A running fake Stripe API. Cheap to clone; the server stops when the last clone is dropped
/// (or at [`FakeStripe::stop`]).
#[derive(Clone, Debug)]
pub struct FakeStripe {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    handle: ServerHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // `stop` sends the command at once; the future it returns would only wait for the end.
        #[allow(clippy::let_underscore_future)]
        let _ = self.handle.stop(false);
    }
}

impl FakeStripe {
    /// Starts one on `127.0.0.1:<free port>` (one actix worker, no signal handling).
    pub async fn start() -> Self {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fake Stripe server");
        let addr = listener
            .local_addr()
            .expect("the fake Stripe server's address");
        let shared = Arc::new(Shared {
            secret_key: SECRET_KEY.to_owned(),
            state: Mutex::new(State::default()),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .on_connect(|conn, ext| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
                && let Ok(socket) = socket2::SockRef::from(tcp).try_clone()
            {
                ext.insert(Arc::new(ConnSocket(socket)));
            }
        })
        .listen(listener)
        .expect("listening")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            inner: Arc::new(Inner {
                shared,
                addr,
                handle,
            }),
        }
    }

    /// Stops the server (also done when the last clone is dropped).
    pub async fn stop(&self) {
        self.inner.handle.stop(false).await;
    }

    /// `http://127.0.0.1:PORT/`, with the trailing slash async-stripe needs.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.inner.addr)
    }

    /// The secret key it accepts: `sk_test_fake`.
    pub fn secret_key(&self) -> &str {
        &self.inner.shared.secret_key
    }

    /// `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET` and `STRIPE_API_BASE` for a process or
    /// settings under test.
    pub fn env(&self, webhook_secret: &str) -> Vec<(&'static str, String)> {
        vec![
            ("STRIPE_SECRET_KEY", self.secret_key().to_owned()),
            ("STRIPE_WEBHOOK_SECRET", webhook_secret.to_owned()),
            ("STRIPE_API_BASE", self.base_url()),
        ]
    }

    /// A real async-stripe client pointed at the fake.
    pub fn client(&self) -> stripe::Client {
        stripe::ClientBuilder::new(self.secret_key())
            .url(self.base_url())
            .build()
            .expect("an async-stripe client for the fake")
    }

    /// A signer of webhook events with `secret`.
    pub fn webhooks(&self, secret: &str) -> WebhookSigner {
        WebhookSigner::new(secret)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.shared.lock()
    }

    // ---- the customer's side ----

    /// The customer paid: the PaymentIntent (in `requires_payment_method`,
    /// `requires_confirmation` or `requires_action`) gets a payment method and a successful
    /// charge; with `capture_method: manual` it goes to `requires_capture` with
    /// `amount_capturable = amount`, otherwise (automatic capture) straight to `succeeded`.
    /// Returns the updated PaymentIntent (for a webhook event). Panics on an unknown id or
    /// another status.
    pub fn authorize(&self, pi_id: &str) -> Value {
        let mut st = self.lock();
        let pi = st
            .intent_mut(pi_id)
            .unwrap_or_else(|| panic!("no PaymentIntent {pi_id}"))
            .clone();
        let status = str_of(&pi, "status");
        assert!(
            CONFIRMABLE.contains(&status.as_str()),
            "PaymentIntent {pi_id} cannot be authorized in status {status}"
        );
        let manual = str_of(&pi, "capture_method") == "manual";
        let amount = int_of(&pi, "amount");
        let payment_method = new_id("pm_");
        let mut charge = new_charge(&pi, &payment_method, ChargeResult::Authorized);
        if !manual {
            charge["captured"] = json!(true);
            charge["amount_captured"] = json!(amount);
        }
        let charge_id = str_of(&charge, "id");
        st.charges.push(charge);
        let pi = st.intent_mut(pi_id).expect("the PaymentIntent");
        pi["payment_method"] = json!(payment_method);
        pi["latest_charge"] = json!(charge_id);
        pi["last_payment_error"] = Value::Null;
        if manual {
            pi["status"] = json!("requires_capture");
            pi["amount_capturable"] = json!(amount);
        } else {
            pi["status"] = json!("succeeded");
            pi["amount_received"] = json!(amount);
        }
        pi.clone()
    }

    /// The customer's card was declined: a failed charge, the PaymentIntent back in
    /// `requires_payment_method` with `last_payment_error` (`card_error`, `card_declined`,
    /// `generic_decline`). Returns the updated PaymentIntent (for a
    /// `payment_intent.payment_failed` event). Panics on an unknown id or a status that
    /// cannot take a payment.
    pub fn decline(&self, pi_id: &str) -> Value {
        let mut st = self.lock();
        let pi = st
            .intent_mut(pi_id)
            .unwrap_or_else(|| panic!("no PaymentIntent {pi_id}"))
            .clone();
        let status = str_of(&pi, "status");
        assert!(
            CONFIRMABLE.contains(&status.as_str()),
            "PaymentIntent {pi_id} cannot take a payment attempt in status {status}"
        );
        let payment_method = new_id("pm_");
        let charge = new_charge(&pi, &payment_method, ChargeResult::Declined);
        let charge_id = str_of(&charge, "id");
        st.charges.push(charge);
        let pi = st.intent_mut(pi_id).expect("the PaymentIntent");
        pi["status"] = json!("requires_payment_method");
        pi["payment_method"] = Value::Null;
        pi["latest_charge"] = json!(charge_id);
        pi["last_payment_error"] = json!({
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
            "doc_url": "https://stripe.com/docs/error-codes/card-declined",
            "charge": charge_id,
        });
        pi.clone()
    }

    // ---- faults ----

    /// The next `n` matching requests are answered `status` (500, 503, 429, 409, ...) with a
    /// Stripe error body, without executing.
    ///
    /// **Stored 500.** Stripe saves the result of an idempotent request once it began
    /// executing, 500s included, and replays it for the same key. A 500 here stands for
    /// "Stripe failed inside, after it began executing, before it changed anything", so for a
    /// POST with an `Idempotency-Key` the 500 is stored under the key: retries with that key
    /// get the same 500 again (`Idempotent-Replayed: true`) and never execute; only a new key
    /// (after checking what happened) gets through. Other statuses (429, 503, 502, 504, 409,
    /// 4xx) stand for refusals before execution and are not stored: a retry with the same key
    /// executes.
    pub fn fail_next(&self, target: impl Into<Target>, n: usize, status: u16) {
        self.add_rule(target.into(), n, Fault::Fail(status));
    }

    /// The next `n` matching requests execute (state changes, the answer is stored under their
    /// idempotency key) but get no answer: the connection is closed under the client without
    /// a response (the client sees a transport error at once: hyper's "connection closed
    /// before message completed", async-stripe's `StripeError::ClientError`).
    pub fn lose_answer_after_processing(&self, target: impl Into<Target>, n: usize) {
        self.add_rule(target.into(), n, Fault::LoseAnswer);
    }

    /// The next `n` matching requests execute at once (state changes and the stored
    /// idempotent answer happen on arrival) and are answered `delay` later. A client that
    /// times out meanwhile has had its request executed; a retry with the same key gets the
    /// stored answer at once.
    pub fn delay_next(&self, target: impl Into<Target>, n: usize, delay: Duration) {
        self.add_rule(target.into(), n, Fault::Delay(delay));
    }

    /// The next `n` creations are answered 402 `card_error` / `card_declined` /
    /// `generic_decline` without creating anything; the answer is stored under the
    /// idempotency key (a decline is a result of execution at Stripe).
    pub fn decline_on_create(&self, n: usize) {
        self.add_rule(Target::Kind(Kind::Create), n, Fault::Decline);
    }

    /// Forgets every fault not yet used.
    pub fn clear_faults(&self) {
        self.lock().rules.clear();
    }

    fn add_rule(&self, target: Target, n: usize, fault: Fault) {
        if n > 0 {
            self.lock().rules.push(Rule {
                target,
                remaining: n,
                fault,
            });
        }
    }

    // ---- observation ----

    /// Requests of this kind that arrived (replays, refusals, injected failures included).
    pub fn calls(&self, kind: Kind) -> usize {
        self.lock().calls.get(&kind).copied().unwrap_or(0)
    }

    /// Requests of this kind that executed and succeeded (not replays, not injected
    /// failures, not refusals).
    pub fn executions(&self, kind: Kind) -> usize {
        self.lock().executions.get(&kind).copied().unwrap_or(0)
    }

    /// Every request, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().log.clone()
    }

    /// Every PaymentIntent, in creation order.
    pub fn payment_intents(&self) -> Vec<Value> {
        self.lock().intents.clone()
    }

    /// One PaymentIntent.
    pub fn payment_intent(&self, id: &str) -> Option<Value> {
        self.lock()
            .intents
            .iter()
            .find(|pi| pi["id"] == id)
            .cloned()
    }

    /// The PaymentIntents whose `metadata.booking_id` is `booking_id`, in creation order.
    pub fn intents_for_booking(&self, booking_id: &str) -> Vec<Value> {
        self.lock()
            .intents
            .iter()
            .filter(|pi| pi["metadata"]["booking_id"] == booking_id)
            .cloned()
            .collect()
    }

    /// The captures executed on a PaymentIntent (through the API; an automatic capture at
    /// [`FakeStripe::authorize`] is not one).
    pub fn captures_of(&self, pi_id: &str) -> Vec<Capture> {
        self.lock()
            .captures
            .iter()
            .filter(|c| c.payment_intent == pi_id)
            .cloned()
            .collect()
    }

    /// The refunds of a PaymentIntent (Refund objects), in creation order.
    pub fn refunds_of(&self, pi_id: &str) -> Vec<Value> {
        self.lock()
            .refunds
            .iter()
            .filter(|r| r["payment_intent"] == pi_id)
            .cloned()
            .collect()
    }

    /// The latest charge of a PaymentIntent (a Charge object), for `charge.*` events.
    pub fn charge_of(&self, pi_id: &str) -> Option<Value> {
        let st = self.lock();
        let pi = st.intents.iter().find(|pi| pi["id"] == pi_id)?;
        let charge_id = pi["latest_charge"].as_str()?;
        st.charges.iter().find(|c| c["id"] == charge_id).cloned()
    }
}

// ---- webhooks ----

/// Signs webhook events as Stripe does: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
/// "<t>.<payload>" under the endpoint secret>`.
#[derive(Clone, Debug)]
pub struct WebhookSigner {
    secret: String,
}

impl WebhookSigner {
    /// A signer for the endpoint secret `secret` (`whsec_...`).
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    /// An event of `event_type` (`payment_intent.succeeded`, ...) about `object`, created and
    /// signed now: `(payload, Stripe-Signature header)`.
    pub fn event(&self, event_type: &str, object: Value) -> (String, String) {
        self.event_at(event_type, object, chrono::Utc::now().timestamp())
    }

    /// The same, created and signed at `timestamp` (Unix seconds): a stale one for tests of
    /// the 5-minute tolerance.
    pub fn event_at(&self, event_type: &str, object: Value, timestamp: i64) -> (String, String) {
        let payload = event_payload(event_type, object, timestamp);
        let signature = self.sign(&payload, timestamp);
        (payload, signature)
    }

    /// The `Stripe-Signature` header of `payload` signed at `timestamp`.
    pub fn sign(&self, payload: &str, timestamp: i64) -> String {
        signature_header(&self.secret, payload, timestamp)
    }
}

/// An event's JSON, shaped like `fixtures/stripe/event.json` with `api_version`
/// [`API_VERSION`] and `data.object` = `object`.
pub fn event_payload(event_type: &str, object: Value, created: i64) -> String {
    json!({
        "id": new_id("evt_"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": event_type,
    })
    .to_string()
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256("<timestamp>.<payload>", secret)>`.
pub fn signature_header(secret: &str, payload: &str, timestamp: i64) -> String {
    let mac = hmac_sha256(
        secret.as_bytes(),
        format!("{timestamp}.{payload}").as_bytes(),
    );
    format!("t={timestamp},v1={}", hex::encode(mac))
}

/// HMAC (RFC 2104) over SHA-256.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    #[allow(clippy::expect_used)] // HMAC takes a key of any length
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("an HMAC key");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

// ---- HTTP ----

enum After {
    Now,
    Delay(Duration),
    Lose,
}

struct Answer {
    status: u16,
    body: String,
    headers: Vec<(&'static str, String)>,
    after: After,
}

async fn handle(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let answer = process(&shared, &req, &body);
    match answer.after {
        After::Now => {}
        After::Delay(delay) => tokio::time::sleep(delay).await,
        After::Lose => match req.conn_data::<Arc<ConnSocket>>() {
            // The client sees the connection closed before any response.
            Some(socket) => {
                let _ = socket.0.shutdown(Shutdown::Both);
            }
            None => tokio::time::sleep(LOST_ANSWER_FALLBACK).await,
        },
    }
    let mut response = HttpResponse::build(
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    response.content_type("application/json");
    for header in answer.headers {
        response.insert_header(header);
    }
    response.body(answer.body)
}

fn process(shared: &Shared, req: &HttpRequest, body: &[u8]) -> Answer {
    let method = req.method().as_str().to_ascii_uppercase();
    let path = req.path().to_owned();
    let kind = classify(&method, &path);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let post = method == "POST";
    let idempotency_key = post.then(|| header("idempotency-key")).flatten();
    let raw = if post {
        body
    } else {
        req.query_string().as_bytes()
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw).into_owned().collect();
    let request_id = format!("req_{}", random_alnum(14));
    let mut pending = Pending {
        record: RecordedRequest {
            kind,
            method: method.clone(),
            path: path.clone(),
            idempotency_key: idempotency_key.clone(),
            params: nest(&pairs),
            status: 0,
            outcome: Outcome::Rejected,
            answer_lost: false,
            delayed: None,
        },
        headers: vec![
            ("Request-Id", request_id.clone()),
            ("Stripe-Version", API_VERSION.to_owned()),
        ],
    };
    if let Some(key) = &idempotency_key {
        pending.headers.push(("Idempotency-Key", key.clone()));
    }

    let mut st = shared.lock();
    *st.calls.entry(kind).or_default() += 1;

    let api_key = match authenticate(header("authorization"), &shared.secret_key) {
        Ok(key) => key,
        Err(e) => return pending.refuse(&mut st, e, Outcome::Unauthorized),
    };

    // Idempotency: a stored answer is replayed, or the key's reuse refused.
    let endpoint = format!("{method} {path}");
    let mut params = pairs;
    params.sort();
    let slot = idempotency_key.map(|key| (api_key, key));
    let verdict = slot
        .as_ref()
        .and_then(|slot| st.idempotency.get(slot).map(|stored| (slot, stored)))
        .map(|(slot, stored)| stored.replay(&endpoint, &params, &slot.1));
    match verdict {
        Some(Ok((status, body, original))) => {
            pending.headers.push(("Original-Request", original));
            return pending.answer(&mut st, status, body, Outcome::Replayed, After::Now);
        }
        Some(Err(e)) => return pending.refuse(&mut st, e, Outcome::IdempotencyMismatch),
        None => {}
    }
    let store = |st: &mut State, status: u16, body: &str| {
        if let Some(slot) = &slot {
            st.idempotency.insert(
                slot.clone(),
                Stored {
                    endpoint: endpoint.clone(),
                    params: params.clone(),
                    status,
                    body: body.to_owned(),
                    request_id: request_id.clone(),
                },
            );
        }
    };

    // Faults before execution.
    if let Some(fault) = st.take_fault(kind, &method, &path, Fault::before_execution) {
        let e = match fault {
            Fault::Decline => ApiError::new(402, "card_error", "Your card was declined.")
                .code("card_declined")
                .with("decline_code", json!("generic_decline"))
                .stored(),
            // See `fail_next`: only a 500 counts as having begun executing.
            Fault::Fail(500) => injected_error(500).stored(),
            Fault::Fail(status) => injected_error(status),
            Fault::LoseAnswer | Fault::Delay(_) => injected_error(500),
        };
        let body = e.body();
        if e.stored {
            store(&mut st, e.status, &body);
        }
        return pending.answer(&mut st, e.status, body, Outcome::Injected, After::Now);
    }

    // Execution.
    let record_params = pending.record.params.clone();
    let (status, body, outcome) = match execute(
        &mut st,
        kind,
        &path,
        &record_params,
        pending.record.idempotency_key.as_deref(),
    ) {
        Ok(object) => {
            let body = object.to_string();
            store(&mut st, 200, &body);
            (200, body, Outcome::Executed)
        }
        Err(e) => {
            let body = e.body();
            if e.stored {
                store(&mut st, e.status, &body);
            }
            (e.status, body, Outcome::Rejected)
        }
    };

    // Faults after execution.
    let lose = st.take_fault(kind, &method, &path, |f| matches!(f, Fault::LoseAnswer));
    let after = match lose {
        Some(_) => After::Lose,
        None => match st.take_fault(kind, &method, &path, |f| matches!(f, Fault::Delay(_))) {
            Some(Fault::Delay(delay)) => After::Delay(delay),
            _ => After::Now,
        },
    };
    pending.answer(&mut st, status, body, outcome, after)
}

/// A request being answered: its log entry and response headers.
struct Pending {
    record: RecordedRequest,
    headers: Vec<(&'static str, String)>,
}

impl Pending {
    fn answer(
        mut self,
        st: &mut State,
        status: u16,
        body: String,
        outcome: Outcome,
        after: After,
    ) -> Answer {
        self.record.status = status;
        self.record.outcome = outcome;
        match after {
            After::Lose => self.record.answer_lost = true,
            After::Delay(delay) => self.record.delayed = Some(delay),
            After::Now => {}
        }
        if outcome == Outcome::Executed {
            *st.executions.entry(self.record.kind).or_default() += 1;
        }
        if outcome == Outcome::Replayed {
            self.headers
                .push(("Idempotent-Replayed", "true".to_owned()));
        }
        st.log.push(self.record);
        Answer {
            status,
            body,
            headers: self.headers,
            after,
        }
    }

    fn refuse(self, st: &mut State, e: ApiError, outcome: Outcome) -> Answer {
        let body = e.body();
        self.answer(st, e.status, body, outcome, After::Now)
    }
}

/// The API key of `Authorization: Bearer <key>`, or Stripe's 401.
fn authenticate(header: Option<String>, secret_key: &str) -> Result<String, ApiError> {
    let unauthorized = |message: String| ApiError::new(401, "invalid_request_error", message);
    let Some(header) = header else {
        return Err(unauthorized(
            "You did not provide an API key. You need to provide your API key in the \
             Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
             YOUR_SECRET_KEY')."
                .to_owned(),
        ));
    };
    match header.strip_prefix("Bearer ") {
        Some(key) if key == secret_key => Ok(key.to_owned()),
        Some(key) => Err(unauthorized(format!(
            "Invalid API Key provided: {}",
            mask_key(key)
        ))),
        None => Err(unauthorized(
            "Invalid API Key provided: use Bearer auth (Authorization: Bearer sk_...).".to_owned(),
        )),
    }
}

impl Stored {
    /// The stored answer (status, body, original request id) for a request with the same key,
    /// or Stripe's `idempotency_error` when it differs.
    fn replay(
        &self,
        endpoint: &str,
        params: &[(String, String)],
        key: &str,
    ) -> Result<(u16, String, String), ApiError> {
        if self.endpoint != endpoint {
            return Err(ApiError::new(
                400,
                "idempotency_error",
                format!(
                    "Keys for idempotent requests can only be used for the same endpoint they \
                     were first used for ('{}' vs '{endpoint}'). Try using a key other than \
                     '{key}' if you meant to execute a different request.",
                    self.endpoint
                ),
            ));
        }
        if self.params != params {
            return Err(ApiError::new(
                400,
                "idempotency_error",
                format!(
                    "Keys for idempotent requests can only be used with the same parameters \
                     they were first used with. Try using a key other than '{key}' if you meant \
                     to execute a different request."
                ),
            ));
        }
        Ok((self.status, self.body.clone(), self.request_id.clone()))
    }
}

/// `expand[]=latest_charge`: the charge object in place of its id, as Stripe does.
fn expand_latest_charge(st: &State, pi: &mut Value, params: &Value) {
    let wanted = params["expand"]
        .as_array()
        .is_some_and(|e| e.iter().any(|v| v == "latest_charge"));
    if !wanted {
        return;
    }
    if let Some(id) = pi["latest_charge"].as_str().map(str::to_owned)
        && let Some(charge) = st.charges.iter().find(|c| c["id"] == id.as_str())
    {
        pi["latest_charge"] = charge.clone();
    }
}

/// Stripe's search, for the one query Orderly makes: `metadata['booking_id']:'<id>'`
/// (immediately consistent here; Stripe's index may lag by up to a minute).
fn search(st: &State, params: &Value) -> Value {
    let query = params["query"].as_str().unwrap_or_default();
    let wanted = query
        .strip_prefix("metadata['booking_id']:'")
        .and_then(|rest| rest.strip_suffix('\''));
    let data: Vec<Value> = st
        .intents
        .iter()
        .filter(|pi| wanted.is_some_and(|id| pi["metadata"]["booking_id"] == id))
        .cloned()
        .collect();
    json!({
        "object": "search_result",
        "url": "/v1/payment_intents/search",
        "has_more": false,
        "next_page": null,
        "total_count": data.len(),
        "data": data,
    })
}

fn classify(method: &str, path: &str) -> Kind {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["v1", "payment_intents"]) => Kind::Create,
        ("GET", ["v1", "payment_intents", "search"]) => Kind::Search,
        ("GET", ["v1", "payment_intents" | "charges" | "refunds", _]) => Kind::Retrieve,
        ("POST", ["v1", "payment_intents", _, "capture"]) => Kind::Capture,
        ("POST", ["v1", "payment_intents", _, "cancel"]) => Kind::Cancel,
        ("POST", ["v1", "refunds"]) => Kind::Refund,
        _ => Kind::Other,
    }
}

/// `a=1&metadata[booking_id]=x&types[0]=card&expand[]=y` →
/// `{"a": "1", "metadata": {"booking_id": "x"}, "types": ["card"], "expand": ["y"]}`.
fn nest(pairs: &[(String, String)]) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in pairs {
        let (base, rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (key.as_str(), ""),
        };
        let mut segments = vec![base.to_owned()];
        segments.extend(
            rest.split(']')
                .filter_map(|s| s.strip_prefix('['))
                .map(str::to_owned),
        );
        insert(&mut root, &segments, value);
    }
    root
}

fn insert(node: &mut Value, segments: &[String], value: &str) {
    let Some((first, rest)) = segments.split_first() else {
        *node = Value::String(value.to_owned());
        return;
    };
    let index = if first.is_empty() {
        Some(None)
    } else {
        first.parse::<usize>().ok().map(Some)
    };
    match index {
        Some(index) => {
            if !node.is_array() {
                *node = Value::Array(Vec::new());
            }
            if let Value::Array(items) = node {
                let index = index.unwrap_or(items.len());
                if items.len() <= index {
                    items.resize(index + 1, Value::Null);
                }
                insert(&mut items[index], rest, value);
            }
        }
        None => {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            if let Value::Object(map) = node {
                insert(map.entry(first.clone()).or_insert(Value::Null), rest, value);
            }
        }
    }
}

fn mask_key(key: &str) -> String {
    let shown: String = key.chars().take(8).collect();
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{shown}{}{tail}", "*".repeat(key.len().saturating_sub(12)))
}

// ---- errors ----

#[derive(Debug)]
struct ApiError {
    status: u16,
    fields: Map<String, Value>,
    /// Whether Stripe would store this answer under the idempotency key (it began executing).
    stored: bool,
}

impl ApiError {
    fn new(status: u16, type_: &str, message: impl Into<String>) -> Self {
        let mut fields = Map::new();
        fields.insert("type".into(), json!(type_));
        fields.insert("message".into(), json!(message.into()));
        Self {
            status,
            fields,
            stored: false,
        }
    }

    fn code(mut self, code: &str) -> Self {
        self.fields.insert("code".into(), json!(code));
        self.fields.insert(
            "doc_url".into(),
            json!(format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            )),
        );
        self
    }

    fn param(self, param: &str) -> Self {
        self.with("param", json!(param))
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.fields.insert(key.into(), value);
        self
    }

    /// An answer to a request that began executing: stored under its idempotency key.
    fn stored(mut self) -> Self {
        self.stored = true;
        self
    }

    fn body(&self) -> String {
        json!({ "error": self.fields }).to_string()
    }
}

fn injected_error(status: u16) -> ApiError {
    match status {
        429 => ApiError::new(
            429,
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here \
             https://stripe.com/docs/rate-limits.",
        )
        .code("rate_limit"),
        409 => ApiError::new(
            409,
            "invalid_request_error",
            "This object cannot be accessed right now because another API request or Stripe \
             process is currently accessing it. If you see this error intermittently, retry \
             the request.",
        )
        .code("lock_timeout"),
        500..=599 => ApiError::new(
            status,
            "api_error",
            format!(
                "An unknown error occurred (injected HTTP {status}). Stripe may or may not have \
                 processed the request."
            ),
        ),
        _ => ApiError::new(
            status,
            "invalid_request_error",
            format!("Injected failure (HTTP {status})."),
        ),
    }
}

fn missing(param: &str) -> ApiError {
    ApiError::new(
        400,
        "invalid_request_error",
        format!("Missing required param: {param}."),
    )
    .code("parameter_missing")
    .param(param)
}

fn no_such(object: &str, id: &str, param: &str) -> ApiError {
    ApiError::new(
        404,
        "invalid_request_error",
        format!("No such {object}: '{id}'"),
    )
    .code("resource_missing")
    .param(param)
}

fn integer_param(params: &Value, name: &str) -> Result<Option<i64>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => match s.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            Ok(_) => Err(ApiError::new(
                400,
                "invalid_request_error",
                format!("This value must be greater than or equal to 1 ({name})."),
            )
            .code("parameter_invalid_integer")
            .param(name)),
            Err(_) => Err(ApiError::new(
                400,
                "invalid_request_error",
                format!("Invalid integer: {s}"),
            )
            .code("parameter_invalid_integer")
            .param(name)),
        },
        Some(_) => Err(ApiError::new(
            400,
            "invalid_request_error",
            format!("Invalid integer: {name}"),
        )
        .code("parameter_invalid_integer")
        .param(name)),
    }
}

fn string_param(params: &Value, name: &str) -> Option<String> {
    params.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn enum_param(params: &Value, name: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match string_param(params, name) {
        None => Ok(None),
        Some(v) if allowed.contains(&v.as_str()) => Ok(Some(v)),
        Some(v) => Err(ApiError::new(
            400,
            "invalid_request_error",
            format!(
                "Invalid {name}: must be one of {} (got '{v}').",
                allowed.join(", ")
            ),
        )
        .code("parameter_invalid_empty")
        .param(name)),
    }
}

/// `metadata[..]` as a JSON object of strings.
fn metadata_param(params: &Value) -> Map<String, Value> {
    params
        .get("metadata")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), json!(v))))
                .collect()
        })
        .unwrap_or_default()
}

fn merge_metadata(object: &mut Value, params: &Value) {
    let extra = metadata_param(params);
    if extra.is_empty() {
        return;
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    if let Some(map) = object["metadata"].as_object_mut() {
        for (k, v) in extra {
            // Stripe: an empty value removes the key.
            if v == "" {
                map.remove(&k);
            } else {
                map.insert(k, v);
            }
        }
    }
}

// ---- the API ----

/// Statuses in which a PaymentIntent can take a payment attempt.
const CONFIRMABLE: [&str; 3] = [
    "requires_payment_method",
    "requires_confirmation",
    "requires_action",
];

const CANCELABLE: [&str; 5] = [
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
];

fn execute(
    st: &mut State,
    kind: Kind,
    path: &str,
    params: &Value,
    idempotency_key: Option<&str>,
) -> Result<Value, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (kind, segments.as_slice()) {
        (Kind::Create, _) => create_intent(st, params),
        (Kind::Retrieve, ["v1", "payment_intents", id]) => {
            let mut pi = st
                .intents
                .iter()
                .find(|pi| pi["id"] == *id)
                .cloned()
                .ok_or_else(|| no_such("payment_intent", id, "intent"))?;
            expand_latest_charge(st, &mut pi, params);
            Ok(pi)
        }
        (Kind::Search, _) => Ok(search(st, params)),
        (Kind::Retrieve, ["v1", "charges", id]) => st
            .charges
            .iter()
            .find(|c| c["id"] == *id)
            .cloned()
            .ok_or_else(|| no_such("charge", id, "id")),
        (Kind::Retrieve, ["v1", "refunds", id]) => st
            .refunds
            .iter()
            .find(|r| r["id"] == *id)
            .cloned()
            .ok_or_else(|| no_such("refund", id, "refund")),
        (Kind::Capture, ["v1", "payment_intents", id, _]) => {
            capture(st, id, params, idempotency_key)
        }
        (Kind::Cancel, ["v1", "payment_intents", id, _]) => cancel(st, id, params),
        (Kind::Refund, _) => refund(st, params),
        _ => Err(ApiError::new(
            404,
            "invalid_request_error",
            format!(
                "Unrecognized request URL ({path}). The fake Stripe server serves only \
                 payment_intents (create, retrieve, capture, cancel), refunds (create, \
                 retrieve) and charges (retrieve)."
            ),
        )),
    }
}

fn create_intent(st: &mut State, params: &Value) -> Result<Value, ApiError> {
    let amount = integer_param(params, "amount")?.ok_or_else(|| missing("amount"))?;
    let currency = string_param(params, "currency")
        .ok_or_else(|| missing("currency"))?
        .to_ascii_lowercase();
    let capture_method = enum_param(
        params,
        "capture_method",
        &["automatic", "automatic_async", "manual"],
    )?
    .unwrap_or_else(|| "automatic_async".to_owned());
    let payment_method_types: Option<Vec<Value>> = params
        .get("payment_method_types")
        .and_then(Value::as_array)
        .cloned();
    let automatic = match params.get("automatic_payment_methods") {
        Some(apm) => {
            let mut out = Map::new();
            out.insert("enabled".into(), json!(apm["enabled"] == "true"));
            if let Some(allow) = apm.get("allow_redirects").and_then(Value::as_str) {
                out.insert("allow_redirects".into(), json!(allow));
            }
            Value::Object(out)
        }
        // Stripe's default when neither is given.
        None if payment_method_types.is_none() => json!({ "enabled": true }),
        None => Value::Null,
    };
    let automatic_enabled = automatic["enabled"] == true;
    let id = new_id("pi_");
    let optional = |name: &str| string_param(params, name).map_or(Value::Null, Value::String);
    let mut pi = json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": { "tip": {} },
        "amount_received": 0,
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": automatic,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": capture_method,
        "client_secret": format!("{id}_secret_{}", random_alnum(25)),
        "confirmation_method": "automatic",
        "created": now(),
        "currency": currency,
        "customer": optional("customer"),
        "customer_account": null,
        "description": optional("description"),
        "excluded_payment_method_types": null,
    });
    merge(
        &mut pi,
        json!({
            "last_payment_error": null,
            "latest_charge": null,
            "livemode": false,
            "managed_payments": { "enabled": false },
            "metadata": metadata_param(params),
            "next_action": null,
            "on_behalf_of": null,
            "payment_method": null,
            "payment_method_configuration_details": if automatic_enabled {
                json!({ "id": new_id("pmc_"), "parent": null })
            } else {
                Value::Null
            },
            "payment_method_options": {},
            "payment_method_types": payment_method_types.unwrap_or_else(|| vec![json!("card")]),
            "processing": null,
            "receipt_email": optional("receipt_email"),
            "review": null,
            "setup_future_usage": null,
            "shipping": null,
            "source": null,
            "statement_descriptor": optional("statement_descriptor"),
            "statement_descriptor_suffix": optional("statement_descriptor_suffix"),
            "status": "requires_payment_method",
            "transfer_data": null,
            "transfer_group": optional("transfer_group"),
        }),
    );
    st.intents.push(pi.clone());
    Ok(pi)
}

fn capture(
    st: &mut State,
    id: &str,
    params: &Value,
    idempotency_key: Option<&str>,
) -> Result<Value, ApiError> {
    let pi = st
        .intent_mut(id)
        .ok_or_else(|| no_such("payment_intent", id, "intent"))?
        .clone();
    let status = str_of(&pi, "status");
    if status != "requires_capture" {
        return Err(unexpected_state(
            &pi,
            format!(
                "This PaymentIntent could not be captured because it has a status of {status}. \
                 Only a PaymentIntent with one of the following statuses may be captured: \
                 requires_capture."
            ),
        ));
    }
    let capturable = int_of(&pi, "amount_capturable");
    let amount = integer_param(params, "amount_to_capture")?.unwrap_or(capturable);
    if amount > capturable {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            format!(
                "The amount_to_capture ({amount}) must be less than or equal to the \
                 amount_capturable ({capturable})."
            ),
        )
        .code("amount_too_large")
        .param("amount_to_capture"));
    }
    let charge_id = str_of(&pi, "latest_charge");
    if let Some(charge) = st.charge_mut(&charge_id) {
        charge["captured"] = json!(true);
        charge["amount_captured"] = json!(amount);
    }
    st.captures.push(Capture {
        payment_intent: id.to_owned(),
        charge: charge_id,
        amount,
        idempotency_key: idempotency_key.map(str::to_owned),
    });
    let pi = st.intent_mut(id).expect("the PaymentIntent");
    pi["status"] = json!("succeeded");
    pi["amount_received"] = json!(amount);
    pi["amount_capturable"] = json!(0);
    merge_metadata(pi, params);
    Ok(pi.clone())
}

fn cancel(st: &mut State, id: &str, params: &Value) -> Result<Value, ApiError> {
    let pi = st
        .intent_mut(id)
        .ok_or_else(|| no_such("payment_intent", id, "intent"))?
        .clone();
    let status = str_of(&pi, "status");
    if !CANCELABLE.contains(&status.as_str()) {
        return Err(unexpected_state(
            &pi,
            format!(
                "You cannot cancel this PaymentIntent because it has a status of {status}. \
                 Only a PaymentIntent with one of the following statuses may be canceled: {}.",
                CANCELABLE.join(", ")
            ),
        ));
    }
    let reason = enum_param(
        params,
        "cancellation_reason",
        &[
            "duplicate",
            "fraudulent",
            "requested_by_customer",
            "abandoned",
        ],
    )?;
    // An authorised (uncaptured) charge is released: Stripe shows it refunded.
    if status == "requires_capture" {
        let charge_id = str_of(&pi, "latest_charge");
        if let Some(charge) = st.charge_mut(&charge_id) {
            charge["amount_refunded"] = charge["amount"].clone();
            charge["refunded"] = json!(true);
        }
    }
    let pi = st.intent_mut(id).expect("the PaymentIntent");
    pi["status"] = json!("canceled");
    pi["canceled_at"] = json!(now());
    pi["cancellation_reason"] = reason.map_or(Value::Null, Value::String);
    pi["amount_capturable"] = json!(0);
    Ok(pi.clone())
}

fn refund(st: &mut State, params: &Value) -> Result<Value, ApiError> {
    let pi_id = match (
        string_param(params, "payment_intent"),
        string_param(params, "charge"),
    ) {
        (Some(pi), _) => pi,
        (None, Some(charge)) => st
            .charges
            .iter()
            .find(|c| c["id"] == charge.as_str())
            .map(|c| str_of(c, "payment_intent"))
            .ok_or_else(|| no_such("charge", &charge, "charge"))?,
        (None, None) => {
            return Err(ApiError::new(
                400,
                "invalid_request_error",
                "One of the following params should be provided for this request: \
                 payment_intent or charge.",
            )
            .code("parameter_missing"));
        }
    };
    let pi = st
        .intents
        .iter()
        .find(|pi| pi["id"] == pi_id.as_str())
        .cloned()
        .ok_or_else(|| no_such("payment_intent", &pi_id, "payment_intent"))?;
    if pi["status"] != "succeeded" {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            format!(
                "This PaymentIntent ({pi_id}) does not have a successful charge to refund \
                 (status {}).",
                str_of(&pi, "status")
            ),
        )
        .code("charge_not_refundable")
        .param("payment_intent")
        .stored());
    }
    let charge_id = str_of(&pi, "latest_charge");
    let received = int_of(&pi, "amount_received");
    let refunded: i64 = st
        .refunds
        .iter()
        .filter(|r| r["payment_intent"] == pi_id.as_str())
        .map(|r| int_of(r, "amount"))
        .sum();
    let left = received - refunded;
    if left <= 0 {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            format!("Charge {charge_id} has already been refunded."),
        )
        .code("charge_already_refunded")
        .with("charge", json!(charge_id))
        .stored());
    }
    let amount = integer_param(params, "amount")?.unwrap_or(left);
    if amount > left {
        return Err(ApiError::new(
            400,
            "invalid_request_error",
            format!(
                "Refund amount ({amount}) is greater than unrefunded amount on charge ({left})"
            ),
        )
        .code("amount_too_large")
        .param("amount")
        .stored());
    }
    let reason = enum_param(
        params,
        "reason",
        &["duplicate", "fraudulent", "requested_by_customer"],
    )?;
    let refund = json!({
        "id": new_id("re_"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": new_id("txn_"),
        "charge": charge_id,
        "created": now(),
        "currency": pi["currency"],
        "customer": null,
        "customer_account": null,
        "destination_details": { "card": { "type": "refund" }, "type": "card" },
        "metadata": metadata_param(params),
        "payment_intent": pi_id,
        "payment_method": pi["payment_method"],
        "reason": reason,
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null,
    });
    if let Some(charge) = st.charge_mut(&charge_id) {
        let total = refunded + amount;
        charge["amount_refunded"] = json!(total);
        charge["refunded"] = json!(total >= int_of(charge, "amount_captured"));
        if let Some(list) = charge["refunds"]["data"].as_array_mut() {
            list.insert(0, refund.clone());
        }
    }
    st.refunds.push(refund.clone());
    Ok(refund)
}

fn unexpected_state(pi: &Value, message: String) -> ApiError {
    ApiError::new(400, "invalid_request_error", message)
        .code("payment_intent_unexpected_state")
        .with("payment_intent", pi.clone())
        .stored()
}

#[derive(Clone, Copy)]
enum ChargeResult {
    Authorized,
    Declined,
}

/// A charge shaped like `fixtures/stripe/charge.json` (the fixture's placeholders made real:
/// no `source`, `shipping`, `transfer_data`, 3-D Secure or wallet).
fn new_charge(pi: &Value, payment_method: &str, result: ChargeResult) -> Value {
    let id = new_id("ch_");
    let amount = int_of(pi, "amount");
    let declined = matches!(result, ChargeResult::Declined);
    let outcome = if declined {
        json!({
            "advice_code": null,
            "network_advice_code": null,
            "network_decline_code": null,
            "network_status": "declined_by_network",
            "reason": "generic_decline",
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        })
    } else {
        json!({
            "advice_code": null,
            "network_advice_code": null,
            "network_decline_code": null,
            "network_status": "approved_by_network",
            "reason": null,
            "seller_message": "Payment complete.",
            "type": "authorized",
        })
    };
    let card = json!({
        "amount_authorized": if declined { Value::Null } else { json!(amount) },
        "authorization_code": if declined { Value::Null } else { json!("123456") },
        "brand": "visa",
        "checks": {
            "address_line1_check": null,
            "address_postal_code_check": null,
            "cvc_check": "pass",
        },
        "country": "US",
        "exp_month": 12,
        "exp_year": 2034,
        "extended_authorization": { "status": "disabled" },
        "fingerprint": random_alnum(16),
        "funding": "credit",
        "incremental_authorization": { "status": "unavailable" },
        "installments": null,
        "last4": if declined { "0002" } else { "4242" },
        "mandate": null,
        "multicapture": { "status": "unavailable" },
        "network": "visa",
        "network_token": { "used": false },
        "network_transaction_id": null,
        "overcapture": { "maximum_amount_capturable": amount, "status": "unavailable" },
        "regulated_status": "unregulated",
        "three_d_secure": null,
        "transaction_link_id": null,
        "wallet": null,
    });
    let mut charge = json!({
        "id": id,
        "object": "charge",
        "amount": amount,
        "amount_captured": 0,
        "amount_refunded": 0,
        "application": null,
        "application_fee": null,
        "application_fee_amount": null,
        "balance_transaction": if declined { Value::Null } else { json!(new_id("txn_")) },
        "billing_details": {
            "address": {
                "city": null, "country": null, "line1": null, "line2": null,
                "postal_code": null, "state": null,
            },
            "email": null,
            "name": null,
            "phone": null,
            "tax_id": null,
        },
        "calculated_statement_descriptor": "ORDERLY",
        "captured": false,
        "created": now(),
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": false,
        "failure_balance_transaction": null,
        "failure_code": if declined { json!("card_declined") } else { Value::Null },
        "failure_message": if declined { json!("Your card was declined.") } else { Value::Null },
    });
    merge(
        &mut charge,
        json!({
            "fraud_details": {},
            "livemode": false,
            "metadata": pi["metadata"],
            "on_behalf_of": null,
            "outcome": outcome,
            "paid": !declined,
            "payment_intent": pi["id"],
            "payment_method": payment_method,
            "payment_method_details": {
                "card": card,
                "type": "card",
            },
            "receipt_email": pi["receipt_email"],
            "receipt_number": null,
            "receipt_url": if declined {
                Value::Null
            } else {
                json!(format!("https://pay.stripe.com/receipts/payment/{}", random_alnum(40)))
            },
            "refunded": false,
            "refunds": {
                "data": [],
                "has_more": false,
                "object": "list",
                "url": format!("/v1/charges/{id}/refunds"),
            },
            "review": null,
            "shipping": null,
            "source": null,
            "source_transfer": null,
            "statement_descriptor": pi["statement_descriptor"],
            "statement_descriptor_suffix": pi["statement_descriptor_suffix"],
            "status": if declined { "failed" } else { "succeeded" },
            "transfer_data": null,
            "transfer_group": pi["transfer_group"],
        }),
    );
    charge
}

// ---- small helpers ----

/// Adds `more`'s fields to `object` (both JSON objects); keeps `json!` invocations small
/// enough for the macro recursion limit.
fn merge(object: &mut Value, more: Value) {
    if let (Some(object), Value::Object(more)) = (object.as_object_mut(), more) {
        object.extend(more);
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn random_alnum(n: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", random_alnum(24))
}

fn str_of(object: &Value, field: &str) -> String {
    object[field].as_str().unwrap_or_default().to_owned()
}

fn int_of(object: &Value, field: &str) -> i64 {
    object[field].as_i64().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};
    use stripe::{
        ApiErrors, ApiErrorsCode, ApiErrorsType, IdempotencyKey, RequestStrategy, StripeError,
        StripeRequest,
    };
    use stripe_core::payment_intent::{
        CancelPaymentIntent, CancelPaymentIntentCancellationReason, CapturePaymentIntent,
        CreatePaymentIntent, CreatePaymentIntentAutomaticPaymentMethods, RetrievePaymentIntent,
    };
    use stripe_core::refund::CreateRefund;
    use stripe_core::{PaymentIntent, PaymentIntentCaptureMethod, PaymentIntentStatus};
    use stripe_types::Currency;
    use stripe_webhook::{EventObject, Webhook, WebhookError};

    use super::{FakeStripe, Kind, Outcome, WebhookSigner, hmac_sha256, signature_header};

    const WHSEC: &str = "whsec_test_fake";

    // The top-level fields of shared/fixtures/stripe/{payment_intent,charge,refund}.json.
    const PAYMENT_INTENT_FIELDS: &[&str] = &[
        "amount",
        "amount_capturable",
        "amount_details",
        "amount_received",
        "application",
        "application_fee_amount",
        "automatic_payment_methods",
        "canceled_at",
        "cancellation_reason",
        "capture_method",
        "client_secret",
        "confirmation_method",
        "created",
        "currency",
        "customer",
        "customer_account",
        "description",
        "excluded_payment_method_types",
        "id",
        "last_payment_error",
        "latest_charge",
        "livemode",
        "managed_payments",
        "metadata",
        "next_action",
        "object",
        "on_behalf_of",
        "payment_method",
        "payment_method_configuration_details",
        "payment_method_options",
        "payment_method_types",
        "processing",
        "receipt_email",
        "review",
        "setup_future_usage",
        "shipping",
        "source",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "status",
        "transfer_data",
        "transfer_group",
    ];
    const CHARGE_FIELDS: &[&str] = &[
        "amount",
        "amount_captured",
        "amount_refunded",
        "application",
        "application_fee",
        "application_fee_amount",
        "balance_transaction",
        "billing_details",
        "calculated_statement_descriptor",
        "captured",
        "created",
        "currency",
        "customer",
        "description",
        "disputed",
        "failure_balance_transaction",
        "failure_code",
        "failure_message",
        "fraud_details",
        "id",
        "livemode",
        "metadata",
        "object",
        "on_behalf_of",
        "outcome",
        "paid",
        "payment_intent",
        "payment_method",
        "payment_method_details",
        "receipt_email",
        "receipt_number",
        "receipt_url",
        "refunded",
        "refunds",
        "review",
        "shipping",
        "source",
        "source_transfer",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "status",
        "transfer_data",
        "transfer_group",
    ];
    const REFUND_FIELDS: &[&str] = &[
        "amount",
        "balance_transaction",
        "charge",
        "created",
        "currency",
        "customer",
        "customer_account",
        "destination_details",
        "id",
        "metadata",
        "object",
        "payment_intent",
        "payment_method",
        "reason",
        "receipt_number",
        "source_transfer_reversal",
        "status",
        "transfer_reversal",
    ];

    fn keys(object: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = object
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }

    async fn start() -> (FakeStripe, stripe::Client) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let fake = FakeStripe::start().await;
        let client = stripe::ClientBuilder::new(fake.secret_key())
            .url(fake.base_url())
            .build()
            .unwrap();
        (fake, client)
    }

    fn key(k: &str) -> RequestStrategy {
        RequestStrategy::Idempotent(IdempotencyKey::new(k).unwrap())
    }

    fn create_request(booking: &str, amount: i64) -> CreatePaymentIntent {
        CreatePaymentIntent::new(amount, Currency::EUR)
            .capture_method(PaymentIntentCaptureMethod::Manual)
            .automatic_payment_methods(CreatePaymentIntentAutomaticPaymentMethods::new(true))
            .metadata(HashMap::from([(
                "booking_id".to_owned(),
                booking.to_owned(),
            )]))
    }

    async fn create(
        client: &stripe::Client,
        booking: &str,
        amount: i64,
        k: &str,
    ) -> Result<PaymentIntent, StripeError> {
        create_request(booking, amount)
            .customize()
            .request_strategy(key(k))
            .send(client)
            .await
    }

    async fn capture(
        client: &stripe::Client,
        pi: &PaymentIntent,
        k: &str,
    ) -> Result<PaymentIntent, StripeError> {
        CapturePaymentIntent::new(pi.id.clone())
            .customize()
            .request_strategy(key(k))
            .send(client)
            .await
    }

    async fn refund(
        client: &stripe::Client,
        pi: &PaymentIntent,
        amount: Option<i64>,
        k: &str,
    ) -> Result<stripe_core::Refund, StripeError> {
        let mut request = CreateRefund::new().payment_intent(pi.id.as_str());
        if let Some(amount) = amount {
            request = request.amount(amount);
        }
        request
            .customize()
            .request_strategy(key(k))
            .send(client)
            .await
    }

    fn stripe_error(result: Result<impl std::fmt::Debug, StripeError>) -> (u16, Box<ApiErrors>) {
        match result {
            Err(StripeError::Stripe(error, status)) => (status, error),
            other => panic!("expected an error answered by Stripe, got {other:?}"),
        }
    }

    fn typed_intent(value: &Value) -> PaymentIntent {
        miniserde::json::from_str(&value.to_string())
            .unwrap_or_else(|_| panic!("not a stripe PaymentIntent: {value:#}"))
    }

    #[tokio::test]
    async fn served_objects_deserialize_into_the_stripe_types() {
        let (fake, client) = start().await;
        let pi = create(&client, "b-1", 5000, "k-create").await.unwrap();
        assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod);
        assert_eq!(pi.capture_method, PaymentIntentCaptureMethod::Manual);
        assert_eq!(pi.amount, 5000);
        assert_eq!(pi.currency, Currency::EUR);
        assert_eq!(
            pi.metadata.get("booking_id").map(String::as_str),
            Some("b-1")
        );
        let secret = pi.client_secret.clone().unwrap();
        assert!(secret.starts_with(&format!("{}_secret_", pi.id.as_str())));
        assert!(pi.id.as_str().starts_with("pi_"));

        // Every state, straight from the fake's store, read by async-stripe's deserialiser.
        let declined = typed_intent(&fake.decline(pi.id.as_str()));
        assert_eq!(declined.status, PaymentIntentStatus::RequiresPaymentMethod);
        let error = declined.last_payment_error.unwrap();
        assert_eq!(error.type_, ApiErrorsType::CardError);
        assert_eq!(error.code, Some(ApiErrorsCode::CardDeclined));
        assert_eq!(error.decline_code.as_deref(), Some("generic_decline"));
        let failed: stripe_core::Charge =
            miniserde::json::from_str(&fake.charge_of(pi.id.as_str()).unwrap().to_string())
                .unwrap();
        assert!(!failed.paid);

        let authorized = typed_intent(&fake.authorize(pi.id.as_str()));
        assert_eq!(authorized.status, PaymentIntentStatus::RequiresCapture);
        assert_eq!(authorized.amount_capturable, 5000);
        assert!(authorized.last_payment_error.is_none());
        let charge: stripe_core::Charge =
            miniserde::json::from_str(&fake.charge_of(pi.id.as_str()).unwrap().to_string())
                .unwrap();
        assert!(charge.paid && !charge.captured);
        assert_eq!(
            authorized.latest_charge.as_ref().map(|c| c.id().as_str()),
            Some(charge.id.as_str())
        );

        let captured = capture(&client, &pi, "k-capture").await.unwrap();
        assert_eq!(captured.status, PaymentIntentStatus::Succeeded);
        assert_eq!(captured.amount_received, 5000);
        let refunded = refund(&client, &pi, Some(1000), "k-refund").await.unwrap();
        assert!(refunded.id.as_str().starts_with("re_"));
        assert_eq!(refunded.amount, 1000);
        assert_eq!(refunded.status.as_deref(), Some("succeeded"));
        for value in fake.refunds_of(pi.id.as_str()) {
            let _: stripe_core::Refund = miniserde::json::from_str(&value.to_string()).unwrap();
        }
        let charge: stripe_core::Charge =
            miniserde::json::from_str(&fake.charge_of(pi.id.as_str()).unwrap().to_string())
                .unwrap();
        assert!(charge.captured);
        assert_eq!(charge.amount_refunded, 1000);

        // Automatic capture goes straight to succeeded; a cancelled one reads too.
        let auto: PaymentIntent = CreatePaymentIntent::new(700, Currency::EUR)
            .send(&client)
            .await
            .unwrap();
        assert_eq!(
            auto.capture_method,
            PaymentIntentCaptureMethod::AutomaticAsync
        );
        let auto = typed_intent(&fake.authorize(auto.id.as_str()));
        assert_eq!(auto.status, PaymentIntentStatus::Succeeded);
        assert_eq!(auto.amount_received, 700);
        let other = create(&client, "b-2", 100, "k-other").await.unwrap();
        let canceled = CancelPaymentIntent::new(other.id.clone())
            .send(&client)
            .await
            .unwrap();
        assert_eq!(canceled.status, PaymentIntentStatus::Canceled);
        assert!(canceled.canceled_at.is_some());
        typed_intent(&fake.payment_intent(other.id.as_str()).unwrap());
    }

    #[tokio::test]
    async fn a_replayed_key_returns_the_same_intent_and_executes_once() {
        let (fake, client) = start().await;
        let first = create(&client, "b-1", 5000, "booking-b-1-create")
            .await
            .unwrap();
        let second = create(&client, "b-1", 5000, "booking-b-1-create")
            .await
            .unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(first.client_secret, second.client_secret);
        assert_eq!(fake.calls(Kind::Create), 2);
        assert_eq!(fake.executions(Kind::Create), 1);
        assert_eq!(fake.payment_intents().len(), 1);
        assert_eq!(fake.intents_for_booking("b-1").len(), 1);
        let outcomes: Vec<Outcome> = fake.requests().iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, [Outcome::Executed, Outcome::Replayed]);
        let params = &fake.requests()[0].params;
        assert_eq!(params["metadata"]["booking_id"], "b-1");
        assert_eq!(params["capture_method"], "manual");
        assert_eq!(params["automatic_payment_methods"]["enabled"], "true");

        // Another key is another intent.
        create(&client, "b-1", 5000, "booking-b-1-create-2")
            .await
            .unwrap();
        assert_eq!(fake.intents_for_booking("b-1").len(), 2);
        assert_eq!(fake.executions(Kind::Create), 2);
    }

    #[tokio::test]
    async fn the_same_key_with_other_parameters_is_an_idempotency_error() {
        let (fake, client) = start().await;
        create(&client, "b-1", 5000, "k1").await.unwrap();
        let (status, error) = stripe_error(create(&client, "b-1", 6000, "k1").await);
        assert_eq!(status, 400);
        assert_eq!(error.type_, ApiErrorsType::IdempotencyError);
        assert!(
            error
                .message
                .as_deref()
                .unwrap()
                .starts_with("Keys for idempotent requests can only be used with the same parameters they were first used with"),
            "{error:?}"
        );
        // On another endpoint too.
        let pi = fake.payment_intents()[0]["id"].as_str().unwrap().to_owned();
        let (status, error) = stripe_error(
            CancelPaymentIntent::new(pi.as_str())
                .customize()
                .request_strategy(key("k1"))
                .send(&client)
                .await,
        );
        assert_eq!(status, 400);
        assert_eq!(error.type_, ApiErrorsType::IdempotencyError);
        assert_eq!(fake.executions(Kind::Create), 1);
        assert_eq!(fake.executions(Kind::Cancel), 0);
        assert_eq!(
            fake.payment_intent(&pi).unwrap()["status"],
            "requires_payment_method"
        );
    }

    #[tokio::test]
    async fn authorize_capture_refund_and_cancel_follow_stripes_rules() {
        let (fake, client) = start().await;
        let pi = create(&client, "b-1", 5000, "c1").await.unwrap();

        // Not capturable before the customer paid.
        let (status, error) = stripe_error(capture(&client, &pi, "cap-0").await);
        assert_eq!(status, 400);
        assert_eq!(
            error.code,
            Some(ApiErrorsCode::PaymentIntentUnexpectedState)
        );
        assert_eq!(
            error.payment_intent.as_ref().map(|p| p.status.clone()),
            Some(PaymentIntentStatus::RequiresPaymentMethod)
        );

        fake.authorize(pi.id.as_str());
        let retrieved = RetrievePaymentIntent::new(pi.id.clone())
            .send(&client)
            .await
            .unwrap();
        assert_eq!(retrieved.status, PaymentIntentStatus::RequiresCapture);
        assert_eq!(retrieved.amount_capturable, 5000);
        assert_eq!(fake.executions(Kind::Retrieve), 1);

        let captured = capture(&client, &pi, "cap-1").await.unwrap();
        assert_eq!(captured.status, PaymentIntentStatus::Succeeded);
        assert_eq!(captured.amount_received, 5000);
        assert_eq!(captured.amount_capturable, 0);
        assert_eq!(fake.captures_of(pi.id.as_str()).len(), 1);
        assert_eq!(
            fake.captures_of(pi.id.as_str())[0]
                .idempotency_key
                .as_deref(),
            Some("cap-1")
        );

        // A second capture (new key) and a cancel are refused.
        let (status, error) = stripe_error(capture(&client, &pi, "cap-2").await);
        assert_eq!(status, 400);
        assert_eq!(
            error.code,
            Some(ApiErrorsCode::PaymentIntentUnexpectedState)
        );
        let (status, error) =
            stripe_error(CancelPaymentIntent::new(pi.id.clone()).send(&client).await);
        assert_eq!(status, 400);
        assert_eq!(
            error.code,
            Some(ApiErrorsCode::PaymentIntentUnexpectedState)
        );
        assert_eq!(fake.executions(Kind::Capture), 1);
        assert_eq!(fake.captures_of(pi.id.as_str()).len(), 1);

        // Refunds: partial, too much, the rest, then nothing left.
        refund(&client, &pi, Some(2000), "r1").await.unwrap();
        let (status, error) = stripe_error(refund(&client, &pi, Some(3001), "r2").await);
        assert_eq!(status, 400);
        assert_eq!(error.code, Some(ApiErrorsCode::AmountTooLarge));
        let rest = refund(&client, &pi, None, "r3").await.unwrap();
        assert_eq!(rest.amount, 3000);
        let (status, error) = stripe_error(refund(&client, &pi, Some(1), "r4").await);
        assert_eq!(status, 400);
        assert_eq!(error.code, Some(ApiErrorsCode::ChargeAlreadyRefunded));
        assert_eq!(fake.refunds_of(pi.id.as_str()).len(), 2);
        assert_eq!(fake.executions(Kind::Refund), 2);
        assert_eq!(fake.charge_of(pi.id.as_str()).unwrap()["refunded"], true);

        // Cancelling an authorised intent releases it; it cannot be refunded.
        let other = create(&client, "b-2", 900, "c2").await.unwrap();
        fake.authorize(other.id.as_str());
        let canceled = CancelPaymentIntent::new(other.id.clone())
            .cancellation_reason(CancelPaymentIntentCancellationReason::Abandoned)
            .customize()
            .request_strategy(key("cancel-b-2"))
            .send(&client)
            .await
            .unwrap();
        assert_eq!(canceled.status, PaymentIntentStatus::Canceled);
        assert_eq!(canceled.amount_capturable, 0);
        assert_eq!(
            canceled.cancellation_reason.as_ref().map(|r| r.as_str()),
            Some("abandoned")
        );
        let (status, error) = stripe_error(refund(&client, &other, None, "r5").await);
        assert_eq!(status, 400);
        assert_eq!(error.code, Some(ApiErrorsCode::ChargeNotRefundable));
        let (status, _) = stripe_error(
            CancelPaymentIntent::new(other.id.clone())
                .send(&client)
                .await,
        );
        assert_eq!(status, 400);

        // Unknown intents are 404 resource_missing.
        let (status, error) =
            stripe_error(RetrievePaymentIntent::new("pi_missing").send(&client).await);
        assert_eq!(status, 404);
        assert_eq!(error.code, Some(ApiErrorsCode::ResourceMissing));
    }

    #[tokio::test]
    async fn a_stored_500_is_replayed_for_the_same_key_and_a_503_is_not() {
        let (fake, client) = start().await;
        fake.fail_next(Kind::Create, 1, 500);
        let (status, error) = stripe_error(create(&client, "b-1", 5000, "k500").await);
        assert_eq!(status, 500);
        assert_eq!(error.type_, ApiErrorsType::ApiError);
        // The fault is used up, yet the same key gets the stored 500 again.
        let (status, _) = stripe_error(create(&client, "b-1", 5000, "k500").await);
        assert_eq!(status, 500);
        assert_eq!(fake.executions(Kind::Create), 0);
        assert!(fake.payment_intents().is_empty());
        let outcomes: Vec<Outcome> = fake.requests().iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, [Outcome::Injected, Outcome::Replayed]);
        // A new key gets through.
        create(&client, "b-1", 5000, "k500-2").await.unwrap();
        assert_eq!(fake.executions(Kind::Create), 1);

        fake.fail_next(Kind::Create, 1, 503);
        let (status, _) = stripe_error(create(&client, "b-2", 5000, "k503").await);
        assert_eq!(status, 503);
        let pi = create(&client, "b-2", 5000, "k503").await.unwrap();
        assert_eq!(pi.status, PaymentIntentStatus::RequiresPaymentMethod);

        fake.fail_next(Kind::Create, 1, 429);
        let (status, error) = stripe_error(create(&client, "b-3", 5000, "k429").await);
        assert_eq!(status, 429);
        assert_eq!(error.code, Some(ApiErrorsCode::RateLimit));
        assert_eq!(fake.calls(Kind::Create), 6);
        assert_eq!(fake.executions(Kind::Create), 2);
    }

    #[tokio::test]
    async fn a_lost_answer_is_a_transport_error_after_the_capture_happened() {
        let (fake, client) = start().await;
        let pi = create(&client, "b-1", 5000, "c1").await.unwrap();
        fake.authorize(pi.id.as_str());
        fake.lose_answer_after_processing(Kind::Capture, 1);
        let started = Instant::now();
        match capture(&client, &pi, "cap-1").await {
            // hyper-util's "client error (SendRequest)": the connection closed before an
            // answer (a refused connection would be "client error (Connect)").
            Err(StripeError::ClientError(message)) => {
                assert!(message.contains("SendRequest"), "{message}");
            }
            other => panic!("expected a transport error, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(fake.executions(Kind::Capture), 1);
        assert_eq!(fake.captures_of(pi.id.as_str()).len(), 1);
        assert_eq!(
            fake.payment_intent(pi.id.as_str()).unwrap()["status"],
            "succeeded"
        );
        assert!(fake.requests().last().unwrap().answer_lost);

        // The retry with the same key gets the stored answer.
        let replayed = capture(&client, &pi, "cap-1").await.unwrap();
        assert_eq!(replayed.status, PaymentIntentStatus::Succeeded);
        assert_eq!(fake.calls(Kind::Capture), 2);
        assert_eq!(fake.executions(Kind::Capture), 1);
    }

    #[tokio::test]
    async fn a_late_answer_times_the_client_out_after_executing() {
        let (fake, client) = start().await;
        fake.delay_next(Kind::Create, 1, Duration::from_millis(1500));
        let result = create_request("b-1", 5000)
            .customize()
            .request_strategy(key("slow"))
            .timeout(Duration::from_millis(300))
            .send(&client)
            .await;
        assert!(matches!(result, Err(StripeError::Timeout)), "{result:?}");
        assert_eq!(fake.executions(Kind::Create), 1);
        let started = Instant::now();
        let pi = create(&client, "b-1", 5000, "slow").await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(1000));
        assert_eq!(fake.intents_for_booking("b-1")[0]["id"], pi.id.as_str());

        fake.delay_next(Kind::Retrieve, 1, Duration::from_millis(200));
        let started = Instant::now();
        RetrievePaymentIntent::new(pi.id.clone())
            .send(&client)
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_declined_creation_is_a_card_error_the_client_surfaces() {
        let (fake, client) = start().await;
        fake.decline_on_create(1);
        let (status, error) = stripe_error(create(&client, "b-1", 5000, "d1").await);
        assert_eq!(status, 402);
        assert_eq!(error.type_, ApiErrorsType::CardError);
        assert_eq!(error.code, Some(ApiErrorsCode::CardDeclined));
        assert_eq!(error.decline_code.as_deref(), Some("generic_decline"));
        assert!(fake.payment_intents().is_empty());
        // Stored under its key; a new key creates.
        let (status, _) = stripe_error(create(&client, "b-1", 5000, "d1").await);
        assert_eq!(status, 402);
        create(&client, "b-1", 5000, "d2").await.unwrap();
        assert_eq!(fake.executions(Kind::Create), 1);
    }

    #[tokio::test]
    async fn faults_target_routes_and_skip_replays() {
        let (fake, client) = start().await;
        let pi = create(&client, "b-1", 5000, "c1").await.unwrap();
        fake.authorize(pi.id.as_str());
        fake.fail_next(("POST", "/v1/payment_intents/*/capture"), 1, 503);
        fake.fail_next(Kind::Create, 1, 503);
        // A replay does not use the create fault.
        create(&client, "b-1", 5000, "c1").await.unwrap();
        let (status, _) = stripe_error(capture(&client, &pi, "cap").await);
        assert_eq!(status, 503);
        capture(&client, &pi, "cap").await.unwrap();
        assert_eq!(fake.executions(Kind::Capture), 1);
        let (status, _) = stripe_error(create(&client, "b-2", 5000, "c2").await);
        assert_eq!(status, 503);
    }

    #[tokio::test]
    async fn the_http_surface_is_stripes() {
        let (fake, _client) = start().await;
        let http = reqwest::Client::new();
        let url = format!("{}v1/payment_intents", fake.base_url());
        let form = [
            ("amount", "1200"),
            ("currency", "eur"),
            ("capture_method", "manual"),
            ("metadata[booking_id]", "b-9"),
            ("payment_method_types[]", "card"),
        ];

        let unauthorized = http.post(&url).form(&form).send().await.unwrap();
        assert_eq!(unauthorized.status(), 401);
        let body: Value = unauthorized.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let wrong = http
            .post(&url)
            .bearer_auth("sk_test_wrong")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);

        let send = || {
            http.post(&url)
                .bearer_auth(fake.secret_key())
                .header("Idempotency-Key", "raw-1")
                .form(&form)
                .send()
        };
        let first = send().await.unwrap();
        assert_eq!(first.status(), 200);
        assert!(first.headers().get("idempotent-replayed").is_none());
        assert!(first.headers().get("request-id").is_some());
        let first: Value = first.json().await.unwrap();
        let second = send().await.unwrap();
        assert_eq!(second.headers()["idempotent-replayed"], "true");
        let second: Value = second.json().await.unwrap();
        assert_eq!(first, second);
        assert_eq!(first["payment_method_types"], json!(["card"]));
        assert_eq!(first["automatic_payment_methods"], Value::Null);
        assert_eq!(first["metadata"], json!({ "booking_id": "b-9" }));
        assert_eq!(first["object"], "payment_intent");
        // The fixtures' field sets, exactly.
        assert_eq!(keys(&first), PAYMENT_INTENT_FIELDS);
        let pi = first["id"].as_str().unwrap();
        fake.authorize(pi);
        assert_eq!(keys(&fake.charge_of(pi).unwrap()), CHARGE_FIELDS);
        let captured = http
            .post(format!("{url}/{pi}/capture"))
            .bearer_auth(fake.secret_key())
            .send()
            .await
            .unwrap();
        assert_eq!(captured.status(), 200);
        let refund: Value = http
            .post(format!("{}v1/refunds", fake.base_url()))
            .bearer_auth(fake.secret_key())
            .form(&[("payment_intent", pi), ("amount", "100")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(keys(&refund), REFUND_FIELDS);

        let unknown = http
            .get(format!("{}v1/customers/cus_1", fake.base_url()))
            .bearer_auth(fake.secret_key())
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
        assert_eq!(fake.calls(Kind::Other), 1);
        assert_eq!(fake.calls(Kind::Create), 4);
        assert_eq!(fake.executions(Kind::Create), 1);
        assert_eq!(fake.executions(Kind::Capture), 1);
        assert_eq!(fake.executions(Kind::Refund), 1);
    }

    #[test]
    fn env_names_the_fake() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let fake = FakeStripe::start().await;
            let base = fake.base_url();
            assert!(base.starts_with("http://127.0.0.1:") && base.ends_with('/'));
            let env = fake.env(WHSEC);
            assert_eq!(
                env,
                vec![
                    ("STRIPE_SECRET_KEY", "sk_test_fake".to_owned()),
                    ("STRIPE_WEBHOOK_SECRET", WHSEC.to_owned()),
                    ("STRIPE_API_BASE", base.clone()),
                ]
            );
            let addr = base
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned();
            assert!(std::net::TcpStream::connect(&addr).is_ok());
            fake.stop().await;
            assert!(std::net::TcpStream::connect(&addr).is_err());
        });
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[tokio::test]
    async fn webhook_events_verify_with_async_stripe() {
        let (fake, client) = start().await;
        let pi = create(&client, "b-1", 5000, "c1").await.unwrap();
        let signer = fake.webhooks(WHSEC);

        let (payload, signature) = signer.event(
            "payment_intent.amount_capturable_updated",
            fake.authorize(pi.id.as_str()),
        );
        let event = Webhook::construct_event(&payload, &signature, WHSEC).unwrap();
        assert_eq!(
            event.api_version.as_ref().map(|v| v.as_str()),
            Some(super::API_VERSION)
        );
        assert!(event.id.as_str().starts_with("evt_"));
        match event.data.object {
            EventObject::PaymentIntentAmountCapturableUpdated(object) => {
                assert_eq!(object.id, pi.id);
                assert_eq!(object.amount_capturable, 5000);
                assert_eq!(object.metadata["booking_id"], "b-1");
            }
            other => panic!("unexpected event object {other:?}"),
        }
        // The crate's own signer agrees.
        let t: i64 = signature[2..signature.find(',').unwrap()].parse().unwrap();
        assert_eq!(
            signature,
            Webhook::generate_test_header(&payload, WHSEC, Some(t))
        );
        assert_eq!(signature, signature_header(WHSEC, &payload, t));

        capture(&client, &pi, "cap").await.unwrap();
        let succeeded = fake.payment_intent(pi.id.as_str()).unwrap();
        let (payload, signature) = signer.event("payment_intent.succeeded", succeeded.clone());
        let event = Webhook::construct_event(&payload, &signature, WHSEC).unwrap();
        assert!(matches!(
            event.data.object,
            EventObject::PaymentIntentSucceeded(_)
        ));
        let (payload, signature) =
            signer.event("charge.succeeded", fake.charge_of(pi.id.as_str()).unwrap());
        let event = Webhook::construct_event(&payload, &signature, WHSEC).unwrap();
        assert!(matches!(event.data.object, EventObject::ChargeSucceeded(_)));
        refund(&client, &pi, None, "r").await.unwrap();
        let (payload, signature) =
            signer.event("charge.refunded", fake.charge_of(pi.id.as_str()).unwrap());
        let event = Webhook::construct_event(&payload, &signature, WHSEC).unwrap();
        match event.data.object {
            EventObject::ChargeRefunded(charge) => assert!(charge.refunded),
            other => panic!("unexpected event object {other:?}"),
        }
        let (payload, signature) =
            signer.event("refund.created", fake.refunds_of(pi.id.as_str())[0].clone());
        let event = Webhook::construct_event(&payload, &signature, WHSEC).unwrap();
        assert!(matches!(event.data.object, EventObject::RefundCreated(_)));

        let other = create(&client, "b-2", 100, "c2").await.unwrap();
        let (payload, signature) = signer.event(
            "payment_intent.payment_failed",
            fake.decline(other.id.as_str()),
        );
        let event = Webhook::construct_event(&payload, &signature, WHSEC).unwrap();
        assert!(matches!(
            event.data.object,
            EventObject::PaymentIntentPaymentFailed(_)
        ));

        // Stale, wrongly signed, tampered.
        let stale_at = chrono::Utc::now().timestamp() - 600;
        let (payload, signature) =
            signer.event_at("payment_intent.succeeded", succeeded.clone(), stale_at);
        assert!(matches!(
            Webhook::construct_event(&payload, &signature, WHSEC),
            Err(WebhookError::BadTimestamp(t)) if t == stale_at
        ));
        assert!(
            Webhook::construct_event_with_timestamp(&payload, &signature, WHSEC, stale_at).is_ok()
        );
        let (payload, signature) =
            WebhookSigner::new("whsec_other").event("payment_intent.succeeded", succeeded);
        assert!(matches!(
            Webhook::construct_event(&payload, &signature, WHSEC),
            Err(WebhookError::BadSignature)
        ));
        let tampered = payload.replace("\"livemode\":false", "\"livemode\":true");
        assert_ne!(tampered, payload);
        assert!(matches!(
            Webhook::construct_event(
                &tampered,
                &signer.sign(&payload, chrono::Utc::now().timestamp()),
                WHSEC
            ),
            Err(WebhookError::BadSignature)
        ));
    }
}
