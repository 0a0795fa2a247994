//! Failed-login limits that stop guessing without locking anyone out, counted in Redis so
//! that they hold across API replicas (and in the process while Redis cannot be reached:
//! never a `503` for want of a counter). A fixed window starts at the first attempt.
//!
//! Only two counts ever refuse (`429`): attempts for one e-mail *from one client*, and
//! attempts from one client. Failures for an e-mail across every client only slow its next
//! attempts down (a growing delay, capped), so wrong passwords typed for a victim from one
//! place never stop the victim, with the right password, from another.
//!
//! The two refusing counts take every attempt before the password is checked (parallel
//! guesses cannot slip past them); a successful login takes its attempt back.

use std::time::Duration;

use orderly_core::config::LoginLimits;
use orderly_core::redis_conn::{RedisConn, key};
use sha2::{Digest, Sha256};

use crate::rate_limit::{self, LocalCounters};

/// The longest delay failures for an e-mail add to its next attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(2);
/// The delay each failure past the e-mail's allowance adds.
const DELAY_STEP: Duration = Duration::from_millis(250);

/// The counters one login attempt is checked against.
#[derive(Debug)]
pub struct LoginLimiter<'a> {
    limits: LoginLimits,
    pair_key: String,
    client_key: String,
    email_key: String,
    redis: &'a RedisConn,
    local: &'a LocalCounters,
}

impl<'a> LoginLimiter<'a> {
    /// Counters for this e-mail (hashed: no personal data in keys) and client address.
    pub fn new(
        redis: &'a RedisConn,
        local: &'a LocalCounters,
        prefix: &str,
        limits: LoginLimits,
        email: &str,
        client: &str,
    ) -> Self {
        let email_hash = hex::encode(&Sha256::digest(email.as_bytes())[..16]);
        Self {
            limits,
            pair_key: key(prefix, &["login_attempts", "pair", &email_hash, client]),
            client_key: key(prefix, &["login_attempts", "client", client]),
            email_key: key(prefix, &["login_failures", "email", &email_hash]),
            redis,
            local,
        }
    }

    /// Counts this attempt: `Err(seconds to wait)` when this client is over either of its
    /// limits; otherwise waits the delay the e-mail's failures ask for, then `Ok`.
    pub async fn attempt(&self) -> Result<(), u64> {
        let window = self.limits.window;
        let ((pair, pair_ttl), (client, client_ttl), failures) = futures::join!(
            rate_limit::count(self.redis, self.local, &self.pair_key, window),
            rate_limit::count(self.redis, self.local, &self.client_key, window),
            self.failures_for_email()
        );
        let mut wait = None;
        if pair > u64::from(self.limits.per_email) {
            wait = Some(pair_ttl);
        }
        if client > u64::from(self.limits.per_client) {
            wait = Some(wait.unwrap_or(0).max(client_ttl));
        }
        if let Some(wait) = wait {
            return Err(wait.max(1));
        }
        let delay = delay_for(failures, self.limits.per_email);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok(())
    }

    /// A wrong password: counted against the e-mail across clients (it slows the next
    /// attempts for it, never refuses them).
    pub async fn failed(&self) {
        rate_limit::count(self.redis, self.local, &self.email_key, self.limits.window).await;
    }

    /// A successful login clears this client's count for the e-mail and the e-mail's
    /// failures, and takes its attempt back from the client's count.
    pub async fn succeeded(&self) {
        futures::join!(
            rate_limit::adjust(self.redis, self.local, &self.pair_key, None),
            rate_limit::adjust(self.redis, self.local, &self.email_key, None),
            rate_limit::adjust(self.redis, self.local, &self.client_key, Some(-1)),
        );
    }

    /// An attempt that never reached the password (the hashing queue was full): given back
    /// to both counts, so that a client is not limited for the server's own load.
    pub async fn given_back(&self) {
        futures::join!(
            rate_limit::adjust(self.redis, self.local, &self.pair_key, Some(-1)),
            rate_limit::adjust(self.redis, self.local, &self.client_key, Some(-1)),
        );
    }

    /// The e-mail's failures in the window, read without counting (0 when unknown).
    async fn failures_for_email(&self) -> u64 {
        let mut conn = self.redis.clone();
        let read = redis::cmd("GET").arg(&self.email_key).clone();
        let got = tokio::time::timeout(
            Duration::from_millis(500),
            read.query_async::<Option<u64>>(&mut conn),
        )
        .await;
        match got {
            Ok(Ok(n)) => n.unwrap_or(0),
            _ => self.local.peek(&self.email_key),
        }
    }
}

/// The delay `failures` for an e-mail add to its next attempt: none within its allowance,
/// then [`DELAY_STEP`] more per failure, at most [`MAX_DELAY`].
pub fn delay_for(failures: u64, allowance: u32) -> Duration {
    let past = failures.saturating_sub(u64::from(allowance));
    let step = DELAY_STEP.saturating_mul(u32::try_from(past).unwrap_or(u32::MAX));
    step.min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_grows_past_the_allowance_and_stops_at_its_cap() {
        assert_eq!(delay_for(0, 5), Duration::ZERO);
        assert_eq!(delay_for(5, 5), Duration::ZERO);
        assert_eq!(delay_for(6, 5), Duration::from_millis(250));
        assert_eq!(delay_for(8, 5), Duration::from_millis(750));
        assert_eq!(delay_for(1_000_000, 5), MAX_DELAY);
    }
}
