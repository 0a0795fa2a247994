//! Every job type the worker runs, in one list. A handler is a thin `run` that calls a
//! domain function with explicit dependencies.

mod cancel_payment;
mod capture_payment;
mod create_payment;
mod expire_booking;
mod noop;
mod refund_payment;
mod send_email;
mod send_sms;

use std::time::Duration;

use orderly_shared::jobs::{
    CancelPayment, CapturePayment, CreatePayment, Envelope, ExpireBooking, Job, JobError, Noop,
    RefundPayment, RetryPolicy, SendEmail, SendSms,
};

use crate::context::JobContext;

/// How a job type is retried and how long one attempt may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Retry policy.
    pub policy: RetryPolicy,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

fn limits_of<J: Job>() -> Limits {
    Limits {
        policy: J::POLICY,
        timeout: J::TIMEOUT,
    }
}

/// The limits of a job type, by name; `None` for a name no handler knows.
pub fn limits(job_type: &str) -> Option<Limits> {
    Some(match job_type {
        ExpireBooking::NAME => limits_of::<ExpireBooking>(),
        CreatePayment::NAME => limits_of::<CreatePayment>(),
        CapturePayment::NAME => limits_of::<CapturePayment>(),
        CancelPayment::NAME => limits_of::<CancelPayment>(),
        RefundPayment::NAME => limits_of::<RefundPayment>(),
        SendEmail::NAME => limits_of::<SendEmail>(),
        SendSms::NAME => limits_of::<SendSms>(),
        Noop::NAME => limits_of::<Noop>(),
        _ => return None,
    })
}

/// The retry policy of a job type, with the operator's overrides.
pub fn policy(job_type: &str, overrides: &crate::context::PolicyOverrides) -> RetryPolicy {
    overrides.apply(limits(job_type).map_or(RetryPolicy::DEFAULT, |l| l.policy))
}

fn payload<J: Job>(envelope: &Envelope) -> Result<J, JobError> {
    serde_json::from_value(envelope.payload.clone())
        .map_err(|e| JobError::Permanent(format!("bad {} payload: {e}", J::NAME)))
}

/// Runs the handler of `envelope`'s job type.
pub async fn run(ctx: &JobContext, envelope: &Envelope) -> Result<(), JobError> {
    let request_id = envelope.request_id.as_deref();
    match envelope.job_type.as_str() {
        ExpireBooking::NAME => expire_booking::run(ctx, payload(envelope)?, request_id).await,
        CreatePayment::NAME => create_payment::run(ctx, payload(envelope)?, request_id).await,
        CapturePayment::NAME => capture_payment::run(ctx, payload(envelope)?, request_id).await,
        CancelPayment::NAME => cancel_payment::run(ctx, payload(envelope)?).await,
        RefundPayment::NAME => refund_payment::run(ctx, payload(envelope)?, request_id).await,
        SendEmail::NAME => send_email::run(ctx, payload(envelope)?).await,
        SendSms::NAME => send_sms::run(ctx, payload(envelope)?).await,
        Noop::NAME => noop::run(payload(envelope)?).await,
        other => Err(JobError::Permanent(format!(
            "no handler for job type `{other}`"
        ))),
    }
}

/// What happens when a job dies: a message whose delivery job died is marked `failed`
/// (with the job's error), so that it does not look pending forever.
pub async fn on_dead(
    db: &impl sea_orm::ConnectionTrait,
    envelope: &Envelope,
    error: &str,
) -> Result<(), sea_orm::DbErr> {
    let notification = match envelope.job_type.as_str() {
        SendEmail::NAME => payload::<SendEmail>(envelope)
            .ok()
            .map(|j| j.notification_id),
        SendSms::NAME => payload::<SendSms>(envelope).ok().map(|j| j.notification_id),
        _ => None,
    };
    if let Some(id) = notification {
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "UPDATE notifications SET status = 'failed', last_error = $2 WHERE id = $1 AND status <> 'sent'",
                vec![id.into(), error.to_owned().into()],
            ))
            .await?;
    }
    Ok(())
}
