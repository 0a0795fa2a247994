//! Clients of the outside world (payments, e-mail, SMS), each behind a small trait so that
//! jobs are tested against real local defaults or fake HTTP servers.

pub mod mail;
pub mod payments;
pub mod sms;

use std::sync::Arc;

use crate::config::Settings;

/// How a provider call failed; decides whether a job is retried.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// Retrying cannot help (declined card, invalid phone number, bad address).
    #[error("permanent: {0}")]
    Permanent(String),
    /// May work later (timeout, 5xx, connection refused).
    #[error("transient: {0}")]
    Transient(String),
}

/// Every provider client, built once from settings and shared by the handlers.
#[derive(Clone)]
pub struct Providers {
    /// Payments (Stripe or simulated).
    pub payments: Arc<dyn payments::PaymentGateway>,
    /// E-mail (SMTP or `.eml` files).
    pub mail: Arc<dyn mail::Mailer>,
    /// SMS (Twilio or a log file).
    pub sms: Arc<dyn sms::SmsSender>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("payments", &self.payments.name())
            .field("mail", &self.mail.name())
            .field("sms", &self.sms.name())
            .finish()
    }
}

impl Providers {
    /// Builds the clients that the settings name.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            payments: payments::from_settings(settings)?,
            mail: mail::from_settings(settings)?,
            sms: sms::from_settings(settings)?,
        })
    }
}
