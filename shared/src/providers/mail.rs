//! E-mail: a real SMTP server when `SMTP_URL` is set, `.eml` files under `DATA_DIR/mail`
//! otherwise. Each message's file name and `Message-ID` come from its notification id, so
//! re-sending the same notification never makes a second file.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::ProviderError;
use crate::config::{MailTransport, Settings};

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
    /// Plain-text body.
    pub body: String,
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
}

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
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                .context("SMTP_URL: not a usable SMTP URL")?
                .timeout(Some(std::time::Duration::from_secs(20)))
                .pool_config(PoolConfig::new().max_size(size))
                .build();
            Arc::new(SmtpMailer {
                transport,
                from,
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
        .map_err(|e| ProviderError::Permanent(format!("bad recipient address: {e}")))?;
    let builder = Message::builder()
        .message_id(Some(message_id(email.id)))
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone());
    let text = SinglePart::plain(email.body.clone());
    let message = if email.attachments.is_empty() {
        builder.singlepart(text)
    } else {
        let mut parts = MultiPart::mixed().singlepart(text);
        for a in &email.attachments {
            let content_type = ContentType::parse(&a.content_type)
                .map_err(|e| ProviderError::Permanent(format!("bad attachment type: {e}")))?;
            parts = parts.singlepart(
                Attachment::new(a.filename.clone()).body(a.content.clone(), content_type),
            );
        }
        builder.multipart(parts)
    };
    message.map_err(|e| ProviderError::Permanent(format!("cannot build the message: {e}")))
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
            .map_err(|e| ProviderError::Transient(format!("writing the .eml file: {e}")))?
            .map_err(|e| ProviderError::Transient(format!("writing the .eml file: {e}")))
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
    in_flight: Arc<Semaphore>,
}

#[async_trait]
impl Mailer for SmtpMailer {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<String, ProviderError> {
        let message = build_message(&self.from, email)?;
        let _slot = self
            .in_flight
            .acquire()
            .await
            .map_err(|e| ProviderError::Transient(format!("SMTP: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(message_id(email.id)),
            Err(e) if e.is_permanent() => Err(ProviderError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(ProviderError::Transient(format!("SMTP: {e}"))),
        }
    }
}
