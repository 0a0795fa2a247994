//! PostgreSQL's time limits on every pooled session (`DB_*_TIMEOUT_MS`), with defaults per
//! binary: the API answers people and must fail fast; the worker and the scheduler run
//! reports and retention, whose statements are longer.

use std::time::Duration;

use super::{Binary, ConfigError, Env};

/// The limits one pool sets on its sessions (`0` turns a limit off, as in PostgreSQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbTimeouts {
    /// `statement_timeout`: a statement running longer is cancelled (`57014`).
    pub statement: Duration,
    /// `lock_timeout`: waiting longer for a lock fails the statement (`55P03`).
    pub lock: Duration,
    /// `idle_in_transaction_session_timeout`: a session idle this long inside a transaction
    /// is ended, releasing its locks (a request or job that forgot its transaction).
    pub idle_in_transaction: Duration,
}

impl DbTimeouts {
    /// The defaults of `binary`: the API 5 s / 2 s / 10 s; the worker 300 s (its longest job's
    /// timeout, the daily report and retention) / 10 s / 300 s (a transaction may enclose a
    /// provider call, up to 120 s for SMTP); the scheduler 60 s / 5 s / 60 s (catch-up
    /// queries, leases).
    pub const fn default_for(binary: Binary) -> Self {
        let (statement, lock, idle) = match binary {
            Binary::Api => (5, 2, 10),
            Binary::Worker => (300, 10, 300),
            Binary::Scheduler => (60, 5, 60),
        };
        Self {
            statement: Duration::from_secs(statement),
            lock: Duration::from_secs(lock),
            idle_in_transaction: Duration::from_secs(idle),
        }
    }

    /// The session parameters, as PostgreSQL reads them (milliseconds).
    pub fn session_parameters(&self) -> [(&'static str, String); 3] {
        let ms = |d: Duration| d.as_millis().to_string();
        [
            ("statement_timeout", ms(self.statement)),
            ("lock_timeout", ms(self.lock)),
            (
                "idle_in_transaction_session_timeout",
                ms(self.idle_in_transaction),
            ),
        ]
    }
}

/// `DB_STATEMENT_TIMEOUT_MS`, `DB_LOCK_TIMEOUT_MS`, `DB_IDLE_IN_TRANSACTION_TIMEOUT_MS`: each
/// overrides the binary's default when set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DbTimeoutOverrides {
    statement: Option<Duration>,
    lock: Option<Duration>,
    idle_in_transaction: Option<Duration>,
}

impl DbTimeoutOverrides {
    /// The limits of `binary`'s pools.
    pub fn for_binary(&self, binary: Binary) -> DbTimeouts {
        let default = DbTimeouts::default_for(binary);
        DbTimeouts {
            statement: self.statement.unwrap_or(default.statement),
            lock: self.lock.unwrap_or(default.lock),
            idle_in_transaction: self
                .idle_in_transaction
                .unwrap_or(default.idle_in_transaction),
        }
    }
}

pub(super) fn db_timeouts(env: &Env<'_>) -> Result<DbTimeoutOverrides, ConfigError> {
    let ms = |name: &'static str| {
        env.get(name)
            .map(|_| {
                env.parse::<u64>(name, "", "a whole number of milliseconds (0 for none)")
                    .map(Duration::from_millis)
            })
            .transpose()
    };
    Ok(DbTimeoutOverrides {
        statement: ms("DB_STATEMENT_TIMEOUT_MS")?,
        lock: ms("DB_LOCK_TIMEOUT_MS")?,
        idle_in_transaction: ms("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS")?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::Settings;

    fn settings(extra: &[(&str, &str)]) -> Settings {
        let mut vars: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u@localhost/db"),
            ("REDIS_URL", "redis://localhost"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        vars.retain(|_, v| !v.is_empty());
        Settings::from_map(&vars).unwrap()
    }

    #[test]
    fn each_binary_has_its_own_defaults_and_the_api_fails_fastest() {
        let s = settings(&[]);
        let api = s.db_timeouts.for_binary(Binary::Api);
        assert_eq!(api, DbTimeouts::default_for(Binary::Api));
        assert_eq!(api.statement, Duration::from_secs(5));
        assert_eq!(api.lock, Duration::from_secs(2));
        assert_eq!(api.idle_in_transaction, Duration::from_secs(10));
        let worker = s.db_timeouts.for_binary(Binary::Worker);
        assert!(worker.statement > api.statement);
        assert!(s.db_timeouts.for_binary(Binary::Scheduler).statement > api.statement);
    }

    #[test]
    fn a_setting_overrides_the_default_of_every_binary() {
        let s = settings(&[
            ("DB_STATEMENT_TIMEOUT_MS", "200"),
            ("DB_LOCK_TIMEOUT_MS", "0"),
        ]);
        for binary in [Binary::Api, Binary::Worker, Binary::Scheduler] {
            let t = s.db_timeouts.for_binary(binary);
            assert_eq!(t.statement, Duration::from_millis(200));
            assert_eq!(t.lock, Duration::ZERO);
            assert_eq!(
                t.idle_in_transaction,
                DbTimeouts::default_for(binary).idle_in_transaction
            );
        }
    }

    #[test]
    fn a_malformed_timeout_names_its_variable() {
        let vars: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u@localhost/db"),
            ("REDIS_URL", "redis://localhost"),
            ("DB_LOCK_TIMEOUT_MS", "2s"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let error = Settings::from_map(&vars).unwrap_err();
        assert_eq!(error.var, "DB_LOCK_TIMEOUT_MS");
    }
}
