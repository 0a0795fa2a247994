//! Runs one job attempt and records how it ended in the outbox: done, retry later (with
//! backoff and jitter), or dead with its error. Timeouts and panics count as failures too.
//!
//! A run starts only through PostgreSQL's fence, so a stale copy of a task does nothing.
//! The attempt runs in a task of its own: if apalis drops the handler (its queue stream
//! ended), the attempt still finishes and records its end. While PostgreSQL is down, the
//! start and the end are retried with backoff, holding the slot: nothing else could
//! progress without it.
//!
//! Each attempt reports to Sentry through a hub of its own, tagged `job.id`, `job.queue` and
//! `job.type` (and `request.id` when a request caused it); the payload is never sent.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::job_error::JobError;
use futures::FutureExt;
use orderly_jobs::{Envelope, outbox, wake};
use sea_orm::TransactionTrait;
use sentry::SentryFutureExt;
use tracing::Instrument;

use crate::context::JobContext;
use crate::jobs;
use crate::runs::Start;

/// Runs `envelope` (if the fence says it is this run's) and records its end.
pub async fn execute(ctx: JobContext, queue: &'static str, envelope: Envelope) {
    let span = tracing::info_span!(
        "job",
        job.queue = queue,
        job.type = %envelope.job_type,
        job.id = %envelope.outbox_id,
        job.attempt = tracing::field::Empty,
        request.id = envelope.request_id.as_deref().unwrap_or(""),
    );
    let hub = job_hub(queue, &envelope);
    let (id, job_type) = (envelope.outbox_id, envelope.job_type.clone());
    let attempt = async move {
        let Some(attempt) = start(&ctx, &envelope).await else {
            return;
        };
        tracing::Span::current().record("job.attempt", attempt);
        record_queue_wait(queue, &envelope);
        let mut envelope = envelope;
        envelope.attempt = attempt;
        run_and_record(&ctx, queue, &envelope).await;
        ctx.runs.finish(envelope.outbox_id);
    };
    // Its own task: an attempt is never dropped half-way by its queue's stream.
    if let Err(e) = tokio::spawn(attempt.instrument(span).bind_hub(hub)).await {
        // A panic outside the handler (the fence or the record of the end), or the runtime
        // shutting down: the run's lease lapses and the reconciler hands the job back.
        tracing::error!(error = %e, job.queue = queue, job.type = %job_type, job.id = %id, "a job attempt's task failed");
        metrics::counter!("tasks_failed_total", "task" => "job_attempt").increment(1);
    }
}

/// A Sentry hub for one attempt, its events tagged with the job (ids and names only).
fn job_hub(queue: &str, envelope: &Envelope) -> Arc<sentry::Hub> {
    let hub = Arc::new(sentry::Hub::new_from_top(sentry::Hub::current()));
    hub.configure_scope(|scope| {
        scope.set_tag("job.id", envelope.outbox_id);
        scope.set_tag("job.queue", queue);
        scope.set_tag("job.type", &envelope.job_type);
        if let Some(request_id) = &envelope.request_id {
            scope.set_tag("request.id", request_id);
        }
    });
    hub
}

/// `job_queue_wait_seconds`: from the relay's push (the claim, by the database's clock) to
/// this start. The outbox's own delay before the push is `outbox_lag_seconds` (`backlog`).
fn record_queue_wait(queue: &str, envelope: &Envelope) {
    let waited_ms = (chrono::Utc::now().timestamp_millis() - envelope.claim).max(0);
    let labels = [
        ("queue", queue.to_owned()),
        ("job_type", envelope.job_type.clone()),
    ];
    metrics::histogram!("job_queue_wait_seconds", &labels).record(waited_ms as f64 / 1000.0);
}

/// The longest wait between two tries of a database write that must happen.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Retries `what` with backoff until it succeeds, or gives up when the process stops.
async fn persist<T, F, Fut>(ctx: &JobContext, what: &str, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "{what} failed; retrying in {} ms", backoff.as_millis());
                tokio::select! {
                    () = ctx.stopping.cancelled() => return None,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The fence: `Some(attempt)` when this task is the row's current run.
async fn start(ctx: &JobContext, envelope: &Envelope) -> Option<u32> {
    let (id, claim) = (envelope.outbox_id, envelope.claim);
    match persist(ctx, "starting a job", || ctx.runs.start(id, claim)).await? {
        Start::Run(attempt) => Some(attempt),
        Start::Stale => {
            tracing::debug!("stale copy of a task; skipped");
            metrics::counter!("jobs_stale_total").increment(1);
            None
        }
    }
}

async fn run_and_record(ctx: &JobContext, queue: &str, envelope: &Envelope) {
    let started = Instant::now();
    let registered = jobs::lookup(&envelope.job_type);
    let outcome = match registered {
        None => Err(JobError::Permanent(anyhow::anyhow!(
            "no handler for job type `{}`",
            envelope.job_type
        ))),
        Some(registered) => {
            let limits = registered.limits;
            let attempt = AssertUnwindSafe(tokio::time::timeout(
                limits.timeout,
                registered.run(ctx, envelope),
            ));
            match attempt.catch_unwind().await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(JobError::Transient(anyhow::anyhow!(
                    "timed out after {} s",
                    limits.timeout.as_secs()
                ))),
                Err(panic) => Err(JobError::Permanent(anyhow::anyhow!(
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
            persist(ctx, "recording a job's end", || {
                ctx.completions.record(id, attempt)
            })
            .await;
            count(queue, envelope, "done");
            tracing::info!(duration_ms, "job done");
        }
        Err(JobError::Permanent(error)) => {
            let error = format!("{error:#}");
            persist(ctx, "recording a dead job", || bury(ctx, envelope, &error)).await;
            count(queue, envelope, "dead");
            tracing::error!(duration_ms, error = %error, "job failed permanently; dead");
        }
        Err(JobError::Transient(error)) => {
            let policy = ctx.policies.policy_of(&envelope.job_type);
            let error = format!("{error:#}");
            if policy.may_retry(attempt) {
                let delay = policy.delay_after(attempt);
                persist(ctx, "recording a retry", || async {
                    outbox::retry_later(&ctx.db, id, attempt, delay, &error).await?;
                    wake::relays(&ctx.db);
                    Ok(())
                })
                .await;
                count(queue, envelope, "retry");
                tracing::warn!(duration_ms, error = %error, retry_in_ms = delay.as_millis() as u64, "job failed; will retry");
            } else {
                let error = format!("gave up after {attempt} attempts: {error}");
                persist(ctx, "recording a dead job", || bury(ctx, envelope, &error)).await;
                count(queue, envelope, "dead");
                tracing::error!(duration_ms, error = %error, "job out of attempts; dead");
            }
        }
    }
}

/// Marks the job dead with `error` and applies what its death means (a message becomes
/// `failed`) in one transaction, so a job is never dead in the outbox with its effects
/// half-applied, and a failure leaves the job to be retried as a whole.
pub async fn bury(ctx: &JobContext, envelope: &Envelope, error: &str) -> anyhow::Result<()> {
    let txn = ctx.db.begin().await?;
    if outbox::bury(&txn, envelope.outbox_id, envelope.attempt, error).await? {
        jobs::on_dead(&txn, envelope, error).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// `jobs_total` by outcome (`done`, `retry`, `dead`) and, once the job has ended,
/// `job_attempts`: how many attempts it took.
fn count(queue: &str, envelope: &Envelope, outcome: &'static str) {
    let labels = [
        ("queue", queue.to_owned()),
        ("job_type", envelope.job_type.clone()),
        ("outcome", outcome.to_owned()),
    ];
    metrics::counter!("jobs_total", &labels).increment(1);
    if outcome != "retry" {
        metrics::histogram!("job_attempts", &labels).record(f64::from(envelope.attempt));
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}
