//! Payments: a PaymentIntent-shaped gateway (create with manual capture, capture, cancel,
//! refund), every call carrying an idempotency key derived from our IDs.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::ProviderError;
use crate::config::{PaymentSettings, Settings, SimulatedPayments};
use crate::entities::payments::PaymentProvider;

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
    /// Waiting for the customer to pay.
    RequiresPayment,
    /// Authorised, waiting for capture.
    Authorized,
}

/// A created payment.
#[derive(Debug, Clone)]
pub struct CreatedPayment {
    /// The provider's id (`pi_...`).
    pub provider_payment_id: String,
    /// What the frontend needs to pay.
    pub client_secret: Option<String>,
    /// Its state.
    pub state: IntentState,
}

/// A payment gateway.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> PaymentProvider;
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Whether `create` answers at once without a network call, so that it may run inside
    /// the booking transaction (the simulated provider).
    fn is_instant(&self) -> bool {
        false
    }
    /// Creates a payment with manual capture.
    async fn create(&self, payment: &NewPayment) -> Result<CreatedPayment, ProviderError>;
    /// Captures an authorised payment in full.
    async fn capture(
        &self,
        provider_payment_id: &str,
        idempotency_key: &str,
    ) -> Result<(), ProviderError>;
    /// Cancels a payment that was not captured.
    async fn cancel(
        &self,
        provider_payment_id: &str,
        idempotency_key: &str,
    ) -> Result<(), ProviderError>;
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

/// Builds the gateway the settings name.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn PaymentGateway>> {
    match &settings.payments {
        PaymentSettings::Simulated(mode) => Ok(Arc::new(SimulatedGateway { mode: *mode })),
        PaymentSettings::Stripe { .. } => anyhow::bail!(
            "STRIPE_SECRET_KEY: the Stripe gateway is not part of this build yet; unset the Stripe keys to use simulated payments"
        ),
    }
}

/// The clearly labelled simulated provider: no money moves. With `authorize`, every payment
/// is authorised at once; with `never`, none ever is.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedGateway {
    /// What happens to new payments.
    pub mode: SimulatedPayments,
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    fn provider(&self) -> PaymentProvider {
        PaymentProvider::Simulated
    }

    fn name(&self) -> &'static str {
        "simulated"
    }

    fn is_instant(&self) -> bool {
        true
    }

    async fn create(&self, payment: &NewPayment) -> Result<CreatedPayment, ProviderError> {
        let id = format!("sim_pi_{}", payment.booking_id.simple());
        Ok(CreatedPayment {
            client_secret: Some(format!("{id}_secret_simulated")),
            provider_payment_id: id,
            state: match self.mode {
                SimulatedPayments::Authorize => IntentState::Authorized,
                SimulatedPayments::Never => IntentState::RequiresPayment,
            },
        })
    }

    async fn capture(&self, _: &str, _: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn cancel(&self, _: &str, _: &str) -> Result<(), ProviderError> {
        Ok(())
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
