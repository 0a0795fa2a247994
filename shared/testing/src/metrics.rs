//! Reading a process's own Prometheus `/metrics` in tests.

use std::net::{SocketAddr, TcpListener};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The body of `GET /metrics` at `addr`, or `None` if nothing answers 200 there.
pub async fn scrape(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The value of the series `name_and_labels` (exactly as rendered) in `scrape`.
pub fn series(scrape: &str, name_and_labels: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        line.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .parse()
            .ok()
    })
}

/// A loopback address whose port was free a moment ago (for a child's `METRICS_ADDR`; if
/// something takes it first, the child exits naming the variable and the caller tries again).
pub fn free_addr() -> SocketAddr {
    #[allow(clippy::expect_used)] // test support: no loopback port is a broken machine
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}
