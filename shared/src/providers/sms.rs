//! SMS: Twilio's Messages API when `SMS_PROVIDER=twilio`, a JSON-lines log file otherwise.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::ProviderError;
use crate::config::{Settings, SmsSettings};

/// One text message to send.
#[derive(Debug, Clone)]
pub struct OutgoingSms {
    /// The notification it delivers.
    pub id: Uuid,
    /// E.164 recipient.
    pub to: String,
    /// The text.
    pub body: String,
}

/// Something that delivers SMS.
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Sends; returns the provider's message id.
    async fn send(&self, sms: &OutgoingSms) -> Result<String, ProviderError>;
}

/// Builds the sender the settings name.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn SmsSender>> {
    Ok(match &settings.sms {
        SmsSettings::Log(path) => Arc::new(LogSms { path: path.clone() }),
        SmsSettings::Twilio {
            account_sid,
            auth_token,
            from,
            api_base,
        } => Arc::new(TwilioSms {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .context("building the Twilio HTTP client")?,
            url: format!("{api_base}/2010-04-01/Accounts/{account_sid}/Messages.json"),
            account_sid: account_sid.clone(),
            auth_token: auth_token.clone(),
            from: from.clone(),
        }),
    })
}

/// Appends one JSON line per message to `DATA_DIR/sms.log`.
#[derive(Debug, Clone)]
pub struct LogSms {
    /// The log file.
    pub path: PathBuf,
}

#[async_trait]
impl SmsSender for LogSms {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<String, ProviderError> {
        let mut line = serde_json::json!({
            "id": sms.id, "to": sms.to, "body": sms.body, "at": chrono::Utc::now(),
        })
        .to_string();
        line.push('\n');
        let path = self.path.clone();
        // One trip to the blocking pool per message, not one per file operation.
        tokio::task::spawn_blocking(move || append_line(&path, &line))
            .await
            .map_err(|e| ProviderError::Transient(format!("writing the SMS log: {e}")))?
            .map_err(|e| ProviderError::Transient(format!("writing the SMS log: {e}")))?;
        Ok(format!("log:{}", sms.id))
    }
}

/// Appends `line` to `path`, creating its folder the first time.
fn append_line(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    };
    let mut file = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            open()?
        }
        other => other?,
    };
    file.write_all(line.as_bytes())
}

/// Twilio's `POST /2010-04-01/Accounts/{sid}/Messages.json`.
#[derive(Debug, Clone)]
pub struct TwilioSms {
    client: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: SecretString,
    from: String,
}

#[async_trait]
impl SmsSender for TwilioSms {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<String, ProviderError> {
        let response = self
            .client
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&[
                ("To", sms.to.as_str()),
                ("From", self.from.as_str()),
                ("Body", sms.body.as_str()),
            ])
            .send()
            .await
            .map_err(|e| ProviderError::Transient(format!("Twilio unreachable: {e}")))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            // A 2xx is a send, whatever its body: retrying it would send the SMS again.
            return Ok(match body["sid"].as_str() {
                Some(sid) => sid.to_owned(),
                None => {
                    tracing::warn!(%status, "Twilio accepted a message without a readable sid");
                    format!("twilio:{}", sms.id)
                }
            });
        }
        let detail = format!(
            "Twilio {status}: code {} {}",
            body["code"],
            body["message"].as_str().unwrap_or("no message")
        );
        // 429 and 5xx may pass; any other 4xx (invalid number, unverified sender) will not.
        if status.as_u16() == 429 || status.is_server_error() {
            Err(ProviderError::Transient(detail))
        } else {
            Err(ProviderError::Permanent(detail))
        }
    }
}
