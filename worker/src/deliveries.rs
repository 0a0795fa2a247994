//! E-mail and SMS delivery in batches: concurrent `send_email` (or `send_sms`) handlers
//! share one transaction that locks their notifications, sends the messages concurrently
//! and records every outcome in one statement (see `orderly_shared::domain::delivery`).

use orderly_shared::domain::delivery;
use orderly_shared::jobs::JobError;
use orderly_shared::providers::{ProviderError, Providers};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use orderly_shared::batcher::Batcher;

/// The most messages sent by one batch.
const MAX_BATCH: usize = 100;
/// Batches in flight at once per channel (each holds a connection while its messages go).
const PARALLEL: usize = 4;

type Outcome = Result<(), ProviderError>;

/// Handles to the e-mail and SMS batchers.
#[derive(Debug, Clone)]
pub struct Deliveries {
    email: Batcher<Uuid, Outcome>,
    sms: Batcher<Uuid, Outcome>,
}

fn to_result(outcome: Option<Outcome>) -> Result<(), JobError> {
    outcome
        .unwrap_or_else(|| {
            Err(ProviderError::Transient(
                "the delivery batcher stopped".into(),
            ))
        })
        .map_err(JobError::from)
}

impl Deliveries {
    /// Starts one batcher per channel.
    pub fn start(db: DatabaseConnection, providers: Providers) -> Self {
        let (mail_db, mailer) = (db.clone(), providers.mail.clone());
        let email = Batcher::start(MAX_BATCH, PARALLEL, move |ids: Vec<Uuid>| {
            let (db, mailer) = (mail_db.clone(), mailer.clone());
            async move { delivery::send_emails(&db, mailer.as_ref(), &ids).await }
        });
        let sender = providers.sms.clone();
        let sms = Batcher::start(MAX_BATCH, PARALLEL, move |ids: Vec<Uuid>| {
            let (db, sender) = (db.clone(), sender.clone());
            async move { delivery::send_smses(&db, sender.as_ref(), &ids).await }
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
