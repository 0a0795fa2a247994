//! Failed-login counters in Redis, per e-mail and per client address, so that the limit
//! holds across API replicas. A fixed window starts at the first attempt.
//!
//! Every attempt is counted before the password is checked (one atomic round trip), so
//! parallel guesses cannot slip past the limit; a successful login takes its attempt back.

use orderly_shared::config::LoginLimits;
use orderly_shared::redis_conn::{RedisConn, key};
use sha2::{Digest, Sha256};

/// The counters one login attempt is checked against.
#[derive(Debug)]
pub struct LoginLimiter<'a> {
    limits: LoginLimits,
    email_key: String,
    client_key: String,
    redis: &'a RedisConn,
}

impl<'a> LoginLimiter<'a> {
    /// Counters for this e-mail (hashed: no personal data in keys) and client address.
    pub fn new(
        redis: &'a RedisConn,
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
        let window = self.limits.window.as_secs() as i64;
        // One transaction per counter, sent together: the two keys hash to different
        // cluster slots, and a transaction may only span one.
        let ((email_count, email_ttl), (client_count, client_ttl)) = futures::try_join!(
            self.count(&self.email_key, window),
            self.count(&self.client_key, window)
        )?;
        let mut wait = None;
        if email_count > self.limits.per_email {
            wait = Some(email_ttl.max(1) as u64);
        }
        if client_count > self.limits.per_client {
            wait = Some(wait.unwrap_or(0).max(client_ttl.max(1) as u64));
        }
        Ok(wait)
    }

    /// Counts an attempt on `key`, whose window starts at its first attempt; returns the
    /// count and the seconds left in the window.
    async fn count(&self, key: &str, window: i64) -> redis::RedisResult<(u32, i64)> {
        let mut conn = self.redis.clone();
        redis::pipe()
            .atomic()
            .incr(key, 1)
            .cmd("EXPIRE")
            .arg(key)
            .arg(window)
            .arg("NX")
            .ignore()
            .ttl(key)
            .query_async(&mut conn)
            .await
    }

    /// A successful login clears the e-mail's count and takes its attempt back from the
    /// address's count.
    pub async fn succeeded(&self) -> redis::RedisResult<()> {
        let (mut email, mut client) = (self.redis.clone(), self.redis.clone());
        let (del, decr) = (
            redis::cmd("DEL").arg(&self.email_key).clone(),
            redis::cmd("DECR").arg(&self.client_key).clone(),
        );
        futures::try_join!(
            del.query_async::<()>(&mut email),
            decr.query_async::<()>(&mut client)
        )?;
        Ok(())
    }
}
