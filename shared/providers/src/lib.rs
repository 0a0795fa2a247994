//! Clients of the outside world (payments, e-mail, SMS), each behind a small trait so that
//! jobs are tested against real local defaults or fake HTTP servers.

pub mod mail;
pub mod metered;
pub mod payments;
pub mod sms;
pub mod stripe;

use std::sync::Arc;

use orderly_core::config::{PaymentSettings, Settings};
use orderly_core::telemetry::meter::Meter;

/// How a provider call failed; decides whether a job is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderError {
    /// Retrying cannot help (declined card, invalid phone number, bad address).
    Permanent(Detail),
    /// May work later (timeout, 5xx, connection refused). Whether the call took effect is
    /// unknown.
    Transient(Detail),
    /// Refused because of the object's current state (a payment already captured or
    /// cancelled): read the object to learn what happened.
    State(Detail),
}

impl ProviderError {
    /// A permanent failure described by a provider's own text, with the e-mail addresses and
    /// phone numbers it may quote masked: the text goes to the outbox, the log and Sentry.
    pub fn permanent(text: &str) -> Self {
        Self::Permanent(redact(text).into())
    }

    /// A transient failure described by a provider's own text, masked as [`Self::permanent`].
    pub fn transient(text: &str) -> Self {
        Self::Transient(redact(text).into())
    }

    /// What the error says, whichever its class.
    pub fn detail(&self) -> &Detail {
        match self {
            Self::Permanent(d) | Self::Transient(d) | Self::State(d) => d,
        }
    }

    /// The error and its causes on one line (`transient: SMTP: connection refused`), for a
    /// row that keeps it (`notifications.last_error`) or an answer that quotes it.
    pub fn describe(&self) -> String {
        let class = match self {
            Self::Permanent(_) => "permanent",
            Self::Transient(_) => "transient",
            Self::State(_) => "state",
        };
        format!("{class}: {}", self.detail().describe())
    }
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Permanent(d) => write!(f, "permanent: {d}"),
            Self::Transient(d) => write!(f, "transient: {d}"),
            Self::State(d) => write!(f, "state: {d}"),
        }
    }
}

impl std::error::Error for ProviderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.detail().source()
    }
}

/// What a [`ProviderError`] says (reads as a `str`), and the error that caused it when
/// there is one: kept as the error's source, so a log prints the whole chain.
#[derive(Debug, Clone)]
pub struct Detail {
    text: String,
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Detail {
    /// `text` (what was being done: `SMTP`, `writing the SMS log`) caused by `cause`.
    pub fn caused_by(
        text: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            text: text.into(),
            cause: Some(Arc::new(cause)),
        }
    }

    /// The error that caused this one, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }

    /// The text and its causes, joined by `: `.
    pub fn describe(&self) -> String {
        let mut out = self.text.clone();
        let mut next = self.source();
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }
}

impl std::ops::Deref for Detail {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<String> for Detail {
    fn from(text: String) -> Self {
        Self { text, cause: None }
    }
}

impl From<&str> for Detail {
    fn from(text: &str) -> Self {
        text.to_owned().into()
    }
}

/// A detail is an error of its own (its text, caused by its cause), so that a job's
/// error can carry it without the class the [`ProviderError`] adds.
impl std::error::Error for Detail {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Detail::source(self)
    }
}

/// Two details are equal when they say the same (their causes are not comparable).
impl PartialEq for Detail {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Detail {}

impl PartialEq<str> for Detail {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Detail {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

/// `text` with e-mail addresses and phone numbers replaced by `[address]` and `[number]`.
/// Providers quote the recipient in their errors (an SMTP 550 echoes `<user@domain>`,
/// Twilio's 21211 the number), and errors are kept where personal data must not be.
pub fn redact(text: &str) -> String {
    static ADDRESS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        #[allow(clippy::expect_used)] // a constant pattern, checked by the tests below
        regex::Regex::new(r#"[^\s<>()\[\]"',;:]+@[^\s<>()\[\]"',;:]+"#).expect("a valid pattern")
    });
    static NUMBER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        #[allow(clippy::expect_used)] // a constant pattern, checked by the tests below
        regex::Regex::new(r"\+?\d[\d ().-]{6,}\d").expect("a valid pattern")
    });
    let text = ADDRESS.replace_all(text, "[address]");
    NUMBER.replace_all(&text, "[number]").into_owned()
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
    /// Builds the clients that the settings name, their calls measured into the process's
    /// global metrics recorder.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        Self::metered(settings, Meter::global())
    }

    /// Builds the clients that the settings name, their calls measured into `meter`.
    pub fn metered(settings: &Settings, meter: Meter) -> anyhow::Result<Self> {
        Ok(Self {
            payments: Arc::new(metered::MeteredGateway {
                inner: payment_gateway(settings)?,
                meter: meter.clone(),
            }),
            mail: Arc::new(metered::MeteredMailer {
                inner: mail::from_settings(settings)?,
                meter: meter.clone(),
            }),
            sms: Arc::new(metered::MeteredSms {
                inner: sms::from_settings(settings)?,
                meter,
            }),
        })
    }
}

/// Builds the payment gateway the settings name.
fn payment_gateway(settings: &Settings) -> anyhow::Result<Arc<dyn payments::PaymentGateway>> {
    match &settings.payments {
        PaymentSettings::Simulated(mode) => {
            Ok(Arc::new(payments::SimulatedGateway { mode: *mode }))
        }
        PaymentSettings::Stripe {
            secret_key,
            api_base,
            ..
        } => Ok(Arc::new(stripe::StripeGateway::new(secret_key, api_base)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_quoted_by_a_provider_are_masked_and_codes_kept() {
        let smtp =
            "permanent error (550): 5.1.1 <jane.doe@example.com>: Recipient address rejected";
        assert_eq!(
            redact(smtp),
            "permanent error (550): 5.1.1 <[address]>: Recipient address rejected"
        );
        let twilio = "Twilio 400 Bad Request: code 21211 The 'To' number +1 (555) 010-9999 is not a valid phone number.";
        assert_eq!(
            redact(twilio),
            "Twilio 400 Bad Request: code 21211 The 'To' number [number] is not a valid phone number."
        );
    }
}
