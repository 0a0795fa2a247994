//! Stripe PaymentIntents with manual capture, through async-stripe. Each call is made once
//! (no retries inside the client): the job that made it decides, after reading the
//! PaymentIntent, whether and with which idempotency key to try again.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_core::payment_intent::{
    CancelPaymentIntent, CapturePaymentIntent, CreatePaymentIntent,
    CreatePaymentIntentAutomaticPaymentMethods, RetrievePaymentIntent, SearchPaymentIntent,
};
use stripe_core::refund::CreateRefund;
use stripe_core::{PaymentIntent, PaymentIntentCaptureMethod, PaymentIntentStatus};
use stripe_types::Expandable;
use uuid::Uuid;

use sha2::{Digest, Sha256};
use stripe_webhook::{EventObject, WebhookError};

use super::payments::{Intent, IntentState, NewPayment, PaymentGateway};
use super::{Detail, ProviderError};
use crate::payments::{EventKind, PaymentEvent};
use orderly_db::payments::PaymentProvider;

/// The longest one call to Stripe may take; past it the outcome is unknown (transient).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Stripe, or a server speaking its API at `STRIPE_API_BASE`.
pub struct StripeGateway {
    client: Client,
}

impl StripeGateway {
    /// A client for `api_base` (ending in `/`).
    pub fn new(secret_key: &SecretString, api_base: &str) -> anyhow::Result<Self> {
        let client = ClientBuilder::new(secret_key.expose_secret())
            .url(api_base)
            .timeout(CALL_TIMEOUT)
            .request_strategy(RequestStrategy::Once)
            .build()
            .context("STRIPE_SECRET_KEY / STRIPE_API_BASE")?;
        Ok(Self { client })
    }
}

fn keyed(key: &str) -> Result<RequestStrategy, ProviderError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|e| {
            ProviderError::Permanent(Detail::caused_by(format!("idempotency key `{key}`"), e))
        })
}

/// Stripe's answer, classified: what retrying cannot change is permanent; what a read of
/// the object explains is `State`; the rest (429, 5xx, no answer) is transient, and for a
/// 5xx or a lost answer whether the call took effect is unknown.
fn classify(error: StripeError) -> ProviderError {
    match error {
        StripeError::Stripe(api, status) => {
            let code = api.code.as_ref().map(|c| c.as_str().to_owned());
            let detail = format!(
                "Stripe {status} {}{}: {}",
                api.type_.as_str(),
                code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
                api.message.as_deref().unwrap_or("no message"),
            );
            // A key reused with other parameters: the object's state tells what to do.
            if api.type_.as_str() == "idempotency_error" {
                return ProviderError::State(detail.into());
            }
            match (status, code.as_deref()) {
                (
                    400,
                    Some(
                        "payment_intent_unexpected_state"
                        | "charge_already_refunded"
                        | "charge_already_captured"
                        | "amount_too_large",
                    ),
                ) => ProviderError::State(detail.into()),
                // A key used concurrently (409) or a request Stripe may repeat.
                (409 | 429, _) => ProviderError::transient(&detail),
                // A bad or revoked key is the operator's to fix; retrying then works.
                (401 | 403, _) => ProviderError::transient(&detail),
                (status, _) if status >= 500 => ProviderError::transient(&detail),
                _ => ProviderError::permanent(&detail),
            }
        }
        StripeError::ConfigError(e) => {
            ProviderError::Permanent(format!("Stripe client: {e}").into())
        }
        StripeError::Timeout => ProviderError::Transient(
            format!("Stripe: no answer within {} s", CALL_TIMEOUT.as_secs()).into(),
        ),
        StripeError::ClientError(e) => ProviderError::Transient(format!("Stripe: {e}").into()),
        // An answer we could not read: the call may have taken effect.
        StripeError::JSONDeserialize(e) => {
            ProviderError::Transient(format!("Stripe: unreadable answer: {e}").into())
        }
    }
}

fn intent(pi: &PaymentIntent) -> Intent {
    let state = match &pi.status {
        PaymentIntentStatus::RequiresCapture => IntentState::Authorized,
        PaymentIntentStatus::Succeeded => IntentState::Captured,
        PaymentIntentStatus::Canceled => IntentState::Canceled,
        PaymentIntentStatus::Processing => IntentState::Processing,
        PaymentIntentStatus::RequiresPaymentMethod
        | PaymentIntentStatus::RequiresConfirmation
        | PaymentIntentStatus::RequiresAction
        | PaymentIntentStatus::Unknown(_) => IntentState::RequiresPayment,
        // A status newer than this client: nothing to capture or cancel yet.
        _ => IntentState::RequiresPayment,
    };
    let amount_refunded_cents = match &pi.latest_charge {
        Some(Expandable::Object(charge)) => charge.amount_refunded,
        _ => 0,
    };
    Intent {
        provider_payment_id: pi.id.as_str().to_owned(),
        client_secret: pi.client_secret.clone(),
        state,
        amount_received_cents: pi.amount_received,
        amount_refunded_cents,
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    fn provider(&self) -> PaymentProvider {
        PaymentProvider::Stripe
    }

    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn create(&self, payment: &NewPayment) -> Result<Intent, ProviderError> {
        let currency = payment
            .currency
            .parse::<stripe_types::Currency>()
            .map_err(|_| {
                ProviderError::Permanent(
                    format!("currency `{}` unknown to Stripe", payment.currency).into(),
                )
            })?;
        let metadata = HashMap::from([("booking_id".to_owned(), payment.booking_id.to_string())]);
        let created = CreatePaymentIntent::new(payment.amount_cents, currency)
            .capture_method(PaymentIntentCaptureMethod::Manual)
            .automatic_payment_methods(CreatePaymentIntentAutomaticPaymentMethods::new(true))
            .metadata(metadata)
            .customize()
            .request_strategy(keyed(&payment.idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(intent(&created))
    }

    async fn retrieve(&self, provider_payment_id: &str) -> Result<Intent, ProviderError> {
        let found = RetrievePaymentIntent::new(provider_payment_id)
            .expand(vec!["latest_charge".to_owned()])
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(intent(&found))
    }

    async fn find(&self, booking_id: Uuid) -> Result<Option<Intent>, ProviderError> {
        let query = format!("metadata['booking_id']:'{booking_id}'");
        let found = SearchPaymentIntent::new(query)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(found.data.first().map(intent))
    }

    async fn capture(
        &self,
        provider_payment_id: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        let captured = CapturePaymentIntent::new(provider_payment_id)
            .customize()
            .request_strategy(keyed(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(intent(&captured))
    }

    async fn cancel(
        &self,
        provider_payment_id: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        let cancelled = CancelPaymentIntent::new(provider_payment_id)
            .customize()
            .request_strategy(keyed(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(intent(&cancelled))
    }

    async fn refund(
        &self,
        provider_payment_id: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        let refund = CreateRefund::new()
            .payment_intent(provider_payment_id)
            .amount(amount_cents)
            .customize()
            .request_strategy(keyed(idempotency_key)?)
            .send(&self.client)
            .await
            .map_err(classify)?;
        Ok(refund.id.as_str().to_owned())
    }
}

/// Why a webhook request was refused (`400`, nothing changes).
#[derive(Debug, thiserror::Error)]
#[error("invalid Stripe webhook: {0}")]
pub struct WebhookRefused(String);

/// A webhook event whose signature holds, known by its id and type only: what the inbox
/// stores before anything reads it further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEvent {
    /// `evt_...`; for a signed body without one, `unreadable-<SHA-256 of the body>`.
    pub id: String,
    /// `payment_intent.succeeded`, ...; `unknown` when the body names none.
    pub event_type: String,
}

/// Verifies a webhook's `Stripe-Signature` against the endpoint's secret (with Stripe's
/// five-minute tolerance). A correctly signed event is accepted whether or not this version
/// can read it (a newer API version): reading it is the job's, whose failure is visible and
/// retryable, while a `400` would make Stripe retry and then disable the endpoint.
pub fn verify_signature(
    payload: &[u8],
    signature: Option<&str>,
    secret: &SecretString,
) -> Result<VerifiedEvent, WebhookRefused> {
    let signature = signature.ok_or_else(|| WebhookRefused("no Stripe-Signature header".into()))?;
    let payload =
        std::str::from_utf8(payload).map_err(|_| WebhookRefused("the body is not UTF-8".into()))?;
    match stripe_webhook::Webhook::construct_event(payload, signature, secret.expose_secret()) {
        Ok(event) => Ok(VerifiedEvent {
            id: event.id.as_str().to_owned(),
            event_type: event.type_.as_str().to_owned(),
        }),
        // The signature and its age are checked before the body is parsed: it holds.
        Err(WebhookError::BadParse(_)) => {
            let head: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
            let id = match head["id"].as_str() {
                Some(id) if !id.is_empty() => id.to_owned(),
                _ => format!("unreadable-{}", hex::encode(Sha256::digest(payload))),
            };
            let event_type = head["type"].as_str().unwrap_or("unknown").to_owned();
            Ok(VerifiedEvent { id, event_type })
        }
        Err(e) => Err(WebhookRefused(e.to_string())),
    }
}

/// The key [`parse_event`] signs with: async-stripe reads an event only behind a signature
/// check (or through `Webhook::insecure`, which logs a warning at every call in release
/// builds). The body was verified on receipt, so it is signed again here only to reach the
/// parser.
const PARSE_KEY: &str = "orderly-verified-on-receipt";

/// Reads a stored event (verified on receipt by [`verify_signature`]). Events about no
/// payment come back as [`EventKind::Other`] with an empty payment id; an event this version
/// cannot read is an error naming why.
pub fn parse_event(payload: &str) -> Result<PaymentEvent, String> {
    let head: serde_json::Value =
        serde_json::from_str(payload).map_err(|e| format!("the event is not JSON: {e}"))?;
    let event_type = head["type"].as_str().unwrap_or_default();
    if event_type == "charge.dispute.created" {
        return parse_dispute(&head);
    }
    let signed = stripe_webhook::Webhook::generate_test_header(payload, PARSE_KEY, None);
    let event =
        stripe_webhook::Webhook::construct_event(payload, &signed, PARSE_KEY).map_err(|e| {
            format!(
                "a `{event_type}` event (API version {}) this version cannot read: {e}",
                head["api_version"].as_str().unwrap_or("unknown")
            )
        })?;
    let booking_of =
        |pi: &PaymentIntent| pi.metadata.get("booking_id").and_then(|id| id.parse().ok());
    let (kind, intent, booking_id) = match event.data.object {
        EventObject::PaymentIntentAmountCapturableUpdated(pi) => {
            (EventKind::Authorized, intent(&pi), booking_of(&pi))
        }
        EventObject::PaymentIntentPaymentFailed(pi) => {
            let reason = pi
                .last_payment_error
                .as_ref()
                .map(|e| {
                    let code = e
                        .decline_code
                        .clone()
                        .or(e.code.as_ref().map(|c| c.as_str().to_owned()));
                    format!(
                        "{}: {}",
                        code.as_deref().unwrap_or("payment_failed"),
                        e.message.as_deref().unwrap_or("the payment failed")
                    )
                })
                .unwrap_or_else(|| "the payment failed".into());
            (
                EventKind::PaymentFailed {
                    reason: super::redact(&reason),
                },
                intent(&pi),
                booking_of(&pi),
            )
        }
        EventObject::PaymentIntentSucceeded(pi) => {
            (EventKind::Succeeded, intent(&pi), booking_of(&pi))
        }
        EventObject::PaymentIntentCanceled(pi) => {
            (EventKind::Canceled, intent(&pi), booking_of(&pi))
        }
        EventObject::ChargeRefunded(charge) => {
            let provider_payment_id = match &charge.payment_intent {
                Some(Expandable::Id(id)) => id.as_str().to_owned(),
                Some(Expandable::Object(pi)) => pi.id.as_str().to_owned(),
                None => String::new(),
            };
            let refunded = Intent {
                provider_payment_id,
                client_secret: None,
                state: IntentState::Captured,
                amount_received_cents: charge.amount_captured,
                amount_refunded_cents: charge.amount_refunded,
            };
            (EventKind::Refunded, refunded, None)
        }
        _ => (EventKind::Other, no_intent(String::new()), None),
    };
    Ok(PaymentEvent {
        id: event.id.as_str().to_owned(),
        event_type: event.type_.as_str().to_owned(),
        kind,
        intent,
        booking_id,
    })
}

/// `charge.dispute.created`, read from the two fields it is needed for (the PaymentIntent
/// and the reason), so that the rest of Stripe's large Dispute object may change freely.
fn parse_dispute(event: &serde_json::Value) -> Result<PaymentEvent, String> {
    let dispute = &event["data"]["object"];
    let provider_payment_id = match &dispute["payment_intent"] {
        serde_json::Value::String(id) => id.clone(),
        object => object["id"].as_str().unwrap_or_default().to_owned(),
    };
    if provider_payment_id.is_empty() {
        return Err("a dispute without a payment_intent".into());
    }
    Ok(PaymentEvent {
        id: event["id"].as_str().unwrap_or_default().to_owned(),
        event_type: "charge.dispute.created".into(),
        kind: EventKind::Disputed {
            reason: dispute["reason"].as_str().unwrap_or("unknown").to_owned(),
        },
        intent: no_intent(provider_payment_id),
        booking_id: None,
    })
}

/// An intent that says nothing about the payment's state (an event about something else).
fn no_intent(provider_payment_id: String) -> Intent {
    Intent {
        provider_payment_id,
        client_secret: None,
        state: IntentState::RequiresPayment,
        amount_received_cents: 0,
        amount_refunded_cents: 0,
    }
}
