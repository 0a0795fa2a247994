//! The report's e-mail to the admins: a `notifications` row per admin and run (its
//! `dedup_key` makes it exist once, however often the job runs) with the `send_email` job
//! that delivers it, rendered at delivery from the stored report: the `daily_report`
//! templates' summary and the whole report as a CSV attachment.

use chrono::NaiveDate;
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use orderly_db::notifications::{NotificationChannel, NotificationKind};
use orderly_db::sql::stmt;

use super::{Report, csv};
use crate::messages::{self, DailyReport, EmailText, ListingSales, Revenue};
use crate::templates::{TemplateError, Templates};
use orderly_jobs::SendEmail;
use orderly_jobs::outbox::{self, NewJob};
use orderly_providers::mail::EmailAttachment;

/// How many listings the summary names (the CSV has them all).
const TOP_LISTINGS: usize = 5;

/// The `dedup_key` of run `run`'s e-mail of `date`'s report to `recipient`.
pub fn dedup_key(date: NaiveDate, run: &str, recipient: &str) -> String {
    format!("daily_report:{date}:{run}:email:{recipient}")
}

/// Asks, in the caller's transaction, for run `run`'s e-mail of `date`'s report (stored in
/// that transaction) to each of `recipients` that was not asked for before, with the jobs
/// that send them. An address given twice (in any case) is e-mailed once. Returns how many
/// were new.
pub async fn ask(
    db: &impl ConnectionTrait,
    date: NaiveDate,
    run: &str,
    recipients: &[String],
    request_id: Option<&str>,
) -> Result<u64, DbErr> {
    let mut to: Vec<&str> = Vec::with_capacity(recipients.len());
    for r in recipients
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
    {
        if !to.iter().any(|seen| seen.eq_ignore_ascii_case(r)) {
            to.push(r);
        }
    }
    if to.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = to.iter().map(|_| Uuid::now_v7()).collect();
    let keys: Vec<String> = to
        .iter()
        .map(|r| dedup_key(date, run, &r.to_ascii_lowercase()))
        .collect();
    let jobs = ids
        .iter()
        .map(|&notification_id| NewJob::of(&SendEmail { notification_id }, None, request_id))
        .collect::<Result<Vec<_>, _>>()?;
    let about: Vec<Option<Uuid>> = ids.iter().copied().map(Some).collect();
    let values: Vec<sea_orm::Value> = vec![
        ids.into(),
        keys.into(),
        to.iter()
            .map(|r| (*r).to_owned())
            .collect::<Vec<_>>()
            .into(),
        date.into(),
        NotificationChannel::Email.as_str().into(),
        NotificationKind::DailyReport.as_str().into(),
        outbox::jobs_value(&jobs, &about),
    ];
    let row = db.query_one_raw(stmt(&ASK_REPORT, values)).await?;
    match row {
        Some(row) => Ok(row.try_get::<i64>("", "asked")?.max(0) as u64),
        None => Ok(0),
    }
}

/// The report's e-mail: the summary and the CSV.
#[derive(Debug, Clone)]
pub struct ReportEmail {
    /// Subject, plain text and HTML.
    pub text: EmailText,
    /// `orderly-report-<date>.csv`.
    pub attachment: EmailAttachment,
}

/// Renders the e-mail of `report`.
pub fn render(templates: &Templates, report: &Report) -> Result<ReportEmail, TemplateError> {
    Ok(ReportEmail {
        text: messages::daily_report(templates, &summary(report))?,
        attachment: EmailAttachment {
            filename: csv::file_name(report),
            content_type: "text/csv; charset=utf-8".into(),
            content: csv::render(report).into_bytes(),
        },
    })
}

/// What the summary templates are given: the day's totals, and the listings that took
/// most (by gross, then seats, then title).
pub fn summary(report: &Report) -> DailyReport {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut top: Vec<_> = report.listings.iter().collect();
    top.sort_by(|a, b| {
        b.gross_cents
            .cmp(&a.gross_cents)
            .then(b.seats.cmp(&a.seats))
            .then(a.title.cmp(&b.title))
            .then(a.listing_id.cmp(&b.listing_id))
    });
    DailyReport {
        date: report.date,
        timezone: report.timezone.clone(),
        bookings: report.totals.iter().map(|t| count(t.bookings)).sum(),
        seats: report.totals.iter().map(|t| count(t.seats)).sum(),
        revenue: report
            .totals
            .iter()
            .filter(|t| t.gross_cents != 0 || t.refunds_cents != 0)
            .map(|t| Revenue {
                currency: t.currency.clone(),
                gross_cents: t.gross_cents,
                refunded_cents: t.refunds_cents,
            })
            .collect(),
        top_listings: top
            .into_iter()
            .filter(|l| l.bookings > 0 || l.gross_cents > 0)
            .take(TOP_LISTINGS)
            .map(|l| ListingSales {
                title: l.title.clone(),
                bookings: count(l.bookings),
                seats: count(l.seats),
                gross_cents: l.gross_cents,
                currency: l.currency.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::reports::{CurrencyTotals, ListingTotals};

    fn listing(title: &str, currency: &str, gross_cents: i64, seats: i64) -> ListingTotals {
        ListingTotals {
            listing_id: Uuid::now_v7(),
            title: title.into(),
            currency: currency.into(),
            bookings: 1,
            seats,
            gross_cents,
            refunds_cents: 0,
            net_cents: gross_cents,
        }
    }

    fn totals(currency: &str, bookings: i64, seats: i64, gross_cents: i64) -> CurrencyTotals {
        CurrencyTotals {
            currency: currency.into(),
            bookings,
            seats,
            gross_cents,
            refunds_cents: 0,
            net_cents: gross_cents,
        }
    }

    #[test]
    fn the_summary_adds_counts_across_currencies_and_keeps_money_apart() {
        let report = Report {
            date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            timezone: "Europe/Paris".into(),
            generated_at: Utc::now(),
            totals: vec![totals("eur", 3, 5, 9000), totals("usd", 1, 2, 0)],
            listings: (0..7)
                .map(|i| listing(&format!("L{i}"), "eur", i * 100, 1))
                .collect(),
        };
        let s = summary(&report);
        assert_eq!((s.bookings, s.seats), (4, 7));
        assert_eq!(s.revenue.len(), 1, "a currency without money is left out");
        assert_eq!(s.revenue[0].currency, "eur");
        let titles: Vec<_> = s.top_listings.iter().map(|l| l.title.as_str()).collect();
        assert_eq!(titles, ["L6", "L5", "L4", "L3", "L2"]);
    }

    #[test]
    fn one_key_per_day_run_and_address() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        assert_eq!(
            dedup_key(day, "scheduled", "a@x"),
            "daily_report:2026-03-29:scheduled:email:a@x"
        );
        assert_ne!(
            dedup_key(day, "scheduled", "a@x"),
            dedup_key(day, &Uuid::nil().to_string(), "a@x")
        );
    }
}

orderly_db::sql! {
    /// The report's e-mails to the recipients `$3` (ids `$1`, dedup keys `$2`) of the report
    /// of `$4`, on channel `$5` of kind `$6`, and the jobs `$7` that send them.
    ASK_REPORT = "WITH about AS (
            INSERT INTO notifications (id, dedup_key, channel, kind, recipient, report_date)
            SELECT n.id, n.dedup_key, $5, $6, n.recipient, $4
              FROM unnest($1::uuid[], $2::text[], $3::text[]) AS n(id, dedup_key, recipient)
            ON CONFLICT (dedup_key) DO NOTHING
            RETURNING id),
         jobs AS (", orderly_jobs::insert_jobs!("$7", about), ")
         SELECT count(*) AS asked FROM about";
}
