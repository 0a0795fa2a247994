//! Request rates limited where abuse costs money (bookings per user, registrations per
//! client), counted in Redis so that a limit holds across replicas.
//!
//! A fixed window starts at a subject's first request: one atomic `INCR` + `EXPIRE NX` +
//! `TTL` on a single key (so any Redis Cluster slot serves it). While Redis cannot be
//! reached, each process counts on its own ([`LocalCounters`]): looser across replicas, but
//! never a `503` for want of a counter.
//!
//! Answers carry the IETF `RateLimit-Policy` / `RateLimit` headers in the structured-field
//! form of draft-ietf-httpapi-ratelimit-headers-09 and later:
//! `RateLimit-Policy: "bookings";q=30;w=60` and `RateLimit: "bookings";r=12;t=40`
//! (quota, window, remaining, seconds until the window resets).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpResponseBuilder;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use orderly_core::redis_conn::{RedisConn, key};

/// A named quota per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The policy's name in the headers (`bookings`, `registrations`).
    pub name: &'static str,
    /// Requests allowed per window.
    pub quota: u32,
    /// The window.
    pub window: Duration,
}

/// Where one request stands against its policy ([`Standing::check`], beside the errors in
/// `problem`, refuses one over the quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The policy.
    pub policy: Policy,
    /// Requests left in the window after this one.
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_s: u64,
    /// Whether this request is over the quota.
    pub exceeded: bool,
}

impl Standing {
    /// `RateLimit-Policy` and `RateLimit`, as the draft writes them.
    pub fn headers(&self) -> [(HeaderName, HeaderValue); 2] {
        let Policy {
            name,
            quota,
            window,
        } = self.policy;
        let policy = format!("\"{name}\";q={quota};w={}", window.as_secs());
        let limit = format!("\"{name}\";r={};t={}", self.remaining, self.reset_s);
        [
            (
                HeaderName::from_static("ratelimit-policy"),
                HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("")),
            ),
            (
                HeaderName::from_static("ratelimit"),
                HeaderValue::from_str(&limit).unwrap_or(HeaderValue::from_static("")),
            ),
        ]
    }

    /// Adds the headers to an answer.
    pub fn write_to(&self, headers: &mut HeaderMap) {
        for (name, value) in self.headers() {
            headers.insert(name, value);
        }
    }

    /// Adds the headers to an answer being built.
    pub fn apply(&self, response: &mut HttpResponseBuilder) {
        for header in self.headers() {
            response.insert_header(header);
        }
    }
}

/// Counts this request of `subject` against `policy`, under the Redis key prefix `prefix`
/// (`REDIS_PREFIX`).
pub async fn hit(
    redis: &RedisConn,
    local: &LocalCounters,
    prefix: &str,
    policy: Policy,
    subject: &str,
) -> Standing {
    let counter = key(prefix, &["rate", policy.name, subject]);
    let (count, reset_s) = count(redis, local, &counter, policy.window).await;
    Standing {
        policy,
        remaining: u32::try_from(u64::from(policy.quota).saturating_sub(count)).unwrap_or(0),
        reset_s,
        exceeded: count > u64::from(policy.quota),
    }
}

/// How long a counter waits for Redis before counting in the process.
const REDIS_PATIENCE: Duration = Duration::from_millis(500);

/// Counts a hit on `counter` in Redis, whose window starts at its first hit; returns the
/// count and the seconds left in the window. Redis unreachable: counts in this process.
pub async fn count(
    redis: &RedisConn,
    local: &LocalCounters,
    counter: &str,
    window: Duration,
) -> (u64, u64) {
    let mut conn = redis.clone();
    let pipe = redis::pipe()
        .atomic()
        .incr(counter, 1)
        .cmd("EXPIRE")
        .arg(counter)
        .arg(window.as_secs().max(1))
        .arg("NX")
        .ignore()
        .ttl(counter)
        .clone();
    let counted = tokio::time::timeout(REDIS_PATIENCE, pipe.query_async::<(u64, i64)>(&mut conn));
    match counted.await {
        Ok(Ok((count, ttl))) => (count, u64::try_from(ttl).unwrap_or(0).max(1)),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "Redis unreachable; counting in this process");
            local.hit(counter, window)
        }
        Err(_) => {
            tracing::warn!("Redis too slow; counting in this process");
            local.hit(counter, window)
        }
    }
}

/// Adds `delta` to `counter` (`-1` takes a hit back) or deletes it (`None`), in Redis and,
/// for a fallback count, in this process; a failure is only logged.
pub async fn adjust(redis: &RedisConn, local: &LocalCounters, counter: &str, delta: Option<i64>) {
    local.adjust(counter, delta);
    let mut conn = redis.clone();
    let cmd = match delta {
        Some(delta) => redis::cmd("INCRBY").arg(counter).arg(delta).clone(),
        None => redis::cmd("DEL").arg(counter).clone(),
    };
    let done = tokio::time::timeout(REDIS_PATIENCE, cmd.query_async::<()>(&mut conn)).await;
    if !matches!(done, Ok(Ok(()))) {
        tracing::warn!("Redis unreachable; counter not adjusted there");
    }
}

/// Per-process fixed windows, used while Redis is unreachable.
#[derive(Debug, Default)]
pub struct LocalCounters {
    windows: Mutex<HashMap<String, (u64, Instant)>>,
}

/// Above this many subjects, ended windows are swept on the next hit.
const LOCAL_SWEEP_AT: usize = 10_000;

impl LocalCounters {
    /// Counts a hit; returns the count and the seconds left in the window.
    pub fn hit(&self, counter: &str, window: Duration) -> (u64, u64) {
        let now = Instant::now();
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > LOCAL_SWEEP_AT {
            windows.retain(|_, (_, ends)| *ends > now);
        }
        let entry = windows
            .entry(counter.to_owned())
            .or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        (entry.0, entry.1.duration_since(now).as_secs().max(1))
    }

    /// The count of `counter` in its current window, without counting (0 when none).
    pub fn peek(&self, counter: &str) -> u64 {
        let windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match windows.get(counter) {
            Some((count, ends)) if *ends > Instant::now() => *count,
            _ => 0,
        }
    }

    fn adjust(&self, counter: &str, delta: Option<i64>) {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match delta {
            None => {
                windows.remove(counter);
            }
            Some(delta) => {
                if let Some(entry) = windows.get_mut(counter) {
                    entry.0 = entry.0.saturating_add_signed(delta);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_the_drafts_structured_fields() {
        let standing = Standing {
            policy: Policy {
                name: "bookings",
                quota: 30,
                window: Duration::from_secs(60),
            },
            remaining: 12,
            reset_s: 40,
            exceeded: false,
        };
        let [(policy_name, policy), (limit_name, limit)] = standing.headers();
        assert_eq!(policy_name.as_str(), "ratelimit-policy");
        assert_eq!(policy, "\"bookings\";q=30;w=60");
        assert_eq!(limit_name.as_str(), "ratelimit");
        assert_eq!(limit, "\"bookings\";r=12;t=40");
    }

    #[test]
    fn local_windows_count_and_restart_after_they_end() {
        let local = LocalCounters::default();
        assert_eq!(local.hit("k", Duration::from_secs(60)).0, 1);
        assert_eq!(local.hit("k", Duration::from_secs(60)).0, 2);
        local.adjust("k", Some(-1));
        assert_eq!(local.hit("k", Duration::from_secs(60)).0, 2);
        assert_eq!(local.hit("other", Duration::ZERO).0, 1);
        assert_eq!(
            local.hit("other", Duration::ZERO).0,
            1,
            "an ended window restarts"
        );
    }
}
