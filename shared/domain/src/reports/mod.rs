//! The daily report: for one day of the report time zone, per currency and per listing,
//! the bookings made and the money captured and refunded, computed in one statement,
//! stored in `daily_reports` (a re-run replaces the day's row) and e-mailed to the admins.
//!
//! What counts, for the day from local midnight to the next local midnight (23 or 25 hours
//! on a daylight-saving day): `bookings`/`seats` are the bookings created that day that
//! reached `confirmed` or `paid` and whose booking or payment was not refunded by the time
//! of the report; `gross_cents` the payments captured that day; `refunds_cents` the refunds
//! made that day (whenever the booking was made); `net_cents = gross_cents - refunds_cents`.

pub mod csv;
pub mod email;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use orderly_core::config::Settings;
use orderly_db::bookings::BookingStatus;
use orderly_db::daily_reports;
use orderly_db::sql::stmt;
use orderly_db::{quoted, sql};
use orderly_jobs::wake;
use orderly_jobs::{self as jobs, outbox};

/// One day's report, as stored and as `GET /api/v1/admin/reports/daily` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    /// The day, in `timezone`.
    #[schema(value_type = String, format = Date, example = "2026-11-20")]
    pub date: NaiveDate,
    /// IANA name of the time zone the day is counted in (`REPORT_TZ`).
    #[schema(example = "Europe/Paris")]
    pub timezone: String,
    /// When it was computed (the database's clock).
    pub generated_at: DateTime<Utc>,
    /// One entry per currency, by currency code.
    pub totals: Vec<CurrencyTotals>,
    /// One entry per listing and currency, by currency, then title, then listing id.
    pub listings: Vec<ListingTotals>,
}

/// A day's figures in one currency. Amounts (`*_cents`) are in the currency's minor unit:
/// cents for `eur`, while `jpy` has none, so 1 yen is 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CurrencyTotals {
    /// ISO 4217 code, lower case.
    #[schema(example = "eur")]
    pub currency: String,
    /// Bookings made that day that reached `confirmed` or `paid` and were not refunded.
    pub bookings: i64,
    /// Seats in those bookings.
    pub seats: i64,
    /// Captured that day, in minor units.
    pub gross_cents: i64,
    /// Refunded that day, in minor units.
    pub refunds_cents: i64,
    /// `gross_cents - refunds_cents` (negative when refunds outweigh captures).
    pub net_cents: i64,
}

/// A day's figures of one listing in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListingTotals {
    /// The listing.
    pub listing_id: Uuid,
    /// Its title when the report was computed.
    pub title: String,
    /// ISO 4217 code, lower case.
    pub currency: String,
    /// As in [`CurrencyTotals`].
    pub bookings: i64,
    /// As in [`CurrencyTotals`].
    pub seats: i64,
    /// As in [`CurrencyTotals`].
    pub gross_cents: i64,
    /// As in [`CurrencyTotals`].
    pub refunds_cents: i64,
    /// As in [`CurrencyTotals`].
    pub net_cents: i64,
}

/// What the report job needs from the configuration.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// `REPORT_TZ`: the zone whose days are reported.
    pub tz: Tz,
    /// `ADMIN_EMAILS`: who is e-mailed each report.
    pub recipients: Vec<String>,
}

impl ReportSettings {
    /// The report part of `settings`.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            tz: settings.report_tz,
            recipients: settings.admin_emails.clone(),
        }
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The day cannot be placed in time (beyond the calendar's range).
    #[error("{0} is not a day that can be reported")]
    BadDay(NaiveDate),
    /// A report did not serialise to JSON (a bug: the type always should).
    #[error("serialising the report")]
    Unwritable(#[source] serde_json::Error),
    /// A stored report does not read as a [`Report`] (written by an incompatible version).
    #[error("the stored report of {date} does not read")]
    Unreadable {
        /// The report's day.
        date: NaiveDate,
        /// Why it does not read.
        #[source]
        source: serde_json::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The instants `date` of `tz` runs between, in UTC: from its first local midnight to the
/// next day's. A daylight-saving day is 23 or 25 hours long. Where a transition skips
/// midnight, the day begins at the first local time that exists (the transition); where
/// midnight happens twice, at the first one. `None` beyond the calendar's range.
pub fn day_bounds(date: NaiveDate, tz: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    Some((start_of(date, tz)?, start_of(date.succ_opt()?, tz)?))
}

fn start_of(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    let midnight = date.and_time(NaiveTime::MIN);
    // Transitions fall on whole minutes; a skipped day (Samoa, 2011-12-30) is 24 hours of
    // them, and then the day is empty.
    (0..=24 * 60).find_map(|minute| {
        let local = midnight.checked_add_signed(Duration::minutes(minute))?;
        let at = tz.from_local_datetime(&local).earliest()?;
        Some(at.with_timezone(&Utc))
    })
}

/// The key of a run of the report: `scheduled` for the nightly one, else the request's id.
pub fn run_key(request: Option<Uuid>) -> String {
    request.map_or_else(|| "scheduled".to_owned(), |r| r.to_string())
}

/// The report job: computes the day, stores it (replacing an older report of the day) and,
/// in the same transaction, asks for one e-mail per admin for this run. A retry of the job
/// recomputes and finds its e-mails already asked for, so each admin gets one per run.
pub async fn run(
    db: &DatabaseConnection,
    settings: &ReportSettings,
    job: &jobs::DailyReport,
    request_id: Option<&str>,
) -> Result<Report, ReportError> {
    let (from, until) = day_bounds(job.date, settings.tz).ok_or(ReportError::BadDay(job.date))?;
    let txn = db.begin().await?;
    let report = compute(&txn, job.date, settings.tz, from, until).await?;
    let stored = store(&txn, &report).await?;
    let run = run_key(job.request);
    let asked = email::ask(&txn, job.date, &run, &settings.recipients, request_id).await?;
    wake::commit(db, txn).await?;
    tracing::info!(
        report.date = %job.date,
        report.tz = %settings.tz,
        report.run = %run,
        report.replaced = stored,
        report.currencies = report.totals.len(),
        report.listings = report.listings.len(),
        emails.asked = asked,
        "daily report stored"
    );
    if settings.recipients.is_empty() {
        tracing::info!(report.date = %job.date, "ADMIN_EMAILS is empty: the report is stored and no one is told");
    }
    Ok(report)
}

sql! {
    /// The report's one statement: every fact of the day (a booking made, a payment captured,
    /// a refund made, in full or in part, by us or in the provider's dashboard: each a row of
    /// `payment_refunds`) as a row of a `UNION ALL`, summed per currency and per listing and
    /// currency with `GROUPING SETS`. The one-row `clock` keeps the database's time on an empty
    /// day too.
    COMPUTE = r#"
WITH facts AS (
    SELECT b.listing_id, b.currency, 1 AS bookings, b.quantity AS seats,
           0::bigint AS gross_cents, 0::bigint AS refunds_cents
      FROM bookings b
      LEFT JOIN payments p ON p.booking_id = b.id
     WHERE b.created_at >= $1 AND b.created_at < $2
       AND (b.confirmed_at IS NOT NULL OR b.paid_at IS NOT NULL)
       AND b.status <> "#, quoted!(BookingStatus::Refunded), r#" AND b.refunded_at IS NULL AND p.refunded_at IS NULL
    UNION ALL
    SELECT b.listing_id, p.currency, 0, 0, p.amount_captured_cents, 0
      FROM payments p
      JOIN bookings b ON b.id = p.booking_id
     WHERE p.captured_at >= $1 AND p.captured_at < $2
    UNION ALL
    SELECT b.listing_id, r.currency, 0, 0, 0, r.amount_cents
      FROM payment_refunds r
      JOIN payments p ON p.id = r.payment_id
      JOIN bookings b ON b.id = p.booking_id
     WHERE r.refunded_at >= $1 AND r.refunded_at < $2
),
sums AS (
    SELECT currency, listing_id, GROUPING(listing_id) = 1 AS is_total,
           sum(bookings)::bigint AS bookings, sum(seats)::bigint AS seats,
           sum(gross_cents)::bigint AS gross_cents, sum(refunds_cents)::bigint AS refunds_cents
      FROM facts
     GROUP BY GROUPING SETS ((currency), (currency, listing_id))
)
SELECT clock.generated_at, s.is_total, s.currency, s.listing_id, l.title,
       s.bookings, s.seats, s.gross_cents, s.refunds_cents
  FROM (SELECT statement_timestamp() AS generated_at) clock
  LEFT JOIN (sums s LEFT JOIN listings l ON l.id = s.listing_id) ON true
 ORDER BY s.is_total DESC, s.currency, l.title, s.listing_id
"#;
}

/// One row of [`COMPUTE`].
#[derive(Debug, FromQueryResult)]
struct Line {
    generated_at: DateTime<Utc>,
    is_total: Option<bool>,
    currency: Option<String>,
    listing_id: Option<Uuid>,
    title: Option<String>,
    bookings: Option<i64>,
    seats: Option<i64>,
    gross_cents: Option<i64>,
    refunds_cents: Option<i64>,
}

/// Computes the report of `date` of `tz`, which runs from `from` to `until`.
pub async fn compute(
    db: &impl ConnectionTrait,
    date: NaiveDate,
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Report, DbErr> {
    let lines = Line::find_by_statement(stmt(&COMPUTE, [from.into(), until.into()]))
        .all(db)
        .await?;
    let mut report = Report {
        date,
        timezone: tz.name().to_owned(),
        generated_at: lines.first().map_or_else(Utc::now, |l| l.generated_at),
        totals: Vec::new(),
        listings: Vec::new(),
    };
    for line in lines {
        // The clock's row on a day without a fact.
        let Some(currency) = line.currency else {
            continue;
        };
        let (bookings, seats) = (line.bookings.unwrap_or(0), line.seats.unwrap_or(0));
        let gross_cents = line.gross_cents.unwrap_or(0);
        let refunds_cents = line.refunds_cents.unwrap_or(0);
        let net_cents = gross_cents - refunds_cents;
        match (line.is_total, line.listing_id) {
            (Some(false), Some(listing_id)) => report.listings.push(ListingTotals {
                listing_id,
                title: line.title.unwrap_or_default(),
                currency,
                bookings,
                seats,
                gross_cents,
                refunds_cents,
                net_cents,
            }),
            _ => report.totals.push(CurrencyTotals {
                currency,
                bookings,
                seats,
                gross_cents,
                refunds_cents,
                net_cents,
            }),
        }
    }
    Ok(report)
}

/// Stores `report` as its day's report, replacing an older one; a report computed before
/// the stored one (a slower concurrent run) does not replace it. Returns whether it was
/// written.
pub async fn store(db: &impl ConnectionTrait, report: &Report) -> Result<bool, ReportError> {
    let json = serde_json::to_value(report).map_err(ReportError::Unwritable)?;
    let done = db
        .execute_raw(stmt(
            &STORE,
            [
                report.date.into(),
                report.timezone.clone().into(),
                report.generated_at.into(),
                json.into(),
            ],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The stored report of `date`, if any.
pub async fn find(
    db: &impl ConnectionTrait,
    date: NaiveDate,
) -> Result<Option<Report>, ReportError> {
    use sea_orm::EntityTrait;
    let Some(row) = daily_reports::Entity::find_by_id(date).one(db).await? else {
        return Ok(None);
    };
    parse(&row).map(Some)
}

/// The report a stored row holds.
pub fn parse(row: &daily_reports::Model) -> Result<Report, ReportError> {
    serde_json::from_value(row.report.clone()).map_err(|source| ReportError::Unreadable {
        date: row.report_date,
        source,
    })
}

/// An admin asks for `date`'s report again: enqueues a run of its own (the job's
/// `request`) and records who asked in `audit_log`, in one transaction. Returns the run's
/// id.
pub async fn request(
    db: &DatabaseConnection,
    date: NaiveDate,
    actor_id: Uuid,
    request_id: Option<&str>,
) -> Result<Uuid, DbErr> {
    let run = Uuid::now_v7();
    let txn = db.begin().await?;
    outbox::enqueue(
        &txn,
        &jobs::DailyReport {
            date,
            request: Some(run),
        },
        None,
        request_id,
    )
    .await?;
    txn.execute_raw(stmt(
        &AUDIT_REQUEST,
        [
            actor_id.into(),
            date.to_string().into(),
            serde_json::json!({ "request": run }).into(),
            request_id.map(str::to_owned).into(),
        ],
    ))
    .await?;
    wake::commit(db, txn).await?;
    tracing::info!(report.date = %date, report.run = %run, user.id = %actor_id, "daily report requested");
    Ok(run)
}

sql! {
    /// The report `$1` (date), `$2` (timezone), `$3` (computed at), `$4` (JSON), replacing
    /// a stored one computed no later.
    STORE = "INSERT INTO daily_reports (report_date, timezone, generated_at, report)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (report_date) DO UPDATE
                SET timezone = EXCLUDED.timezone, generated_at = EXCLUDED.generated_at,
                    report = EXCLUDED.report
              WHERE daily_reports.generated_at <= EXCLUDED.generated_at";

    /// User `$1` asked for the report of `$2` again (details `$3`, request `$4`).
    AUDIT_REQUEST = "INSERT INTO audit_log (actor_id, action, entity_type, entity_id, details, request_id)
         VALUES ($1, 'report.requested', 'daily_report', $2, $3, $4)";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_day_runs_from_local_midnight_to_the_next() {
        let (from, until) = day_bounds(day("2026-11-20"), chrono_tz::Europe::Paris).unwrap();
        assert_eq!(from, utc("2026-11-19T23:00:00Z"));
        assert_eq!(until, utc("2026-11-20T23:00:00Z"));
        let (from, until) = day_bounds(day("2026-11-20"), chrono_tz::UTC).unwrap();
        assert_eq!(from, utc("2026-11-20T00:00:00Z"));
        assert_eq!(until, utc("2026-11-21T00:00:00Z"));
    }

    #[test]
    fn daylight_saving_days_are_23_and_25_hours_long() {
        let paris = chrono_tz::Europe::Paris;
        let (from, until) = day_bounds(day("2026-03-29"), paris).unwrap();
        assert_eq!(from, utc("2026-03-28T23:00:00Z"));
        assert_eq!(until - from, Duration::hours(23));
        let (from, until) = day_bounds(day("2026-10-25"), paris).unwrap();
        assert_eq!(from, utc("2026-10-24T22:00:00Z"));
        assert_eq!(until - from, Duration::hours(25));
        let new_york = chrono_tz::America::New_York;
        let (from, until) = day_bounds(day("2026-03-08"), new_york).unwrap();
        assert_eq!(from, utc("2026-03-08T05:00:00Z"));
        assert_eq!(until - from, Duration::hours(23));
        let (from, until) = day_bounds(day("2026-11-01"), new_york).unwrap();
        assert_eq!(until - from, Duration::hours(25));
    }

    #[test]
    fn a_day_whose_midnight_is_skipped_starts_at_the_transition() {
        // Santiago moved from -04 to -03 at local midnight on 2026-09-06.
        let santiago = chrono_tz::America::Santiago;
        let (from, until) = day_bounds(day("2026-09-06"), santiago).unwrap();
        assert_eq!(from, utc("2026-09-06T04:00:00Z"));
        assert_eq!(until - from, Duration::hours(23));
        // Samoa skipped 2011-12-30 altogether: an empty day.
        let (from, until) = day_bounds(day("2011-12-30"), chrono_tz::Pacific::Apia).unwrap();
        assert_eq!(from, until);
    }

    #[test]
    fn the_nightly_run_and_each_request_are_runs_of_their_own() {
        assert_eq!(run_key(None), "scheduled");
        let request = Uuid::from_u128(7);
        assert_eq!(run_key(Some(request)), request.to_string());
    }
}
