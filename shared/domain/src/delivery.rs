//! Delivering `notifications` rows: render each from current state, send it, record it.
//!
//! One send per message, as far as the protocol allows. A batch first claims its sendable
//! rows in one short committed statement (`sending`, until `sending_until`, `attempts + 1`).
//! Each message is then rendered, waits for an in-flight slot, and right before it goes to
//! its provider proves that its claim still owns the row: a fencing statement finds the row
//! still `sending` under the claim's attempt number and renews its lease (concurrent checks
//! share one statement). A claim that lost its row, because its lease lapsed while its
//! worker stood still and another worker claimed it or sent it, sends nothing; the job
//! retries and finds the message sent. A timer in the sender could not tell it: a paused
//! process does not know that it was paused. Each outcome is committed the moment the
//! provider answers (through a group-commit writer, none waits for the rest of its batch),
//! and the slot is held until then. While messages wait for or talk to their provider, the
//! batch renews their lease, so a live worker's claim never lapses; a dead or paused
//! worker's lapses after one lease. A crash or a pause can therefore repeat only the
//! messages that had passed their fence but whose outcome was not yet recorded: at most the
//! in-flight limit ([`Delivery::with_in_flight`]; `SMTP_POOL_SIZE` for e-mail,
//! `SMS_MAX_IN_FLIGHT` for SMS), sent again with the same `Message-ID`, so that a receiver
//! can drop the repeat. A row another worker is sending is left alone (a transient error:
//! the job retries later). Outcomes are fenced by the claim's attempt number too: a late
//! failure never overwrites a newer claim.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::messages::{self, BookingEmail, BookingEmailKind, EmailText};
use super::reports;
use crate::templates::Templates;
use orderly_core::batcher::Batcher;
use orderly_db::notifications::{self, NotificationStatus};
use orderly_db::sql::stmt;
use orderly_db::{bookings, daily_reports, listings, quoted, sql};
use orderly_providers::mail::{EmailAttachment, Mailer, OutgoingEmail};
use orderly_providers::sms::{OutgoingSms, SmsSender};
use orderly_providers::{Detail, ProviderError};

/// A claimed notification with what its text is rendered from.
#[derive(Debug)]
pub struct Locked {
    /// The row, as claimed.
    pub row: notifications::Model,
    /// Its booking, if it is about one.
    pub booking: Option<bookings::Model>,
    /// That booking's listing.
    pub listing: Option<listings::Model>,
    /// The name of the user it is for (the greeting).
    pub user_name: Option<String>,
    /// The stored report it tells, if it is a daily report.
    pub report: Option<daily_reports::Model>,
}

/// `alias."column" AS "prefix_column", ...` for the columns named, a literal.
macro_rules! columns {
    ($alias:literal, $prefix:literal, $first:ident $(, $column:ident)* $(,)?) => {
        concat!(
            $alias, ".\"", stringify!($first), "\" AS \"", $prefix, stringify!($first), "\""
            $(, ", ", $alias, ".\"", stringify!($column), "\" AS \"", $prefix, stringify!($column), "\"")*
        )
    };
}

/// Every column of `notifications`, as `n_*` (a test checks the list against the entity).
const NOTIFICATION_COLUMNS: &str = columns!(
    "n",
    "n_",
    id,
    dedup_key,
    booking_id,
    user_id,
    channel,
    kind,
    recipient,
    subject,
    status,
    attempts,
    last_error,
    provider_message_id,
    sent_at,
    sending_until,
    report_date,
    created_at,
    updated_at
);
/// Every column of `bookings`, as `b_*`.
const BOOKING_COLUMNS: &str = columns!(
    "b",
    "b_",
    id,
    listing_id,
    customer_id,
    quantity,
    amount_cents,
    currency,
    status,
    hold_expires_at,
    idempotency_key,
    request_id,
    confirmed_at,
    paid_at,
    expired_at,
    cancelled_at,
    refunded_at,
    created_at,
    updated_at
);
/// Every column of `listings`, as `l_*`.
const LISTING_COLUMNS: &str = columns!(
    "l",
    "l_",
    id,
    provider_id,
    title,
    description,
    starts_at,
    capacity,
    seats_left,
    price_cents,
    currency,
    status,
    created_at,
    updated_at
);
/// Every column of `daily_reports`, as `r_*`.
const REPORT_COLUMNS: &str = columns!("r", "r_", report_date, timezone, generated_at, report);

const PENDING: &str = quoted!(NotificationStatus::Pending);
const SENDING: &str = quoted!(NotificationStatus::Sending);

/// Claims the sendable rows of `ids` (pending, or `sending` whose lease ran out) for
/// `lease`, in one committed statement, with their booking, listing and user's name, or
/// their report.
async fn claim(
    db: &DatabaseConnection,
    ids: &[Uuid],
    lease: Duration,
) -> Result<Vec<Locked>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &CLAIM,
            [
                ids.to_vec().into(),
                lease.as_secs_f64().into(),
                NotificationStatus::Sending.as_str().into(),
            ],
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
            let report = match row.report_date {
                Some(_) => Some(daily_reports::Model::from_query_result(r, "r_")?),
                None => None,
            };
            Ok(Locked {
                row,
                booking,
                listing,
                user_name: r.try_get("", "u_name")?,
                report,
            })
        })
        .collect()
}

/// The outcome of a message another claim owns: the job retries, and then finds it sent.
fn sent_elsewhere() -> ProviderError {
    ProviderError::Transient("the message is being sent by another worker".into())
}

/// What the rows of `ids` that were not claimed mean for their jobs.
async fn unclaimed(
    db: &DatabaseConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Result<(), ProviderError>>, DbErr> {
    let rows = db
        .query_all_raw(stmt(&OUTCOMES, [ids.to_vec().into()]))
        .await?;
    let mut outcomes = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("", "id")?;
        let status: String = row.try_get("", "status")?;
        let error: Option<String> = row.try_get("", "last_error")?;
        let outcome = match status.as_str() {
            "sent" => Ok(()),
            "failed" => Err(ProviderError::Permanent(
                format!("the message failed earlier: {}", error.unwrap_or_default()).into(),
            )),
            // `sending` under another worker's lease, or claimed and put back meanwhile.
            _ => Err(sent_elsewhere()),
        };
        outcomes.insert(id, outcome);
    }
    Ok(outcomes)
}

/// A provider's answer to one message.
pub type Outcome = Result<String, ProviderError>;

/// The claim `attempt` of notification `id`.
type Claim = (Uuid, i32);

/// The outcome of the claim `attempt` of notification `id`.
type Answer = (Uuid, i32, Outcome);

/// Records outcomes in one statement: `sent` with the provider's id, `failed` with a
/// permanent error, or `pending` again with a transient one (the job retries). A row is
/// written only while `sending`; a failure only under the claim it answers (a newer claim
/// owns the row), while a send is a fact whichever claim made it.
async fn record(db: &DatabaseConnection, outcomes: &[Answer]) -> Result<(), DbErr> {
    let answers: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|(id, attempt, outcome)| {
            let (status, error, provider_id) = match outcome {
                Ok(provider_id) => (NotificationStatus::Sent, None, Some(provider_id.clone())),
                Err(e @ ProviderError::Permanent(_)) => {
                    (NotificationStatus::Failed, Some(e.describe()), None)
                }
                Err(e) => (NotificationStatus::Pending, Some(e.describe()), None),
            };
            serde_json::json!({
                "id": id,
                "attempt": attempt,
                "status": status.as_str(),
                "error": error,
                "provider_id": provider_id,
            })
        })
        .collect();
    db.execute_raw(stmt(&RECORD, [serde_json::Value::Array(answers).into()]))
        .await?;
    Ok(())
}

/// Extends the lease of the claims `(ids, attempts)` that still own their rows (`sending`
/// under that attempt), and returns those claims.
async fn renew(
    db: &DatabaseConnection,
    ids: &[Uuid],
    attempts: &[i32],
    lease: Duration,
) -> Result<HashSet<Claim>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &RENEW,
            vec![
                ids.to_vec().into(),
                attempts.to_vec().into(),
                lease.as_secs_f64().into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "id")?, r.try_get("", "attempts")?)))
        .collect()
}

/// Answers, for each claim of `claims`, whether it still owns its row, renewing its lease
/// if so: the fence right before a send, for concurrent sends in one statement.
async fn fence(
    db: &DatabaseConnection,
    claims: &[Claim],
    lease: Duration,
) -> Vec<Result<bool, Arc<DbErr>>> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = claims.iter().copied().unzip();
    match renew(db, &ids, &attempts, lease).await {
        Ok(held) => claims.iter().map(|c| Ok(held.contains(c))).collect(),
        Err(e) => vec![Err(Arc::new(e)); claims.len()],
    }
}

/// Renews the claims every third of `lease` until dropped (when the batch's sends are
/// done). A failed renewal is logged and tried again at the next tick; should they all
/// fail, the lease lapses and another worker may send the message again.
async fn keep_claimed(
    db: &DatabaseConnection,
    ids: Vec<Uuid>,
    attempts: Vec<i32>,
    lease: Duration,
) -> Infallible {
    let every = (lease / 3).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = renew(db, &ids, &attempts, lease).await {
            tracing::warn!(error = %e, messages = ids.len(), "renewing delivery leases failed");
        }
    }
}

/// The e-mail of a claimed notification, from its booking as it is now, or from its
/// stored report (with the report as a CSV attachment). Templates are checked at
/// start-up, so a failure here is a bug that a retry would repeat: permanent.
fn render_email(
    templates: &Templates,
    l: &Locked,
) -> Result<(EmailText, Vec<EmailAttachment>), ProviderError> {
    let rendering = |e: crate::templates::TemplateError| {
        ProviderError::Permanent(Detail::caused_by("rendering the e-mail", e))
    };
    let Ok(kind) = BookingEmailKind::try_from(l.row.kind) else {
        // The daily report, rendered from the stored report the row names.
        let stored = l.report.as_ref().ok_or_else(|| {
            ProviderError::Permanent(
                format!(
                    "a `{}` notification without its report",
                    l.row.kind.as_str()
                )
                .into(),
            )
        })?;
        let report = reports::parse(stored)
            .map_err(|e| ProviderError::Permanent(Detail::caused_by("rendering the e-mail", e)))?;
        let email = reports::email::render(templates, &report).map_err(rendering)?;
        return Ok((email.text, vec![email.attachment]));
    };
    let data = BookingEmail::new(
        l.user_name.as_deref(),
        l.booking.as_ref(),
        l.listing.as_ref(),
    );
    let email = messages::booking_email(templates, kind, &data).map_err(rendering)?;
    Ok((email, Vec::new()))
}

/// Most outcomes written, or claims checked, by one statement.
const MAX_RECORD_BATCH: usize = 500;

/// Delivers notifications: claims, sends, and commits each outcome as it comes.
#[derive(Debug, Clone)]
pub struct Delivery {
    db: DatabaseConnection,
    lease: Duration,
    outcomes: Batcher<Answer, Result<(), Arc<DbErr>>>,
    fences: Batcher<Claim, Result<bool, Arc<DbErr>>>,
    in_flight: Option<Arc<Semaphore>>,
}

impl Delivery {
    /// A delivery over `db` whose claims last `lease` (longer than any provider timeout).
    pub fn new(db: DatabaseConnection, lease: Duration) -> Self {
        let writer_db = db.clone();
        let outcomes = Batcher::start(MAX_RECORD_BATCH, 2, move |batch: Vec<Answer>| {
            let db = writer_db.clone();
            async move {
                let result = record(&db, &batch).await.map_err(Arc::new);
                vec![result; batch.len()]
            }
        });
        let fence_db = db.clone();
        let fences = Batcher::start(MAX_RECORD_BATCH, 2, move |claims: Vec<Claim>| {
            let db = fence_db.clone();
            async move { fence(&db, &claims, lease).await }
        });
        Self {
            db,
            lease,
            outcomes,
            fences,
            in_flight: None,
        }
    }

    /// This delivery with at most `limit` messages (when given) between their fence and the
    /// commit of their outcome. A message the provider accepted is in flight until its
    /// outcome is committed: a crash or a pause before that may send it again. Without a
    /// limit, nothing bounds how many messages stand between their fence and their provider.
    pub fn with_in_flight(mut self, limit: Option<usize>) -> Self {
        self.in_flight = limit.map(|n| Arc::new(Semaphore::new(n.max(1))));
        self
    }

    /// Delivers the notifications `ids` as one batch: each claimed row is made a message
    /// with `render` and, while its claim holds, sent with `send`. Returns one outcome per
    /// id, in order (an id given twice gets the same outcome). A missing row is permanent,
    /// a database failure transient.
    pub async fn deliver<M, R, S, Fut>(
        &self,
        ids: &[Uuid],
        render: R,
        send: S,
    ) -> Vec<Result<(), ProviderError>>
    where
        R: Fn(Locked) -> Result<M, ProviderError>,
        S: Fn(M) -> Fut,
        Fut: Future<Output = Outcome>,
    {
        match self.deliver_batch(ids, render, send).await {
            Ok(outcomes) => ids
                .iter()
                .map(|id| {
                    outcomes.get(id).cloned().unwrap_or_else(|| {
                        Err(ProviderError::Permanent(
                            format!("notification {id} does not exist").into(),
                        ))
                    })
                })
                .collect(),
            Err(e) => {
                let error = ProviderError::Transient(Detail::caused_by("database", e));
                vec![Err(error); ids.len()]
            }
        }
    }

    async fn deliver_batch<M, R, S, Fut>(
        &self,
        ids: &[Uuid],
        render: R,
        send: S,
    ) -> Result<HashMap<Uuid, Result<(), ProviderError>>, DbErr>
    where
        R: Fn(Locked) -> Result<M, ProviderError>,
        S: Fn(M) -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let claimed = claim(&self.db, ids, self.lease).await?;
        let mut outcomes = if claimed.len() < ids.len() {
            let mine: HashSet<Uuid> = claimed.iter().map(|c| c.row.id).collect();
            let rest: Vec<Uuid> = ids
                .iter()
                .filter(|id| !mine.contains(id))
                .copied()
                .collect();
            unclaimed(&self.db, &rest).await?
        } else {
            HashMap::with_capacity(ids.len())
        };
        if claimed.is_empty() {
            return Ok(outcomes);
        }
        let (claim_ids, claim_attempts): (Vec<Uuid>, Vec<i32>) =
            claimed.iter().map(|c| (c.row.id, c.row.attempts)).unzip();
        let send = &send;
        let sends = claimed.into_iter().map(|l| {
            let (id, attempt) = (l.row.id, l.row.attempts);
            let message = render(l);
            let in_flight = self.in_flight.clone();
            async move {
                // Held until the outcome is committed (a closed semaphore never happens).
                let _slot = match in_flight {
                    Some(slots) => slots.acquire_owned().await.ok(),
                    None => None,
                };
                let outcome = match message {
                    Ok(message) => match self.fences.submit((id, attempt)).await {
                        Some(Ok(true)) => send(message).await,
                        // Another claim owns the row, or it is sent: none of ours to record.
                        Some(Ok(false)) => return (id, Err(sent_elsewhere())),
                        Some(Err(e)) => Err(ProviderError::Transient(Detail::caused_by(
                            "checking the claim",
                            e,
                        ))),
                        None => Err(ProviderError::Transient("the claim checker stopped".into())),
                    },
                    Err(e) => Err(e),
                };
                // Committed as soon as the provider answered, not at the end of the batch.
                let recorded = self.outcomes.submit((id, attempt, outcome.clone())).await;
                let outcome = match recorded {
                    Some(Ok(())) => outcome.map(|_| ()),
                    Some(Err(e)) => Err(ProviderError::Transient(Detail::caused_by(
                        "recording the outcome",
                        e,
                    ))),
                    None => Err(ProviderError::Transient(
                        "the outcome writer stopped".into(),
                    )),
                };
                (id, outcome)
            }
        });
        let answered = tokio::select! {
            answered = join_all(sends) => answered,
            never = keep_claimed(&self.db, claim_ids, claim_attempts, self.lease) => match never {},
        };
        for (id, outcome) in answered {
            outcomes.insert(id, outcome);
        }
        Ok(outcomes)
    }

    /// The `send_email` job for a batch of notifications, rendered with `templates`.
    pub async fn send_emails(
        &self,
        mailer: &dyn Mailer,
        templates: &Templates,
        ids: &[Uuid],
    ) -> Vec<Result<(), ProviderError>> {
        self.deliver(
            ids,
            |l| {
                let (email, attachments) = render_email(templates, &l)?;
                Ok(OutgoingEmail {
                    id: l.row.id,
                    to: l.row.recipient,
                    subject: l.row.subject.unwrap_or(email.subject),
                    text: email.text,
                    html: Some(email.html),
                    attachments,
                })
            },
            |email| async move { mailer.send(&email).await },
        )
        .await
    }

    /// The `send_sms` job for a batch of notifications.
    pub async fn send_smses(
        &self,
        sender: &dyn SmsSender,
        ids: &[Uuid],
    ) -> Vec<Result<(), ProviderError>> {
        self.deliver(
            ids,
            |l| {
                Ok(OutgoingSms {
                    id: l.row.id,
                    body: messages::sms(l.row.kind, l.booking.as_ref(), l.listing.as_ref()),
                    to: l.row.recipient,
                })
            },
            |sms| async move { sender.send(&sms).await },
        )
        .await
    }
}

sql! {
    /// Claims the rows `$1` that are pending, or sending under a lapsed lease, for `$2`
    /// seconds (status `$3`, sending), and returns them with their booking, listing, user's
    /// name and report.
    CLAIM = "WITH claimed AS (
            UPDATE notifications
               SET status = $3, attempts = attempts + 1,
                   sending_until = now() + make_interval(secs => $2)
             WHERE id = ANY($1)
               AND (status = ", PENDING, " OR (status = ", SENDING, " AND sending_until < now()))
            RETURNING *)
         SELECT ", NOTIFICATION_COLUMNS, ", ", BOOKING_COLUMNS, ", ", LISTING_COLUMNS, ", ",
            REPORT_COLUMNS, ", u.name AS u_name
           FROM claimed n
           LEFT JOIN bookings b ON b.id = n.booking_id
           LEFT JOIN listings l ON l.id = b.listing_id
           LEFT JOIN users u ON u.id = n.user_id
           LEFT JOIN daily_reports r ON r.report_date = n.report_date";

    /// The status and error of the rows `$1`.
    OUTCOMES = "SELECT id, status, last_error FROM notifications WHERE id = ANY($1)";

    /// The answers `$1` (records of id, attempt, status, error, provider_id) of rows still
    /// sending: a failure only under the claim it answers, a send under any.
    RECORD = "UPDATE notifications n
            SET status = d.status,
                last_error = d.error,
                provider_message_id = COALESCE(d.provider_id, n.provider_message_id),
                sent_at = CASE WHEN d.status = ", quoted!(NotificationStatus::Sent), " THEN now() ELSE n.sent_at END,
                sending_until = NULL
           FROM jsonb_to_recordset($1::jsonb)
                AS d(id uuid, attempt int, status text, error text, provider_id text)
          WHERE n.id = d.id
            AND n.status = ", SENDING, "
            AND (n.attempts = d.attempt OR d.status = ", quoted!(NotificationStatus::Sent), ")";

    /// Extends by `$3` seconds the leases of the claims `$1` (ids), `$2` (attempts) that
    /// still own their rows, and returns those.
    RENEW = "UPDATE notifications n
                SET sending_until = now() + make_interval(secs => $3)
               FROM unnest($1::uuid[], $2::int[]) AS c(id, attempt)
              WHERE n.id = c.id AND n.status = ", SENDING, " AND n.attempts = c.attempt
          RETURNING n.id, n.attempts";
}

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, IdenStatic, Iterable};

    use super::*;

    /// `alias."column" AS "prefix_column", ...` for every column of `E`, in its order.
    fn columns_of<E: EntityTrait>(alias: &str, prefix: &str) -> String {
        E::Column::iter()
            .map(|c| format!(r#"{alias}."{0}" AS "{prefix}{0}""#, c.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn the_claim_selects_every_column_of_its_entities() {
        assert_eq!(
            NOTIFICATION_COLUMNS,
            columns_of::<notifications::Entity>("n", "n_")
        );
        assert_eq!(BOOKING_COLUMNS, columns_of::<bookings::Entity>("b", "b_"));
        assert_eq!(LISTING_COLUMNS, columns_of::<listings::Entity>("l", "l_"));
        assert_eq!(
            REPORT_COLUMNS,
            columns_of::<daily_reports::Entity>("r", "r_")
        );
    }
}
