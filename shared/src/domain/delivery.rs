//! Delivering `notifications` rows: render each from current state, send it, record it.
//!
//! Deliveries run in batches: one transaction locks the batch's rows (in id order, so two
//! batches never deadlock), sends every message concurrently, records every outcome in one
//! `UPDATE` and commits. Two runs of the same job take turns on the row lock, and the second
//! finds it `sent` and does nothing; a worker that dies mid-batch drops its connection, so
//! PostgreSQL releases the locks at once.

use std::collections::HashMap;

use futures::future::join_all;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, FromQueryResult, IdenStatic,
    Iterable, Statement, TransactionTrait,
};
use uuid::Uuid;

use super::messages;
use crate::entities::notifications::{self, NotificationStatus};
use crate::entities::{bookings, listings};
use crate::providers::ProviderError;
use crate::providers::mail::{Mailer, OutgoingEmail};
use crate::providers::sms::{OutgoingSms, SmsSender};

/// A locked notification with what its text is rendered from.
#[derive(Debug)]
pub struct Locked {
    /// The row, as locked.
    pub row: notifications::Model,
    /// Its booking, if it is about one.
    pub booking: Option<bookings::Model>,
    /// That booking's listing.
    pub listing: Option<listings::Model>,
}

/// `alias."column" AS "prefix_column", ...` for every column of `E`.
fn columns<E: sea_orm::EntityTrait>(alias: &str, prefix: &str) -> String {
    E::Column::iter()
        .map(|c| format!(r#"{alias}."{0}" AS "{prefix}{0}""#, c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Locks the rows of `ids` (waiting for another batch that holds one) and reads their
/// booking and listing in the same query.
async fn lock(txn: &DatabaseTransaction, ids: &[Uuid]) -> Result<Vec<Locked>, DbErr> {
    let sql = format!(
        "SELECT {}, {}, {}
           FROM notifications n
           LEFT JOIN bookings b ON b.id = n.booking_id
           LEFT JOIN listings l ON l.id = b.listing_id
          WHERE n.id = ANY($1)
          ORDER BY n.id
            FOR UPDATE OF n",
        columns::<notifications::Entity>("n", "n_"),
        columns::<bookings::Entity>("b", "b_"),
        columns::<listings::Entity>("l", "l_"),
    );
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            sea_orm::DatabaseBackend::Postgres,
            sql,
            vec![ids.to_vec().into()],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let row = notifications::Model::from_query_result(r, "n_")?;
            let booking = match row.booking_id {
                Some(_) => Some(bookings::Model::from_query_result(r, "b_")?),
                None => None,
            };
            let listing = match booking {
                Some(_) => Some(listings::Model::from_query_result(r, "l_")?),
                None => None,
            };
            Ok(Locked {
                row,
                booking,
                listing,
            })
        })
        .collect()
}

/// Records every outcome in one statement: `sent` with the provider's id, `failed` with a
/// permanent error, or still `pending` with a transient one (the job retries).
async fn record(
    txn: &DatabaseTransaction,
    outcomes: &[(Uuid, &Result<String, ProviderError>)],
) -> Result<(), DbErr> {
    let mut ids = Vec::with_capacity(outcomes.len());
    let mut statuses = Vec::with_capacity(outcomes.len());
    let mut errors: Vec<String> = Vec::with_capacity(outcomes.len());
    let mut provider_ids: Vec<String> = Vec::with_capacity(outcomes.len());
    for (id, outcome) in outcomes {
        ids.push(*id);
        let (status, error, provider_id) = match outcome {
            Ok(provider_id) => (NotificationStatus::Sent, None, Some(provider_id.clone())),
            Err(e @ ProviderError::Permanent(_)) => {
                (NotificationStatus::Failed, Some(e.to_string()), None)
            }
            Err(e) => (NotificationStatus::Pending, Some(e.to_string()), None),
        };
        statuses.push(status.as_str().to_owned());
        // Arrays of text cannot carry NULLs here: '' stands for none.
        errors.push(error.unwrap_or_default());
        provider_ids.push(provider_id.unwrap_or_default());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "UPDATE notifications n
            SET status = d.status,
                attempts = n.attempts + 1,
                last_error = NULLIF(d.error, ''),
                provider_message_id = COALESCE(NULLIF(d.provider_id, ''), n.provider_message_id),
                sent_at = CASE WHEN d.status = 'sent' THEN now() ELSE n.sent_at END
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
                AS d(id, status, error, provider_id)
          WHERE n.id = d.id",
        vec![
            ids.into(),
            statuses.into(),
            errors.into(),
            provider_ids.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Delivers the notifications `ids` as one batch, sending each locked, unsent row with
/// `send`. Returns one outcome per id, in order (an id given twice gets the same outcome).
/// Outcomes are provider errors, which can be cloned and shared by duplicates: a missing row
/// is permanent, a database failure transient; the worker turns them into job errors.
pub async fn deliver<F, Fut>(
    db: &DatabaseConnection,
    ids: &[Uuid],
    send: F,
) -> Vec<Result<(), ProviderError>>
where
    F: Fn(Locked) -> Fut,
    Fut: Future<Output = Result<String, ProviderError>>,
{
    match deliver_batch(db, ids, send).await {
        Ok(outcomes) => ids
            .iter()
            .map(|id| {
                outcomes.get(id).cloned().unwrap_or_else(|| {
                    Err(ProviderError::Permanent(format!(
                        "notification {id} does not exist"
                    )))
                })
            })
            .collect(),
        Err(e) => {
            let error = ProviderError::Transient(format!("database: {e}"));
            vec![Err(error); ids.len()]
        }
    }
}

async fn deliver_batch<F, Fut>(
    db: &DatabaseConnection,
    ids: &[Uuid],
    send: F,
) -> Result<HashMap<Uuid, Result<(), ProviderError>>, DbErr>
where
    F: Fn(Locked) -> Fut,
    Fut: Future<Output = Result<String, ProviderError>>,
{
    let txn = db.begin().await?;
    let locked = lock(&txn, ids).await?;
    let mut outcomes = HashMap::with_capacity(locked.len());
    let mut sends = Vec::with_capacity(locked.len());
    for l in locked {
        if l.row.status == NotificationStatus::Sent {
            outcomes.insert(l.row.id, Ok(()));
        } else {
            let id = l.row.id;
            let sending = send(l);
            sends.push(async move { (id, sending.await) });
        }
    }
    let sent = join_all(sends).await;
    if !sent.is_empty() {
        let rows: Vec<_> = sent.iter().map(|(id, o)| (*id, o)).collect();
        record(&txn, &rows).await?;
    }
    txn.commit().await?;
    for (id, outcome) in sent {
        outcomes.insert(id, outcome.map(|_| ()));
    }
    Ok(outcomes)
}

/// The `send_email` job for a batch of notifications.
pub async fn send_emails(
    db: &DatabaseConnection,
    mailer: &dyn Mailer,
    ids: &[Uuid],
) -> Vec<Result<(), ProviderError>> {
    deliver(db, ids, |l| async move {
        let text = messages::email(l.row.kind, l.booking.as_ref(), l.listing.as_ref());
        let email = OutgoingEmail {
            id: l.row.id,
            to: l.row.recipient,
            subject: l.row.subject.unwrap_or(text.subject),
            body: text.body,
            attachments: Vec::new(),
        };
        mailer.send(&email).await
    })
    .await
}

/// The `send_sms` job for a batch of notifications.
pub async fn send_smses(
    db: &DatabaseConnection,
    sender: &dyn SmsSender,
    ids: &[Uuid],
) -> Vec<Result<(), ProviderError>> {
    deliver(db, ids, |l| async move {
        let sms = OutgoingSms {
            id: l.row.id,
            body: messages::sms(l.row.kind, l.booking.as_ref(), l.listing.as_ref()),
            to: l.row.recipient,
        };
        sender.send(&sms).await
    })
    .await
}
