//! E-mail and SMS delivery in batches: concurrent `send_email` (or `send_sms`) handlers
//! share one transaction that locks their notifications, sends the messages concurrently
//! and records every outcome in one statement (see `orderly_shared::domain::delivery`).

use orderly_shared::domain::delivery;
use orderly_shared::jobs::JobError;
use orderly_shared::providers::Providers;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use orderly_shared::batcher::Batcher;

/// The most messages sent by one batch.
const MAX_BATCH: usize = 100;
/// Batches in flight at once per channel (each holds a connection while its messages go).
const PARALLEL: usize = 4;

/// A delivery's end as the batcher hands it back (a `JobError` holds an `anyhow::Error`,
/// which cannot cross the batch as a value shared by duplicates).
#[derive(Debug)]
enum Outcome {
    Delivered,
    Permanent(String),
    Transient(String),
}

/// Handles to the e-mail and SMS batchers.
#[derive(Debug, Clone)]
pub struct Deliveries {
    email: Batcher<Uuid, Outcome>,
    sms: Batcher<Uuid, Outcome>,
}

fn to_outcomes(results: Vec<Result<(), JobError>>) -> Vec<Outcome> {
    results
        .into_iter()
        .map(|r| match r {
            Ok(()) => Outcome::Delivered,
            Err(JobError::Permanent(m)) => Outcome::Permanent(m),
            Err(JobError::Transient(e)) => Outcome::Transient(format!("{e:#}")),
        })
        .collect()
}

fn to_result(outcome: Option<Outcome>) -> Result<(), JobError> {
    match outcome {
        Some(Outcome::Delivered) => Ok(()),
        Some(Outcome::Permanent(m)) => Err(JobError::Permanent(m)),
        Some(Outcome::Transient(m)) => Err(JobError::Transient(anyhow::anyhow!(m))),
        None => Err(JobError::Transient(anyhow::anyhow!(
            "the delivery batcher stopped"
        ))),
    }
}

impl Deliveries {
    /// Starts one batcher per channel.
    pub fn start(db: DatabaseConnection, providers: Providers) -> Self {
        let (mail_db, mailer) = (db.clone(), providers.mail.clone());
        let email = Batcher::start(MAX_BATCH, PARALLEL, move |ids: Vec<Uuid>| {
            let (db, mailer) = (mail_db.clone(), mailer.clone());
            async move { to_outcomes(delivery::send_emails(&db, mailer.as_ref(), &ids).await) }
        });
        let sender = providers.sms.clone();
        let sms = Batcher::start(MAX_BATCH, PARALLEL, move |ids: Vec<Uuid>| {
            let (db, sender) = (db.clone(), sender.clone());
            async move { to_outcomes(delivery::send_smses(&db, sender.as_ref(), &ids).await) }
        });
        Self { email, sms }
    }

    /// Delivers e-mail notification `id`.
    pub async fn email(&self, id: Uuid) -> Result<(), JobError> {
        to_result(self.email.submit(id).await)
    }

    /// Delivers SMS notification `id`.
    pub async fn sms(&self, id: Uuid) -> Result<(), JobError> {
        to_result(self.sms.submit(id).await)
    }
}
