//! Stand-ins for the outside world, spoken to over real sockets: a small SMTP server (with
//! an optional delay before it accepts a message) and a Twilio-shaped HTTP server; and
//! e-mail decoded as its reader sees it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use mail_parser::{MessageParser, MimeHeaders};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// An SMTP server on loopback that keeps every message it accepts.
#[derive(Clone)]
pub struct FakeSmtp {
    pub url: String,
    /// Messages whose DATA began.
    pub started: Arc<AtomicUsize>,
    /// Accepted messages, raw.
    pub messages: Arc<Mutex<Vec<String>>>,
}

impl FakeSmtp {
    /// Starts it; each message is accepted `delay` after its data arrived.
    pub async fn start(delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let smtp = Self {
            url,
            started: Arc::default(),
            messages: Arc::default(),
        };
        let server = smtp.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.session(socket, delay).await;
                });
            }
        });
        smtp
    }

    async fn session(&self, socket: tokio::net::TcpStream, delay: Duration) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 fake-smtp ready\r\n").await?;
        while let Some(line) = lines.next_line().await? {
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" | "HELO" => {
                    write
                        .write_all(b"250-fake-smtp\r\n250 8BITMIME\r\n")
                        .await?
                }
                "MAIL" | "RCPT" | "RSET" | "NOOP" => write.write_all(b"250 OK\r\n").await?,
                "DATA" => {
                    write.write_all(b"354 go ahead\r\n").await?;
                    self.started.fetch_add(1, Ordering::SeqCst);
                    let mut message = String::new();
                    while let Some(data) = lines.next_line().await? {
                        if data == "." {
                            break;
                        }
                        // Undo the client's dot-stuffing (RFC 5321, 4.5.2).
                        let data = data.strip_prefix('.').unwrap_or(&data);
                        message.push_str(data);
                        message.push('\n');
                    }
                    tokio::time::sleep(delay).await;
                    self.messages.lock().unwrap().push(message);
                    write.write_all(b"250 accepted\r\n").await?;
                }
                "QUIT" => {
                    write.write_all(b"221 bye\r\n").await?;
                    break;
                }
                _ => write.write_all(b"502 not implemented\r\n").await?,
            }
        }
        Ok(())
    }

    pub fn accepted(&self) -> usize {
        self.messages.lock().unwrap().len()
    }

    /// How many times each `Message-ID` was accepted.
    pub fn by_message_id(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for m in self.messages.lock().unwrap().iter() {
            let id = m
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("message-id")
                        .then(|| value.trim().to_owned())
                })
                .unwrap_or_default();
            *counts.entry(id).or_default() += 1;
        }
        counts
    }

    /// Accepted messages beyond the first of each `Message-ID`.
    pub fn duplicates(&self) -> usize {
        self.by_message_id().values().map(|n| n - 1).sum()
    }

    /// Accepted messages, decoded.
    pub fn mails(&self) -> Vec<Mail> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .map(|m| Mail::parse(m))
            .collect()
    }

    /// Accepted messages whose subject or plain text contains `needle`.
    pub fn containing(&self, needle: &str) -> usize {
        self.mails().iter().filter(|m| m.contains(needle)).count()
    }
}

/// An e-mail as its reader sees it: the subject and the decoded parts.
#[derive(Debug)]
pub struct Mail {
    pub subject: String,
    /// The top-level `Content-Type`, e.g. `multipart/alternative`.
    pub content_type: String,
    /// The `Content-Type` of each part that is not a multipart, in order, with its charset.
    pub parts: Vec<String>,
    /// The text/plain part.
    pub text: String,
    /// The text/html part, if there is one.
    pub html: Option<String>,
}

impl Mail {
    pub fn parse(raw: &str) -> Self {
        let message = MessageParser::default()
            .parse(raw.as_bytes())
            .expect("a parsable e-mail");
        let type_of = |part: &mail_parser::MessagePart<'_>| {
            let t = part.content_type().expect("a Content-Type");
            let mut name = format!("{}/{}", t.ctype(), t.subtype().unwrap_or_default());
            if let Some(charset) = t.attribute("charset") {
                name.push_str(&format!("; charset={}", charset.to_lowercase()));
            }
            name
        };
        let leaves: Vec<_> = message.parts.iter().filter(|p| !p.is_multipart()).collect();
        Self {
            subject: message.subject().unwrap_or_default().to_owned(),
            content_type: type_of(message.root_part()),
            parts: leaves.iter().map(|p| type_of(p)).collect(),
            text: message.body_text(0).unwrap_or_default().into_owned(),
            html: leaves
                .iter()
                .find(|p| p.is_text_html())
                .and_then(|p| p.text_contents())
                .map(str::to_owned),
        }
    }

    /// Whether the subject or the plain text contains `needle`.
    pub fn contains(&self, needle: &str) -> bool {
        self.subject.contains(needle) || self.text.contains(needle)
    }
}

/// A Twilio Messages API that answers every request with one status and records when each
/// request arrived.
#[derive(Clone)]
pub struct FakeTwilio {
    pub base: String,
    pub arrivals: Arc<Mutex<Vec<Instant>>>,
    /// Each request's `To` and `Body`.
    pub messages: Arc<Mutex<Vec<(String, String)>>>,
}

impl FakeTwilio {
    pub async fn start(status: u16, body: serde_json::Value) -> Self {
        let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let messages: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let recorded = arrivals.clone();
        let texts = messages.clone();
        let server = HttpServer::new(move || {
            let recorded = recorded.clone();
            let texts = texts.clone();
            let body = body.clone();
            App::new().route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                web::post().to(move |form: web::Form<HashMap<String, String>>| {
                    let recorded = recorded.clone();
                    let texts = texts.clone();
                    let body = body.clone();
                    async move {
                        recorded.lock().unwrap().push(Instant::now());
                        texts.lock().unwrap().push((
                            form.get("To").cloned().unwrap_or_default(),
                            form.get("Body").cloned().unwrap_or_default(),
                        ));
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                            .json(body)
                    }
                }),
            )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let base = format!("http://{}", server.addrs()[0]);
        tokio::spawn(server.run());
        Self {
            base,
            arrivals,
            messages,
        }
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SMS_PROVIDER", "twilio".into()),
            ("TWILIO_ACCOUNT_SID", "ACtest".into()),
            ("TWILIO_AUTH_TOKEN", "token".into()),
            ("TWILIO_FROM", "+15005550006".into()),
            ("TWILIO_API_BASE", self.base.clone()),
        ]
    }

    pub fn requests(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }

    /// Requests beyond the first of each (`To`, `Body`).
    pub fn duplicates(&self) -> usize {
        let mut counts: HashMap<(String, String), usize> = HashMap::new();
        for m in self.messages.lock().unwrap().iter() {
            *counts.entry(m.clone()).or_default() += 1;
        }
        counts.values().map(|n| n - 1).sum()
    }

    /// Distinct (`To`, `Body`) pairs received.
    pub fn distinct(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        for m in self.messages.lock().unwrap().iter() {
            seen.insert(m.clone());
        }
        seen.len()
    }
}
