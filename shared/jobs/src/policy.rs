//! Retry policy: exponential backoff with full jitter, up to an attempt limit.

use std::time::Duration;

use rand::Rng;

use super::JobKind;

/// How a job is retried after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; past this the job is dead.
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// 20 attempts, 2 s doubling up to 15 minutes: the retries span 1.4 to 2.8 hours (each
    /// delay is drawn from the upper half of its step), longer than a routine SMTP,
    /// Twilio or Stripe incident.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_attempts: 20,
        base_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(900),
    };

    /// Whether another attempt is allowed after `attempts` have run.
    pub fn may_retry(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }

    /// The delay before attempt `attempts + 1`: a random point in the upper half of
    /// `base × 2^(attempts-1)`, capped — growing, yet spread so that retries do not stampede.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let half = self.ceiling_after(attempts) / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// The longest delay before attempt `attempts + 1`: `base × 2^(attempts-1)`, capped.
    pub fn ceiling_after(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(20);
        self.base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay)
    }

    /// The shortest and longest time from the first failure to the last retry.
    pub fn span(&self) -> (Duration, Duration) {
        let longest: Duration = (1..self.max_attempts).map(|a| self.ceiling_after(a)).sum();
        (longest / 2, longest)
    }
}

/// Overrides of every job type's retry policy, the operators' and tests' knobs: the worker
/// retries with them and the API counts a job's attempts with them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyOverrides {
    /// `JOB_RETRY_BASE_DELAY_MS`: the first retry delay (delays still double).
    pub base_delay: Option<Duration>,
    /// `JOB_MAX_ATTEMPTS`: attempts in all (at least 1).
    pub max_attempts: Option<u32>,
}

impl PolicyOverrides {
    /// `policy` with these overrides applied.
    pub fn apply(&self, mut policy: RetryPolicy) -> RetryPolicy {
        if let Some(base) = self.base_delay {
            policy.base_delay = base;
        }
        if let Some(max) = self.max_attempts {
            policy.max_attempts = max.max(1);
        }
        policy
    }

    /// The retry policy of the job type stored under `job_type` (its kind's, or
    /// [`RetryPolicy::DEFAULT`] for a name no kind has) with these overrides applied.
    pub fn policy_of(&self, job_type: &str) -> RetryPolicy {
        self.apply(JobKind::parse(job_type).map_or(RetryPolicy::DEFAULT, JobKind::policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_within_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        };
        for attempts in 1..=12 {
            let ceiling =
                Duration::from_secs(1u64 << (attempts - 1).min(20)).min(Duration::from_secs(30));
            for _ in 0..50 {
                let d = policy.delay_after(attempts);
                assert!(
                    d >= ceiling / 2 && d <= ceiling + Duration::from_millis(1),
                    "{attempts}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn the_attempt_limit_is_respected() {
        assert!(RetryPolicy::DEFAULT.may_retry(19));
        assert!(!RetryPolicy::DEFAULT.may_retry(20));
    }

    #[test]
    fn the_default_policy_outlasts_an_hour_long_incident() {
        let (shortest, longest) = RetryPolicy::DEFAULT.span();
        assert!(shortest >= Duration::from_secs(3600), "{shortest:?}");
        assert!(longest <= Duration::from_secs(3 * 3600), "{longest:?}");
    }

    #[test]
    fn each_kind_has_its_own_policy_and_the_overrides_win() {
        use crate::{Job, SendEmail};
        let none = PolicyOverrides::default();
        assert_eq!(none.policy_of("send_email"), SendEmail::POLICY);
        assert_eq!(none.policy_of("noop").max_attempts, 1);
        assert_eq!(none.policy_of("no_such_job"), RetryPolicy::DEFAULT);
        let three = PolicyOverrides {
            max_attempts: Some(3),
            base_delay: Some(Duration::from_millis(10)),
        };
        let policy = three.policy_of("send_email");
        assert_eq!(policy.max_attempts, 3);
        assert_eq!(policy.base_delay, Duration::from_millis(10));
        assert_eq!(policy.max_delay, SendEmail::POLICY.max_delay);
        let zero = PolicyOverrides {
            max_attempts: Some(0),
            ..PolicyOverrides::default()
        };
        assert_eq!(zero.policy_of("send_email").max_attempts, 1);
    }
}
