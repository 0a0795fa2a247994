//! Every job type the worker runs: [`registered`], generated from the job list
//! ([`orderly_jobs::for_each_job!`]). Dispatch, limits and what a job's death means all
//! derive from it. A handler is a thin [`Handler::run`] in a file of its own that calls a
//! domain function with explicit dependencies; adding a job is its payload and `impl Job`
//! with a line in the list (in `orderly-jobs`) and one file here implementing [`Handler`]
//! for it: a listed job type without a handler does not compile.

mod apply_payment_event;
mod cancel_payment;
mod capture_payment;
mod create_payment;
mod daily_report;
mod expire_booking;
mod noop;
mod reconcile_payments;
mod refund_payment;
mod reminders;
mod retention;
mod send_email;
mod send_sms;
mod sweep;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use orderly_jobs::{Envelope, Job, JobKind, RetryPolicy};
use sea_orm::{DatabaseTransaction, DbErr};

use crate::context::JobContext;
use crate::job_error::JobError;

/// What the worker does with one job type.
pub trait Handler: Job {
    /// One attempt. `request_id` is the id of the request that caused the job, if any.
    fn run(
        self,
        ctx: &JobContext,
        request_id: Option<&str>,
    ) -> impl Future<Output = Result<(), JobError>> + Send;

    /// What the job's death means beyond its outbox row, written in the transaction that
    /// records the death. Nothing, unless the job type says otherwise.
    fn on_dead(
        &self,
        _txn: &DatabaseTransaction,
        _error: &str,
    ) -> impl Future<Output = Result<(), DbErr>> + Send {
        async { Ok(()) }
    }
}

/// `registered`: a match on [`JobKind`] with one arm per listed job type, each registering
/// that type's [`Handler`] (so a job type without one does not compile).
macro_rules! registry {
    ($($job:ident,)*) => {
        /// Every job type the worker runs, by kind.
        pub fn registered(kind: JobKind) -> Registered {
            match kind {
                $(JobKind::$job => register::<orderly_jobs::$job>(),)*
            }
        }
    };
}

orderly_jobs::for_each_job!(registry);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type RunFn = for<'a> fn(&'a JobContext, &'a Envelope) -> BoxFuture<'a, Result<(), JobError>>;
type DeadFn =
    for<'a> fn(&'a DatabaseTransaction, &'a Envelope, &'a str) -> BoxFuture<'a, Result<(), DbErr>>;

/// A job type as the worker knows it: its limits, and its handler behind its payload type.
#[derive(Clone, Copy)]
pub struct Registered {
    /// The kind.
    pub kind: JobKind,
    /// How it is retried and how long one attempt may take.
    pub limits: Limits,
    run: RunFn,
    on_dead: DeadFn,
}

/// How a job type is retried and how long one attempt may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Retry policy.
    pub policy: RetryPolicy,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

fn register<J: Handler>() -> Registered {
    Registered {
        kind: J::KIND,
        limits: Limits {
            policy: J::POLICY,
            timeout: J::TIMEOUT,
        },
        run: run_boxed::<J>,
        on_dead: on_dead_boxed::<J>,
    }
}

fn run_boxed<'a, J: Handler>(
    ctx: &'a JobContext,
    envelope: &'a Envelope,
) -> BoxFuture<'a, Result<(), JobError>> {
    Box::pin(async move {
        let job: J = payload(envelope)?;
        job.run(ctx, envelope.request_id.as_deref()).await
    })
}

fn on_dead_boxed<'a, J: Handler>(
    txn: &'a DatabaseTransaction,
    envelope: &'a Envelope,
    error: &'a str,
) -> BoxFuture<'a, Result<(), DbErr>> {
    Box::pin(async move {
        match payload::<J>(envelope) {
            Ok(job) => job.on_dead(txn, error).await,
            // A payload no handler can read has no effect to undo.
            Err(_) => Ok(()),
        }
    })
}

fn payload<J: Job>(envelope: &Envelope) -> Result<J, JobError> {
    serde_json::from_value(envelope.payload.clone()).map_err(|e| {
        JobError::Permanent(anyhow::Error::new(e).context(format!("bad {} payload", J::NAME)))
    })
}

/// The job type stored under `name`, if the worker knows it.
pub fn lookup(job_type: &str) -> Option<Registered> {
    JobKind::parse(job_type).map(registered)
}

impl Registered {
    /// Runs one attempt of `envelope`, a job of this type.
    pub async fn run(&self, ctx: &JobContext, envelope: &Envelope) -> Result<(), JobError> {
        (self.run)(ctx, envelope).await
    }

    /// Applies what the death of `envelope`, a job of this type, means.
    pub async fn on_dead(
        &self,
        txn: &DatabaseTransaction,
        envelope: &Envelope,
        error: &str,
    ) -> Result<(), DbErr> {
        (self.on_dead)(txn, envelope, error).await
    }
}

/// Applies what the death of `envelope` means (nothing for a job type the worker does not
/// know).
pub async fn on_dead(
    txn: &DatabaseTransaction,
    envelope: &Envelope,
    error: &str,
) -> Result<(), DbErr> {
    match lookup(&envelope.job_type) {
        Some(registered) => registered.on_dead(txn, envelope, error).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_registered_under_its_own_type_and_name() {
        for &kind in JobKind::ALL {
            let registered = lookup(kind.name()).expect("every kind parses from its name");
            assert_eq!(
                registered.kind, kind,
                "the line for {kind:?} names another type"
            );
        }
        let mut names: Vec<_> = JobKind::ALL.iter().map(|k| k.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), JobKind::ALL.len(), "two kinds share a name");
        assert!(lookup("no_such_job").is_none());
    }
}
