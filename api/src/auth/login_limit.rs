//! Failed-login counters in Redis, per e-mail and per client address, so that the limit
//! holds across API replicas. A fixed window starts at the first failure.

use orderly_shared::config::LoginLimits;
use orderly_shared::redis_conn::key;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

/// The counters one login attempt is checked against.
#[derive(Debug)]
pub struct LoginLimiter<'a> {
    limits: LoginLimits,
    email_key: String,
    client_key: String,
    redis: &'a ConnectionManager,
}

impl<'a> LoginLimiter<'a> {
    /// Counters for this e-mail (hashed: no personal data in keys) and client address.
    pub fn new(
        redis: &'a ConnectionManager,
        prefix: &str,
        limits: LoginLimits,
        email: &str,
        client: &str,
    ) -> Self {
        let email_hash = hex::encode(&Sha256::digest(email.as_bytes())[..16]);
        Self {
            limits,
            email_key: key(prefix, &["login_failures", "email", &email_hash]),
            client_key: key(prefix, &["login_failures", "client", client]),
            redis,
        }
    }

    /// `Some(seconds)` to wait when either counter has reached its limit.
    pub async fn blocked_for(&self) -> redis::RedisResult<Option<u64>> {
        let mut conn = self.redis.clone();
        let (email_count, email_ttl, client_count, client_ttl): (
            Option<u32>,
            i64,
            Option<u32>,
            i64,
        ) = redis::pipe()
            .get(&self.email_key)
            .ttl(&self.email_key)
            .get(&self.client_key)
            .ttl(&self.client_key)
            .query_async(&mut conn)
            .await?;
        let mut wait = None;
        if email_count.unwrap_or(0) >= self.limits.per_email {
            wait = Some(email_ttl.max(1) as u64);
        }
        if client_count.unwrap_or(0) >= self.limits.per_client {
            wait = Some(wait.unwrap_or(0).max(client_ttl.max(1) as u64));
        }
        Ok(wait)
    }

    /// Counts a failed attempt against both counters.
    pub async fn record_failure(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        let window = self.limits.window.as_secs() as i64;
        redis::pipe()
            .incr(&self.email_key, 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&self.email_key)
            .arg(window)
            .arg("NX")
            .ignore()
            .incr(&self.client_key, 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&self.client_key)
            .arg(window)
            .arg("NX")
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }

    /// A successful login clears the e-mail's counter (the address keeps its count).
    pub async fn record_success(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        redis::cmd("DEL")
            .arg(&self.email_key)
            .query_async::<()>(&mut conn)
            .await
    }
}
