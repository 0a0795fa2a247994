//! `GET /metrics` for the processes that serve no other HTTP (the worker, the scheduler): a
//! minimal HTTP/1.1 server on `METRICS_ADDR` that renders the process's registry in
//! Prometheus's text format, answers anything else `404`, and closes each connection.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The most a request's head may take, in bytes and in time.
const MAX_HEAD_BYTES: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How often histograms are drained when nobody scrapes (keeps memory bounded).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// A running `/metrics` endpoint; stops when dropped.
#[derive(Debug)]
pub struct MetricsEndpoint {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsEndpoint {
    /// The bound address (with the port chosen when `METRICS_ADDR` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves `handle`'s registry on it until the returned value is dropped.
pub async fn serve(addr: SocketAddr, handle: PrometheusHandle) -> anyhow::Result<MetricsEndpoint> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on METRICS_ADDR={addr}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(metrics.addr = %addr, "serving /metrics");
    let task = tokio::spawn(async move {
        let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let handle = handle.clone();
                        tokio::spawn(async move {
                            if let Err(e) = answer(stream, &handle).await {
                                tracing::debug!(error = %e, "a /metrics request failed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a /metrics connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = upkeep.tick() => handle.run_upkeep(),
            }
        }
    });
    Ok(MetricsEndpoint { addr, task })
}

/// Reads one request's head and answers it.
async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD_BYTES {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::time::timeout(READ_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "slow request"))??;
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", handle.render()),
        (_, "/metrics") => ("405 Method Not Allowed", "text/plain", "use GET\n".into()),
        _ => (
            "404 Not Found",
            "text/plain",
            "only /metrics is served here\n".into(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn metrics_are_served_on_the_bound_port_and_nothing_else_is() {
        let recorder = crate::telemetry::meter::prometheus_recorder().unwrap();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("jobs_total", "queue" => "email").increment(3);
        });
        let endpoint = serve("127.0.0.1:0".parse().unwrap(), handle).await.unwrap();
        assert_ne!(endpoint.addr().port(), 0);

        let answer = get(endpoint.addr(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            answer.contains("\njobs_total{queue=\"email\"} 3\n"),
            "{answer}"
        );
        let other = get(endpoint.addr(), "GET / HTTP/1.1\r\n\r\n").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        let post = get(endpoint.addr(), "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    }
}
