//! Prompt pick-up: wake idle workers the moment a job is pushed.
//!
//! apalis-redis fetches only when a worker is polled, and nothing wakes an idle worker on a
//! push (its `poll_with_interval` can also lose a wake-up). The relay publishes on
//! `<queue>:wake` after each push; each worker process subscribes and drives its fetches
//! with [`WakeStrategy`], which keeps every timer armed, fires again shortly after a signal
//! (a fetch already in flight may have missed the job), and falls back to a slow tick.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy};
use futures::StreamExt;
use orderly_core::redis_conn::RedisConn;
use tokio::sync::watch;
use tokio::time::{Sleep, sleep};
use tokio_stream::wrappers::WatchStream;

/// The channel the relay publishes on after pushing to `queue_key`.
pub fn channel(queue_key: &str) -> String {
    format!("{queue_key}:wake")
}

/// A poll strategy woken by a `watch` channel, with a follow-up fetch and a fallback tick.
pub struct WakeStrategy {
    rx: watch::Receiver<u64>,
    changes: Option<WatchStream<u64>>,
    fallback: Duration,
    echo: Duration,
    tick: Option<Pin<Box<Sleep>>>,
    echo_timer: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for WakeStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeStrategy")
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl WakeStrategy {
    /// Woken by `rx`; fetches at least every `fallback`.
    pub fn new(rx: watch::Receiver<u64>, fallback: Duration) -> Self {
        Self {
            rx,
            changes: None,
            fallback,
            echo: Duration::from_millis(50),
            tick: None,
            echo_timer: None,
        }
    }
}

impl Clone for WakeStrategy {
    fn clone(&self) -> Self {
        Self::new(self.rx.clone(), self.fallback)
    }
}

impl PollStrategy for WakeStrategy {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut fired = false;
        let rx = self.rx.clone();
        let changes = self
            .changes
            .get_or_insert_with(|| WatchStream::from_changes(rx));
        let mut signalled = false;
        // Drain to Pending so that the waker stays registered.
        while let Poll::Ready(Some(_)) = changes.poll_next_unpin(cx) {
            signalled = true;
        }
        if signalled {
            fired = true;
            self.echo_timer = Some(Box::pin(sleep(self.echo)));
        }
        if let Some(timer) = self.echo_timer.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            self.echo_timer = None;
            fired = true;
        }
        // Re-arm and poll the fallback tick until it is Pending.
        loop {
            let fallback = self.fallback;
            let tick = self.tick.get_or_insert_with(|| Box::pin(sleep(fallback)));
            if tick.as_mut().poll(cx).is_ready() {
                self.tick = None;
                fired = true;
            } else {
                break;
            }
        }
        if fired {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

/// Subscribes to `channel` and bumps the returned value on every message, reconnecting
/// (and bumping once, to catch up) whenever the subscription drops. Each attempt opens a
/// pub/sub connection through [`RedisConn::pubsub`]: the server, the next reachable node of
/// a cluster (a classic `PUBLISH` reaches every node), or the primary Sentinel names now.
pub fn listen(conn: RedisConn, channel: String) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0u64);
    tokio::spawn(async move {
        loop {
            if let Ok(mut pubsub) = conn.pubsub().await
                && pubsub.subscribe(&channel).await.is_ok()
            {
                tx.send_modify(|v| *v += 1);
                let mut messages = pubsub.into_on_message();
                while messages.next().await.is_some() {
                    tx.send_modify(|v| *v += 1);
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    rx
}
