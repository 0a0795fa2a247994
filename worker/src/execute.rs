//! Runs one job attempt and records how it ended in the outbox: done, retry later (with
//! backoff and jitter), or dead with its error. Timeouts and panics count as failures too.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use chrono::Utc;
use futures::FutureExt;
use orderly_shared::jobs::{Envelope, JobError, RetryPolicy, outbox};
use sea_orm::TransactionTrait;
use tracing::Instrument;

use crate::context::JobContext;
use crate::jobs;

/// Runs `envelope` and records its end. An error means the end could not be recorded
/// (the database is down): the queue then retries the task, and the outbox lease covers it.
pub async fn execute(ctx: &JobContext, queue: &str, envelope: &Envelope) -> anyhow::Result<()> {
    let span = tracing::info_span!(
        "job",
        job.queue = queue,
        job.type = %envelope.job_type,
        job.id = %envelope.outbox_id,
        job.attempt = envelope.attempt,
        request.id = envelope.request_id.as_deref().unwrap_or(""),
    );
    run_and_record(ctx, queue, envelope).instrument(span).await
}

async fn run_and_record(ctx: &JobContext, queue: &str, envelope: &Envelope) -> anyhow::Result<()> {
    let started = Instant::now();
    let limits = jobs::limits(&envelope.job_type);
    let outcome = match limits {
        None => Err(JobError::Permanent(format!(
            "no handler for job type `{}`",
            envelope.job_type
        ))),
        Some(limits) => {
            let attempt = AssertUnwindSafe(tokio::time::timeout(
                limits.timeout,
                jobs::run(ctx, envelope),
            ));
            match attempt.catch_unwind().await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(JobError::Transient(anyhow::anyhow!(
                    "timed out after {} s",
                    limits.timeout.as_secs()
                ))),
                Err(panic) => Err(JobError::Permanent(format!(
                    "panicked: {}",
                    panic_message(&panic)
                ))),
            }
        }
    };
    let elapsed = started.elapsed();
    let labels = [
        ("queue", queue.to_owned()),
        ("job_type", envelope.job_type.clone()),
    ];
    metrics::histogram!("job_duration_seconds", &labels).record(elapsed.as_secs_f64());
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let id = envelope.outbox_id;
    let attempt = envelope.attempt;
    match outcome {
        Ok(()) => {
            ctx.completions.record(id, attempt).await?;
            count(queue, &envelope.job_type, "done");
            tracing::info!(duration_ms, "job done");
        }
        Err(JobError::Permanent(error)) => {
            bury(ctx, envelope, &error).await?;
            count(queue, &envelope.job_type, "dead");
            tracing::warn!(duration_ms, error = %error, "job failed permanently; dead");
        }
        Err(JobError::Transient(error)) => {
            let mut policy = limits.map_or(RetryPolicy::DEFAULT, |l| l.policy);
            if let Some(base) = ctx.retry_base_delay {
                policy.base_delay = base;
            }
            let error = format!("{error:#}");
            if policy.may_retry(attempt) {
                let delay = policy.delay_after(attempt);
                let retry_at = Utc::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(1));
                outbox::retry_later(&ctx.db, id, attempt, retry_at, &error).await?;
                count(queue, &envelope.job_type, "retry");
                tracing::warn!(duration_ms, error = %error, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
            } else {
                let error = format!("gave up after {attempt} attempts: {error}");
                bury(ctx, envelope, &error).await?;
                count(queue, &envelope.job_type, "dead");
                tracing::error!(duration_ms, error = %error, "job out of attempts; dead");
            }
        }
    }
    Ok(())
}

/// Marks the job dead with `error` and applies what its death means (a message becomes
/// `failed`) in one transaction, so a job is never dead in the outbox with its effects
/// half-applied, and a failure leaves the job to be retried as a whole.
async fn bury(ctx: &JobContext, envelope: &Envelope, error: &str) -> anyhow::Result<()> {
    let txn = ctx.db.begin().await?;
    outbox::bury(&txn, envelope.outbox_id, envelope.attempt, error).await?;
    jobs::on_dead(&txn, envelope, error).await?;
    txn.commit().await?;
    Ok(())
}

fn count(queue: &str, job_type: &str, outcome: &'static str) {
    let labels = [
        ("queue", queue.to_owned()),
        ("job_type", job_type.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    metrics::counter!("jobs_total", &labels).increment(1);
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
