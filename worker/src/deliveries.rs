//! E-mail and SMS delivery in batches: concurrent `send_email` (or `send_sms`) handlers
//! share one claim of their notifications, send the messages concurrently and commit each
//! outcome as it comes (see `orderly_domain::delivery`).

use std::sync::Arc;
use std::time::Duration;

use crate::job_error::JobError;
use orderly_domain::delivery::Delivery;
use orderly_domain::templates::Templates;
use orderly_providers::{ProviderError, Providers};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use orderly_core::batcher::Batcher;

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
    /// Starts one batcher per channel; e-mail is rendered with `templates`.
    /// Messages handed to a provider stay `sending` for `lease` before another worker may
    /// send them again.
    pub fn start(
        db: DatabaseConnection,
        providers: Providers,
        templates: Arc<Templates>,
        lease: Duration,
    ) -> Self {
        let delivery = Delivery::new(db, lease);
        let mail_delivery = delivery
            .clone()
            .with_in_flight(providers.mail.max_in_flight());
        let mailer = providers.mail.clone();
        let email = Batcher::start(MAX_BATCH, PARALLEL, move |ids: Vec<Uuid>| {
            let (delivery, mailer, templates) =
                (mail_delivery.clone(), mailer.clone(), templates.clone());
            async move {
                delivery
                    .send_emails(mailer.as_ref(), &templates, &ids)
                    .await
            }
        });
        let sender = providers.sms.clone();
        let delivery = delivery.with_in_flight(sender.max_in_flight());
        let sms = Batcher::start(MAX_BATCH, PARALLEL, move |ids: Vec<Uuid>| {
            let (delivery, sender) = (delivery.clone(), sender.clone());
            async move { delivery.send_smses(sender.as_ref(), &ids).await }
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
