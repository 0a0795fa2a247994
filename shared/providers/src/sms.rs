//! SMS: Twilio's Messages API when `SMS_PROVIDER=twilio`, a JSON-lines log file otherwise.
//!
//! Twilio's API takes no idempotency key, so a request it accepted is never repeated on
//! purpose: any 2xx is a send, whatever its body, and at most `SMS_MAX_IN_FLIGHT` requests
//! are out at once (all that a crash can repeat).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::{Detail, ProviderError};
use orderly_core::config::{Settings, SmsSettings};

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
    /// How many sends may be in flight at once, when that is bounded (`SMS_MAX_IN_FLIGHT`):
    /// deliveries hold a slot until a send's outcome is committed, so that a crash or a
    /// pause can repeat no more messages than this.
    fn max_in_flight(&self) -> Option<usize> {
        None
    }
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
            max_in_flight,
        } => Arc::new(TwilioSms::new(
            api_base,
            account_sid,
            auth_token.clone(),
            from,
            *max_in_flight,
        )?),
    })
}

/// The whole of one Twilio request, from connecting to reading the answer's body.
const TWILIO_TIMEOUT: Duration = Duration::from_secs(15);

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
            .map_err(|e| ProviderError::Transient(Detail::caused_by("writing the SMS log", e)))?
            .map_err(|e| ProviderError::Transient(Detail::caused_by("writing the SMS log", e)))?;
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
    size: usize,
    in_flight: Arc<Semaphore>,
}

impl TwilioSms {
    /// A client of the API at `api_base` (scheme, host and port) sending at most
    /// `max_in_flight` requests at once.
    pub fn new(
        api_base: &str,
        account_sid: &str,
        auth_token: SecretString,
        from: &str,
        max_in_flight: u32,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(TWILIO_TIMEOUT)
                .build()
                .context("building the Twilio HTTP client")?,
            url: format!("{api_base}/2010-04-01/Accounts/{account_sid}/Messages.json"),
            account_sid: account_sid.to_owned(),
            auth_token,
            from: from.to_owned(),
            size: max_in_flight.max(1) as usize,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1) as usize)),
        })
    }
}

#[async_trait]
impl SmsSender for TwilioSms {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn max_in_flight(&self) -> Option<usize> {
        Some(self.size)
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<String, ProviderError> {
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|e| ProviderError::Transient(Detail::caused_by("Twilio", e)))?;
        // A request that fails before an answer (timeout, refused, reset) may be retried.
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
            .map_err(|e| ProviderError::Transient(Detail::caused_by("Twilio unreachable", e)))?;
        let status = response.status();
        // An unreadable body (not JSON, cut off, too slow) reads as none.
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        classify(status, &body)
    }
}

/// What Twilio's answer `status` with `body` means.
fn classify(
    status: reqwest::StatusCode,
    body: &serde_json::Value,
) -> Result<String, ProviderError> {
    if status.is_success() {
        // A 2xx is a send, whatever its body: retrying it would send the SMS again.
        return Ok(match body["sid"].as_str() {
            Some(sid) if !sid.is_empty() => sid.to_owned(),
            _ => {
                tracing::warn!(
                    http.status = status.as_u16(),
                    "Twilio accepted a message without a readable sid"
                );
                UNKNOWN_SID.to_owned()
            }
        });
    }
    let detail = format!(
        "Twilio {status}: code {} {}",
        body["code"],
        body["message"].as_str().unwrap_or("no message")
    );
    // 408, 429 and 5xx may pass later; any other answer (an invalid number, an unverified
    // sender, bad credentials) will not.
    if matches!(status.as_u16(), 408 | 429) || status.is_server_error() {
        Err(ProviderError::transient(&detail))
    } else {
        Err(ProviderError::permanent(&detail))
    }
}

/// The provider id recorded for a message Twilio accepted without a readable sid.
pub const UNKNOWN_SID: &str = "twilio:unknown-sid";

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// An HTTP server on loopback answering every request with `status` and `body`, after
    /// `delay`; counts the requests and the most it held at once.
    struct FakeTwilio {
        base: String,
        requests: Arc<AtomicUsize>,
        most_at_once: Arc<AtomicUsize>,
    }

    impl FakeTwilio {
        async fn start(status: &'static str, body: &'static str, delay: Duration) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let requests = Arc::new(AtomicUsize::new(0));
            let most_at_once = Arc::new(AtomicUsize::new(0));
            let now = Arc::new(AtomicUsize::new(0));
            let (r, m) = (requests.clone(), most_at_once.clone());
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let (r, m, now) = (r.clone(), m.clone(), now.clone());
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut buf = [0u8; 4096];
                        // Headers, then the form body (Content-Length bytes).
                        loop {
                            let n = socket.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            request.extend_from_slice(&buf[..n]);
                            let text = String::from_utf8_lossy(&request).to_string();
                            if let Some(end) = text.find("\r\n\r\n") {
                                let length = text
                                    .lines()
                                    .find_map(|l| {
                                        l.to_ascii_lowercase()
                                            .strip_prefix("content-length:")
                                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                    })
                                    .unwrap_or(0);
                                if request.len() >= end + 4 + length {
                                    break;
                                }
                            }
                        }
                        r.fetch_add(1, Ordering::SeqCst);
                        let held = now.fetch_add(1, Ordering::SeqCst) + 1;
                        m.fetch_max(held, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        let answer = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(answer.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    });
                }
            });
            Self {
                base,
                requests,
                most_at_once,
            }
        }

        fn sender(&self, max_in_flight: u32) -> TwilioSms {
            let _ = rustls::crypto::ring::default_provider().install_default();
            TwilioSms::new(
                &self.base,
                "AC1",
                SecretString::from("token"),
                "+15550000000",
                max_in_flight,
            )
            .unwrap()
        }
    }

    fn sms() -> OutgoingSms {
        OutgoingSms {
            id: Uuid::new_v4(),
            to: "+15551234567".into(),
            body: "Your booking is confirmed".into(),
        }
    }

    async fn answer(status: &'static str, body: &'static str) -> Result<String, ProviderError> {
        let fake = FakeTwilio::start(status, body, Duration::ZERO).await;
        let outcome = fake.sender(8).send(&sms()).await;
        assert_eq!(fake.requests.load(Ordering::SeqCst), 1, "one request");
        outcome
    }

    #[tokio::test]
    async fn a_2xx_with_a_sid_is_a_send_with_that_sid() {
        let outcome = answer("201 Created", r#"{"sid":"SM123","status":"queued"}"#).await;
        assert_eq!(outcome, Ok("SM123".to_owned()));
    }

    #[tokio::test]
    async fn a_2xx_without_a_readable_sid_is_still_a_send() {
        for body in ["", "not json", r#"{"status":"queued"}"#, r#"{"sid":""}"#] {
            let outcome = answer("200 OK", body).await;
            assert_eq!(outcome, Ok(UNKNOWN_SID.to_owned()), "body {body:?}");
        }
    }

    #[tokio::test]
    async fn a_4xx_is_permanent_but_408_and_429_and_5xx_are_transient() {
        let invalid = r#"{"code":21211,"message":"Invalid 'To' Phone Number"}"#;
        let outcome = answer("400 Bad Request", invalid).await;
        assert!(
            matches!(&outcome, Err(ProviderError::Permanent(m)) if m.contains("21211")),
            "{outcome:?}"
        );
        assert!(matches!(
            answer("401 Unauthorized", "{}").await,
            Err(ProviderError::Permanent(_))
        ));
        for status in [
            "408 Request Timeout",
            "429 Too Many Requests",
            "500 Internal Server Error",
            "503 Service Unavailable",
        ] {
            let outcome = answer(status, "{}").await;
            assert!(
                matches!(outcome, Err(ProviderError::Transient(_))),
                "{status}: {outcome:?}"
            );
        }
    }

    #[tokio::test]
    async fn no_answer_at_all_is_transient() {
        // A port nothing listens on.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sender = TwilioSms::new(&base, "AC1", SecretString::from("t"), "+1555", 1).unwrap();
        let outcome = sender.send(&sms()).await;
        assert!(
            matches!(&outcome, Err(ProviderError::Transient(m)) if m.contains("unreachable")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn at_most_max_in_flight_requests_are_out_at_once() {
        let fake =
            FakeTwilio::start("201 Created", r#"{"sid":"SM1"}"#, Duration::from_millis(50)).await;
        let sender = fake.sender(3);
        let messages: Vec<OutgoingSms> = (0..12).map(|_| sms()).collect();
        let outcomes = futures::future::join_all(messages.iter().map(|m| sender.send(m))).await;
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert_eq!(fake.requests.load(Ordering::SeqCst), 12);
        assert_eq!(fake.most_at_once.load(Ordering::SeqCst), 3);
    }
}
