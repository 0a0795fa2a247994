//! Metrics of every provider call, taken at the trait boundary so that each client (Stripe,
//! SMTP, Twilio, and the local stand-ins) is counted the same way:
//! `provider_calls_total{provider, operation, outcome}` and
//! `provider_call_duration_seconds{provider, operation}`. `provider` is the client's
//! `name()`; `outcome` is `ok`, `permanent`, `transient` or `state` (the kinds of
//! [`ProviderError`]), or `cancelled` when the caller gave up waiting (a job's timeout).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use uuid::Uuid;

use super::ProviderError;
use super::mail::{Mailer, OutgoingEmail};
use super::payments::{Intent, NewPayment, PaymentGateway};
use super::sms::{OutgoingSms, SmsSender};
use orderly_core::telemetry::meter::Meter;
use orderly_db::payments::PaymentProvider;

/// One call in flight; records its metrics when it ends, or as `cancelled` if dropped first.
struct Call<'a> {
    meter: &'a Meter,
    provider: &'static str,
    operation: &'static str,
    started: Instant,
    outcome: &'static str,
}

impl<'a> Call<'a> {
    fn start(meter: &'a Meter, provider: &'static str, operation: &'static str) -> Self {
        Self {
            meter,
            provider,
            operation,
            started: Instant::now(),
            outcome: "cancelled",
        }
    }

    fn ended<T>(mut self, result: &Result<T, ProviderError>) {
        self.outcome = match result {
            Ok(_) => "ok",
            Err(ProviderError::Permanent(_)) => "permanent",
            Err(ProviderError::Transient(_)) => "transient",
            Err(ProviderError::State(_)) => "state",
        };
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let (provider, operation, outcome) = (self.provider, self.operation, self.outcome);
        let seconds = self.started.elapsed().as_secs_f64();
        self.meter.record(|| {
            metrics::counter!("provider_calls_total", "provider" => provider, "operation" => operation, "outcome" => outcome)
                .increment(1);
            metrics::histogram!("provider_call_duration_seconds", "provider" => provider, "operation" => operation)
                .record(seconds);
        });
    }
}

/// Awaits `call`, recording it as `operation` of `provider`.
async fn observe<T>(
    meter: &Meter,
    provider: &'static str,
    operation: &'static str,
    call: impl Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    let metered = Call::start(meter, provider, operation);
    let result = call.await;
    metered.ended(&result);
    result
}

/// A payment gateway whose calls are measured.
pub struct MeteredGateway {
    /// The gateway measured.
    pub inner: Arc<dyn PaymentGateway>,
    /// Where the measures go.
    pub meter: Meter,
}

#[async_trait]
impl PaymentGateway for MeteredGateway {
    fn provider(&self) -> PaymentProvider {
        self.inner.provider()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn create(&self, payment: &NewPayment) -> Result<Intent, ProviderError> {
        observe(
            &self.meter,
            self.name(),
            "create",
            self.inner.create(payment),
        )
        .await
    }

    async fn retrieve(&self, provider_payment_id: &str) -> Result<Intent, ProviderError> {
        let call = self.inner.retrieve(provider_payment_id);
        observe(&self.meter, self.name(), "retrieve", call).await
    }

    async fn find(&self, booking_id: Uuid) -> Result<Option<Intent>, ProviderError> {
        observe(
            &self.meter,
            self.name(),
            "find",
            self.inner.find(booking_id),
        )
        .await
    }

    async fn capture(&self, id: &str, idempotency_key: &str) -> Result<Intent, ProviderError> {
        let call = self.inner.capture(id, idempotency_key);
        observe(&self.meter, self.name(), "capture", call).await
    }

    async fn cancel(&self, id: &str, idempotency_key: &str) -> Result<Intent, ProviderError> {
        let call = self.inner.cancel(id, idempotency_key);
        observe(&self.meter, self.name(), "cancel", call).await
    }

    async fn refund(
        &self,
        id: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        let call = self.inner.refund(id, amount_cents, idempotency_key);
        observe(&self.meter, self.name(), "refund", call).await
    }
}

/// A mailer whose sends are measured.
pub struct MeteredMailer {
    /// The mailer measured.
    pub inner: Arc<dyn Mailer>,
    /// Where the measures go.
    pub meter: Meter,
}

#[async_trait]
impl Mailer for MeteredMailer {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<String, ProviderError> {
        observe(&self.meter, self.name(), "send", self.inner.send(email)).await
    }

    fn max_in_flight(&self) -> Option<usize> {
        self.inner.max_in_flight()
    }
}

/// An SMS sender whose sends are measured.
pub struct MeteredSms {
    /// The sender measured.
    pub inner: Arc<dyn SmsSender>,
    /// Where the measures go.
    pub meter: Meter,
}

#[async_trait]
impl SmsSender for MeteredSms {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<String, ProviderError> {
        observe(&self.meter, self.name(), "send", self.inner.send(sms)).await
    }

    fn max_in_flight(&self) -> Option<usize> {
        self.inner.max_in_flight()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::payments::SimulatedGateway;
    use orderly_core::config::SimulatedPayments;

    /// An SMS sender that fails the way it is told, or never answers.
    struct Failing(Option<ProviderError>);

    #[async_trait]
    impl SmsSender for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }

        async fn send(&self, _: &OutgoingSms) -> Result<String, ProviderError> {
            match &self.0 {
                Some(e) => Err(e.clone()),
                None => std::future::pending().await,
            }
        }
    }

    fn sms() -> OutgoingSms {
        OutgoingSms {
            id: Uuid::new_v4(),
            to: "+15551234567".into(),
            body: "hello".into(),
        }
    }

    fn value(scrape: &str, series: &str) -> Option<f64> {
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test]
    async fn provider_call_metrics_count_by_provider_operation_and_outcome_in_the_meters_registry()
    {
        let recorder = Arc::new(orderly_core::telemetry::meter::prometheus_recorder().unwrap());
        let handle = recorder.handle();
        let meter = Meter::local(recorder);
        let gateway = MeteredGateway {
            inner: Arc::new(SimulatedGateway {
                mode: SimulatedPayments::Authorize,
            }),
            meter: meter.clone(),
        };
        for _ in 0..2 {
            let payment = NewPayment {
                booking_id: Uuid::new_v4(),
                amount_cents: 100,
                currency: "eur".into(),
                idempotency_key: "k".into(),
            };
            gateway.create(&payment).await.unwrap();
        }
        assert!(gateway.retrieve("sim_pi_1").await.is_err());
        let transient = MeteredSms {
            inner: Arc::new(Failing(Some(ProviderError::Transient("503".into())))),
            meter: meter.clone(),
        };
        assert!(transient.send(&sms()).await.is_err());
        let silent = MeteredSms {
            inner: Arc::new(Failing(None)),
            meter,
        };
        let gave_up = tokio::time::timeout(Duration::from_millis(10), silent.send(&sms())).await;
        assert!(gave_up.is_err());

        let scrape = handle.render();
        let calls = |labels: &str| value(&scrape, &format!("provider_calls_total{{{labels}}}"));
        assert_eq!(
            calls(r#"provider="simulated",operation="create",outcome="ok""#),
            Some(2.0),
            "{scrape}"
        );
        assert_eq!(
            calls(r#"provider="simulated",operation="retrieve",outcome="permanent""#),
            Some(1.0),
            "{scrape}"
        );
        assert_eq!(
            calls(r#"provider="failing",operation="send",outcome="transient""#),
            Some(1.0),
            "{scrape}"
        );
        assert_eq!(
            calls(r#"provider="failing",operation="send",outcome="cancelled""#),
            Some(1.0),
            "{scrape}"
        );
        assert_eq!(
            value(
                &scrape,
                r#"provider_call_duration_seconds_count{provider="simulated",operation="create"}"#
            ),
            Some(2.0),
            "{scrape}"
        );
    }
}
