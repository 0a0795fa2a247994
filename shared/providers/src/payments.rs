//! Payments: a PaymentIntent-shaped gateway (create with manual capture, capture, cancel,
//! refund), every call carrying an idempotency key derived from our IDs.

use async_trait::async_trait;
use uuid::Uuid;

use super::ProviderError;
use orderly_core::config::SimulatedPayments;
use orderly_db::payments::PaymentProvider;

/// What a new payment should be.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// Our booking (sent as `metadata[booking_id]`).
    pub booking_id: Uuid,
    /// Minor units.
    pub amount_cents: i64,
    /// Lower-case ISO 4217.
    pub currency: String,
    /// Same key, same result: a retried creation never makes a second intent.
    pub idempotency_key: String,
}

/// The state of a payment at the provider, as far as we care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentState {
    /// Waiting for the customer to pay (or to try again after a failed attempt).
    RequiresPayment,
    /// The customer's payment is being processed.
    Processing,
    /// Authorised, waiting for capture.
    Authorized,
    /// Captured (Stripe: `succeeded`).
    Captured,
    /// Cancelled: it can never be paid or captured.
    Canceled,
}

/// A payment at the provider (a PaymentIntent).
#[derive(Debug, Clone)]
pub struct Intent {
    /// The provider's id (`pi_...`).
    pub provider_payment_id: String,
    /// What the frontend needs to pay.
    pub client_secret: Option<String>,
    /// Its state.
    pub state: IntentState,
    /// Minor units received (captured).
    pub amount_received_cents: i64,
    /// Minor units refunded so far.
    pub amount_refunded_cents: i64,
}

/// A payment gateway. Calls that change something carry an idempotency key; a
/// [`ProviderError::State`] means the provider refused because of the payment's current
/// state, which [`PaymentGateway::retrieve`] then tells.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> PaymentProvider;
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Creates a payment with manual capture.
    async fn create(&self, payment: &NewPayment) -> Result<Intent, ProviderError>;
    /// Reads a payment's current state.
    async fn retrieve(&self, provider_payment_id: &str) -> Result<Intent, ProviderError>;
    /// Finds the payment made for `booking_id`, if any (after a creation whose answer was
    /// lost, before trying with a new key).
    async fn find(&self, booking_id: Uuid) -> Result<Option<Intent>, ProviderError>;
    /// Captures an authorised payment in full.
    async fn capture(
        &self,
        provider_payment_id: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError>;
    /// Cancels a payment that was not captured.
    async fn cancel(
        &self,
        provider_payment_id: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError>;
    /// Refunds `amount_cents` of a captured payment; returns the refund's id.
    async fn refund(
        &self,
        provider_payment_id: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<String, ProviderError>;
}

/// The idempotency key of one step (`create`, `capture`, `cancel`, `refund`) of a booking's
/// payment: the same step of the same booking is the same request to the provider.
pub fn idempotency_key(booking_id: Uuid, step: &str) -> String {
    format!("orderly-booking-{booking_id}-{step}")
}

/// The key of the `n`th try of a step (`n` = the calls before it whose outcome stayed
/// unknown): the first try uses [`idempotency_key`]; a later one, made only once the
/// provider's state proved the earlier tries did nothing, a key of its own, since the
/// provider replays whatever it stored under the old one (a 500 included).
pub fn attempt_key(booking_id: Uuid, step: &str, unknown_before: i32) -> String {
    match unknown_before {
        0 => idempotency_key(booking_id, step),
        n => format!("{}-{}", idempotency_key(booking_id, step), n + 1),
    }
}

/// The clearly labelled simulated provider: no money moves. With `authorize`, every payment
/// is authorised at once; with `never`, none ever is.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedGateway {
    /// What happens to new payments.
    pub mode: SimulatedPayments,
}

impl SimulatedGateway {
    fn intent(&self, id: String, state: IntentState) -> Intent {
        Intent {
            client_secret: Some(format!("{id}_secret_simulated")),
            provider_payment_id: id,
            state,
            amount_received_cents: 0,
            amount_refunded_cents: 0,
        }
    }
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    fn provider(&self) -> PaymentProvider {
        PaymentProvider::Simulated
    }

    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn create(&self, payment: &NewPayment) -> Result<Intent, ProviderError> {
        let id = format!("sim_pi_{}", payment.booking_id.simple());
        Ok(self.intent(
            id,
            match self.mode {
                SimulatedPayments::Authorize => IntentState::Authorized,
                SimulatedPayments::Never => IntentState::RequiresPayment,
            },
        ))
    }

    async fn retrieve(&self, _: &str) -> Result<Intent, ProviderError> {
        // Its calls never fail, so nothing ever needs to be read back.
        Err(ProviderError::Permanent(
            "the simulated provider keeps no state to read".into(),
        ))
    }

    async fn find(&self, _: Uuid) -> Result<Option<Intent>, ProviderError> {
        Ok(None)
    }

    async fn capture(&self, id: &str, _: &str) -> Result<Intent, ProviderError> {
        Ok(self.intent(id.to_owned(), IntentState::Captured))
    }

    async fn cancel(&self, id: &str, _: &str) -> Result<Intent, ProviderError> {
        Ok(self.intent(id.to_owned(), IntentState::Canceled))
    }

    async fn refund(
        &self,
        provider_payment_id: &str,
        _: i64,
        _: &str,
    ) -> Result<String, ProviderError> {
        Ok(format!("sim_re_{provider_payment_id}"))
    }
}

/// An event about one payment.
#[derive(Debug, Clone)]
pub struct PaymentEvent {
    /// The provider's event id (`evt_...`): applied once.
    pub id: String,
    /// The provider's event type (`payment_intent.succeeded`), for the record and the log.
    pub event_type: String,
    /// What happened.
    pub kind: EventKind,
    /// The payment as the event shows it.
    pub intent: Intent,
    /// `metadata[booking_id]`, when present: finds a payment whose id we never recorded
    /// (its creation's answer was lost).
    pub booking_id: Option<Uuid>,
}

/// What an event says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The customer's payment is authorised and can be captured.
    Authorized,
    /// A payment attempt failed (declined card); the customer may try again.
    PaymentFailed {
        /// The provider's reason.
        reason: String,
    },
    /// The payment was captured.
    Succeeded,
    /// The payment was cancelled.
    Canceled,
    /// The charge was refunded (in part or in full; the intent carries the total).
    Refunded,
    /// The customer disputed the charge with their bank.
    Disputed {
        /// The provider's reason (`fraudulent`, ...).
        reason: String,
    },
    /// Any other event: recorded and acknowledged.
    Other,
}
