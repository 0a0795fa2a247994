//! Failed-login counters in Redis, per e-mail and per client address, so that the limit
//! holds across API replicas. A fixed window starts at the first attempt.
//!
//! Every attempt is counted before the password is checked (one atomic round trip), so
//! parallel guesses cannot slip past the limit; a successful login takes its attempt back.

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
            email_key: key(prefix, &["login_attempts", "email", &email_hash]),
            client_key: key(prefix, &["login_attempts", "client", client]),
            redis,
        }
    }

    /// Counts this attempt; `Some(seconds to wait)` when it is over either limit.
    pub async fn attempt(&self) -> redis::RedisResult<Option<u64>> {
        let mut conn = self.redis.clone();
        let window = self.limits.window.as_secs() as i64;
        let (email_count, email_ttl, client_count, client_ttl): (u32, i64, u32, i64) =
            redis::pipe()
                .atomic()
                .incr(&self.email_key, 1)
                .cmd("EXPIRE")
                .arg(&self.email_key)
                .arg(window)
                .arg("NX")
                .ignore()
                .ttl(&self.email_key)
                .incr(&self.client_key, 1)
                .cmd("EXPIRE")
                .arg(&self.client_key)
                .arg(window)
                .arg("NX")
                .ignore()
                .ttl(&self.client_key)
                .query_async(&mut conn)
                .await?;
        let mut wait = None;
        if email_count > self.limits.per_email {
            wait = Some(email_ttl.max(1) as u64);
        }
        if client_count > self.limits.per_client {
            wait = Some(wait.unwrap_or(0).max(client_ttl.max(1) as u64));
        }
        Ok(wait)
    }

    /// A successful login clears the e-mail's count and takes its attempt back from the
    /// address's count.
    pub async fn succeeded(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        redis::pipe()
            .del(&self.email_key)
            .ignore()
            .decr(&self.client_key, 1)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    }
}
