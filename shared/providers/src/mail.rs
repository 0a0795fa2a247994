//! E-mail: a real SMTP server when `SMTP_URL` is set, `.eml` files under `DATA_DIR/mail`
//! otherwise. Each message's file name and `Message-ID` come from its notification id, so
//! re-sending the same notification never makes a second file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::{Detail, ProviderError};
use orderly_core::config::{MailTransport, Settings};

/// A file attached to an e-mail.
#[derive(Debug, Clone)]
pub struct EmailAttachment {
    /// File name shown to the recipient.
    pub filename: String,
    /// MIME type, e.g. `text/csv`.
    pub content_type: String,
    /// The bytes.
    pub content: Vec<u8>,
}

/// One e-mail to send.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    /// The notification it delivers (becomes the `Message-ID`).
    pub id: Uuid,
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The same message in HTML; with it, the body is `multipart/alternative`.
    pub html: Option<String>,
    /// Attachments.
    pub attachments: Vec<EmailAttachment>,
}

/// Something that delivers e-mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Sends; returns the provider's message id.
    async fn send(&self, email: &OutgoingEmail) -> Result<String, ProviderError>;
    /// How many sends may be in flight at once, when that is bounded (`SMTP_POOL_SIZE`):
    /// deliveries hold a slot until a send's outcome is committed, so that a crash can
    /// repeat no more messages than this.
    fn max_in_flight(&self) -> Option<usize> {
        None
    }
}

/// How long connecting to the SMTP server may take. In lettre's async transport this is
/// only a connect timeout: commands and data have none of their own.
const SMTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one whole SMTP transaction (connection included) may take before it counts as
/// a transient failure. Generous, because giving up after the data went out can repeat the
/// message; bounded, so that a server that stops answering cannot hold a slot for ever.
const SMTP_SEND_TIMEOUT: Duration = Duration::from_secs(120);

/// Builds the mailer the settings name.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn Mailer>> {
    let from: Mailbox =
        settings.mail.from.parse().with_context(|| {
            format!("MAIL_FROM: `{}` is not a valid mailbox", settings.mail.from)
        })?;
    Ok(match &settings.mail.transport {
        MailTransport::Files(dir) => Arc::new(FileMailer {
            dir: dir.clone(),
            from,
        }),
        MailTransport::Smtp(url) => {
            let size = settings.mail.smtp_pool_size.max(1);
            // lettre's pool neither waits nor fails when all its connections are busy: it
            // opens another one, and `max_size` only caps the idle connections it keeps.
            // The semaphore is what bounds the transactions in flight.
            let url = with_starttls_default(url.expose_secret())
                .context("SMTP_URL: not a usable SMTP URL")?;
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
                .context("SMTP_URL: not a usable SMTP URL")?
                .timeout(Some(SMTP_CONNECT_TIMEOUT))
                .pool_config(PoolConfig::new().max_size(size))
                .build();
            Arc::new(SmtpMailer {
                transport,
                from,
                size: size as usize,
                in_flight: Arc::new(Semaphore::new(size as usize)),
            })
        }
    })
}

/// Formats the RFC 5322 message.
pub fn build_message(from: &Mailbox, email: &OutgoingEmail) -> Result<Message, ProviderError> {
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|e| ProviderError::Permanent(Detail::caused_by("bad recipient address", e)))?;
    let builder = Message::builder()
        .message_id(Some(message_id(email.id)))
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone());
    // Plain text first: a client shows the last alternative it can display.
    let alternative =
        |html: &String| MultiPart::alternative_plain_html(email.text.clone(), html.clone());
    let plain = || SinglePart::plain(email.text.clone());
    let message = if email.attachments.is_empty() {
        match &email.html {
            Some(html) => builder.multipart(alternative(html)),
            None => builder.singlepart(plain()),
        }
    } else {
        let mut parts = match &email.html {
            Some(html) => MultiPart::mixed().multipart(alternative(html)),
            None => MultiPart::mixed().singlepart(plain()),
        };
        for a in &email.attachments {
            let content_type = ContentType::parse(&a.content_type).map_err(|e| {
                ProviderError::Permanent(Detail::caused_by("bad attachment type", e))
            })?;
            parts = parts.singlepart(
                Attachment::new(a.filename.clone()).body(a.content.clone(), content_type),
            );
        }
        builder.multipart(parts)
    };
    message.map_err(|e| ProviderError::Permanent(Detail::caused_by("cannot build the message", e)))
}

/// `<notification-id@orderly>`.
pub fn message_id(id: Uuid) -> String {
    format!("<{id}@orderly>")
}

/// Writes `DATA_DIR/mail/<notification id>.eml`.
#[derive(Debug, Clone)]
pub struct FileMailer {
    /// The folder.
    pub dir: PathBuf,
    /// The sender.
    pub from: Mailbox,
}

#[async_trait]
impl Mailer for FileMailer {
    fn name(&self) -> &'static str {
        "file"
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<String, ProviderError> {
        let bytes = build_message(&self.from, email)?.formatted();
        let dir = self.dir.clone();
        let id = email.id;
        // One trip to the blocking pool per message, not one per file operation.
        tokio::task::spawn_blocking(move || write_eml(&dir, id, &bytes))
            .await
            .map_err(|e| ProviderError::Transient(Detail::caused_by("writing the .eml file", e)))?
            .map_err(|e| ProviderError::Transient(Detail::caused_by("writing the .eml file", e)))
    }
}

/// Writes `<dir>/<id>.eml` through a temporary file and a rename, so that a reader never
/// sees half a message and a re-send replaces the first.
fn write_eml(dir: &std::path::Path, id: Uuid, bytes: &[u8]) -> std::io::Result<String> {
    let path = dir.join(format!("{id}.eml"));
    let tmp = dir.join(format!(".{id}.eml.tmp"));
    match std::fs::write(&tmp, bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            std::fs::write(&tmp, bytes)?;
        }
        other => other?,
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path.display().to_string())
}

/// Sends through an SMTP server, at most `SMTP_POOL_SIZE` transactions at once: a crash
/// can repeat only a message whose transaction was in flight.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    size: usize,
    in_flight: Arc<Semaphore>,
}

#[async_trait]
impl Mailer for SmtpMailer {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn max_in_flight(&self) -> Option<usize> {
        Some(self.size)
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<String, ProviderError> {
        let message = build_message(&self.from, email)?;
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|e| ProviderError::Transient(Detail::caused_by("SMTP", e)))?;
        match tokio::time::timeout(SMTP_SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(message_id(email.id)),
            Ok(Err(e)) if e.is_permanent() => Err(ProviderError::permanent(&format!("SMTP: {e}"))),
            Ok(Err(e)) => Err(ProviderError::transient(&format!("SMTP: {e}"))),
            Err(_) => Err(ProviderError::Transient(
                format!("SMTP: no answer within {} s", SMTP_SEND_TIMEOUT.as_secs()).into(),
            )),
        }
    }
}

/// `SMTP_URL` as lettre reads it, with Orderly's defaults: `smtp://` upgrades to TLS with
/// STARTTLS when the server offers it (`?tls=required` insists, `?tls=none` never tries;
/// the port stays 25 unless given); `smtps://` is TLS from the start; credentials come from
/// the URL's user and password.
fn with_starttls_default(url: &str) -> Result<String, url::ParseError> {
    let mut parsed = url::Url::parse(url)?;
    if parsed.scheme() != "smtp" {
        return Ok(url.to_owned());
    }
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let others: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "tls")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let tls = match tls.as_deref() {
        None => Some("opportunistic"),
        Some("none") => None,
        Some(_) => return Ok(url.to_owned()),
    };
    if parsed.port().is_none() {
        // lettre's default port with a `tls` parameter is 587; keep smtp://'s 25.
        let _ = parsed.set_port(Some(25));
    }
    {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (k, v) in &others {
            query.append_pair(k, v);
        }
        if let Some(tls) = tls {
            query.append_pair("tls", tls);
        }
    }
    if others.is_empty() && tls.is_none() {
        parsed.set_query(None);
    }
    Ok(parsed.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn smtp_urls_try_starttls_unless_told_otherwise() {
        let url = |u: &str| with_starttls_default(u).unwrap();
        assert_eq!(
            url("smtp://127.0.0.1:1025"),
            "smtp://127.0.0.1:1025?tls=opportunistic"
        );
        assert_eq!(
            url("smtp://mail.example.com"),
            "smtp://mail.example.com:25?tls=opportunistic"
        );
        assert_eq!(
            url("smtp://u:p@127.0.0.1:1025?tls=none"),
            "smtp://u:p@127.0.0.1:1025"
        );
        assert_eq!(
            url("smtp://h:587?tls=required"),
            "smtp://h:587?tls=required"
        );
        assert_eq!(url("smtps://u:p@h:465"), "smtps://u:p@h:465");
    }

    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use mail_parser::MimeHeaders;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;
    use orderly_core::config::Settings;

    /// An SMTP server on loopback that holds each message `delay` before accepting it and
    /// counts the transactions it holds at once and the `Message-ID`s it accepted.
    #[derive(Clone, Default)]
    struct FakeSmtp {
        now: Arc<AtomicUsize>,
        most_at_once: Arc<AtomicUsize>,
        message_ids: Arc<Mutex<Vec<String>>>,
    }

    impl FakeSmtp {
        async fn start(delay: Duration) -> (Self, String) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("smtp://{}", listener.local_addr().unwrap());
            let smtp = Self::default();
            let server = smtp.clone();
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let server = server.clone();
                    tokio::spawn(async move { server.session(socket, delay).await });
                }
            });
            (smtp, url)
        }

        async fn session(&self, socket: tokio::net::TcpStream, delay: Duration) {
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            let _ = write.write_all(b"220 fake ready\r\n").await;
            while let Ok(Some(line)) = lines.next_line().await {
                let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                let answer: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250-fake\r\n250 8BITMIME\r\n",
                    "DATA" => {
                        let _ = write.write_all(b"354 go ahead\r\n").await;
                        let held = self.now.fetch_add(1, Ordering::SeqCst) + 1;
                        self.most_at_once.fetch_max(held, Ordering::SeqCst);
                        while let Ok(Some(data)) = lines.next_line().await {
                            if data == "." {
                                break;
                            }
                            if let Some(id) = data.strip_prefix("Message-ID: ") {
                                self.message_ids.lock().unwrap().push(id.to_owned());
                            }
                        }
                        tokio::time::sleep(delay).await;
                        self.now.fetch_sub(1, Ordering::SeqCst);
                        b"250 accepted\r\n"
                    }
                    "QUIT" => {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    }
                    _ => b"250 OK\r\n",
                };
                let _ = write.write_all(answer).await;
            }
        }
    }

    fn mailer(url: &str, pool_size: &str) -> Arc<dyn Mailer> {
        let vars = HashMap::from([
            ("DATABASE_URL".into(), "postgres://u@127.0.0.1/db".into()),
            ("REDIS_URL".into(), "redis://127.0.0.1".into()),
            ("SMTP_URL".into(), url.into()),
            ("SMTP_POOL_SIZE".into(), pool_size.into()),
        ]);
        from_settings(&Settings::from_map(&vars).unwrap()).unwrap()
    }

    fn email(id: Uuid) -> OutgoingEmail {
        OutgoingEmail {
            id,
            to: "guest@example.com".into(),
            subject: "Your booking".into(),
            text: "Confirmed.".into(),
            html: None,
            attachments: Vec::new(),
        }
    }

    fn parse(message: &Message) -> mail_parser::Message<'static> {
        mail_parser::MessageParser::default()
            .parse(&message.formatted())
            .unwrap()
            .into_owned()
    }

    #[test]
    fn an_email_with_html_is_multipart_alternative_of_utf8_text_then_html() {
        let from: Mailbox = "Orderly <no-reply@orderly.test>".parse().unwrap();
        let html = "<p>Grüße — <strong>bestätigt</strong></p>";
        let sent = OutgoingEmail {
            text: "Grüße — bestätigt".into(),
            html: Some(html.into()),
            ..email(Uuid::new_v4())
        };

        let message = parse(&build_message(&from, &sent).unwrap());

        let content_type = message.content_type().unwrap();
        assert_eq!(
            (content_type.ctype(), content_type.subtype()),
            ("multipart", Some("alternative"))
        );
        let types: Vec<String> = message.parts[1..]
            .iter()
            .map(|p| {
                let t = p.content_type().unwrap();
                let charset = t.attribute("charset").unwrap_or_default().to_lowercase();
                format!(
                    "{}/{}; {charset}",
                    t.ctype(),
                    t.subtype().unwrap_or_default()
                )
            })
            .collect();
        assert_eq!(types, ["text/plain; utf-8", "text/html; utf-8"]);
        assert_eq!(message.body_text(0).unwrap(), "Grüße — bestätigt");
        assert_eq!(message.body_html(0).unwrap(), html);
    }

    #[test]
    fn attachments_go_beside_the_alternative_parts() {
        let from: Mailbox = "Orderly <no-reply@orderly.test>".parse().unwrap();
        let sent = OutgoingEmail {
            html: Some("<p>Confirmed.</p>".into()),
            attachments: vec![EmailAttachment {
                filename: "report.csv".into(),
                content_type: "text/csv".into(),
                content: b"date,bookings\n2026-03-14,42\n".to_vec(),
            }],
            ..email(Uuid::new_v4())
        };

        let message = parse(&build_message(&from, &sent).unwrap());

        assert_eq!(message.content_type().unwrap().subtype(), Some("mixed"));
        assert_eq!(message.body_text(0).unwrap(), "Confirmed.");
        assert_eq!(message.body_html(0).unwrap(), "<p>Confirmed.</p>");
        assert_eq!(message.attachment_count(), 1);
        assert_eq!(
            message.attachment(0).unwrap().attachment_name(),
            Some("report.csv")
        );
    }

    #[tokio::test]
    async fn at_most_smtp_pool_size_transactions_are_in_flight_at_once() {
        let (smtp, url) = FakeSmtp::start(Duration::from_millis(100)).await;
        let mailer = mailer(&url, "3");
        let emails: Vec<OutgoingEmail> = (0..12).map(|_| email(Uuid::new_v4())).collect();
        let outcomes = futures::future::join_all(emails.iter().map(|e| mailer.send(e))).await;
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        assert_eq!(smtp.message_ids.lock().unwrap().len(), 12);
        assert_eq!(smtp.most_at_once.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_resent_notification_keeps_its_message_id() {
        let (smtp, url) = FakeSmtp::start(Duration::ZERO).await;
        let mailer = mailer(&url, "1");
        let id = Uuid::new_v4();
        let first = mailer.send(&email(id)).await.unwrap();
        let second = mailer.send(&email(id)).await.unwrap();
        assert_eq!(first, message_id(id));
        assert_eq!(second, first);
        assert_eq!(
            *smtp.message_ids.lock().unwrap(),
            vec![message_id(id), message_id(id)]
        );
    }
}
