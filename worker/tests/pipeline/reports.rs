//! The daily report: its figures against a direct count of the same rows (two currencies,
//! a refund made on a later day, the edges of a Paris day and its daylight-saving days),
//! its storage (a re-run replaces the day), and the job run by a worker: stored, and one
//! e-mail per admin and run with the report as a CSV attachment.

use std::time::Duration;

use chrono::NaiveDate;
use mail_parser::{MessageParser, MimeHeaders};
use orderly_db::listings;
use orderly_db::users::Role;
use orderly_domain::reports::{self, CurrencyTotals, Report, ReportSettings};
use orderly_jobs::{DailyReport, outbox};
use orderly_testing::wait_until;
use sea_orm::{ConnectionTrait, Statement};
use uuid::Uuid;

use crate::fakes::FakeSmtp;
use crate::harness::Pipeline;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn paris() -> ReportSettings {
    ReportSettings {
        tz: "Europe/Paris".parse().unwrap(),
        recipients: Vec::new(),
    }
}

/// Seeds bookings and payments at chosen instants, straight into the tables.
struct Seed<'a> {
    p: &'a Pipeline,
    customer: Uuid,
}

impl<'a> Seed<'a> {
    async fn new(p: &'a Pipeline) -> Self {
        let customer = p.user(Role::Customer, None).await.id;
        Self { p, customer }
    }

    async fn listing(&self, title: &str, currency: &str) -> listings::Model {
        let listing = self.p.listing_titled(100, title).await;
        self.exec(&format!(
            "UPDATE listings SET currency = '{currency}' WHERE id = '{}'",
            listing.id
        ))
        .await;
        listings::Model {
            currency: currency.into(),
            ..listing
        }
    }

    async fn exec(&self, sql: &str) {
        self.p.db.execute_unprepared(sql).await.unwrap();
    }

    /// A booking of `quantity` seats made at `created`, authorised a minute later when
    /// `confirmed`, else still waiting for its payment.
    async fn booking(
        &self,
        listing: &listings::Model,
        quantity: i32,
        created: &str,
        confirmed: bool,
    ) -> Uuid {
        let id = Uuid::now_v7();
        let amount = i64::from(quantity) * listing.price_cents;
        let (status, confirmed_at, payment) = if confirmed {
            (
                "confirmed",
                format!("'{created}'::timestamptz + interval '1 minute'"),
                "authorized",
            )
        } else {
            ("pending_payment", "NULL".to_owned(), "requires_payment")
        };
        self.exec(&format!(
            "INSERT INTO bookings (id, listing_id, customer_id, quantity, amount_cents, currency,
                                   status, hold_expires_at, confirmed_at, created_at, updated_at)
             VALUES ('{id}', '{listing}', '{customer}', {quantity}, {amount}, '{currency}',
                     '{status}', '{created}'::timestamptz + interval '15 minutes', {confirmed_at},
                     '{created}', '{created}');
             INSERT INTO payments (id, booking_id, provider, status, amount_cents, currency, created_at)
             VALUES ('{payment_id}', '{id}', 'simulated', '{payment}', {amount}, '{currency}', '{created}')",
            listing = listing.id,
            customer = self.customer,
            currency = listing.currency,
            payment_id = Uuid::now_v7(),
        ))
        .await;
        id
    }

    async fn capture(&self, booking: Uuid, when: &str) {
        self.exec(&format!(
            "UPDATE bookings SET status = 'paid', paid_at = '{when}' WHERE id = '{booking}';
             UPDATE payments SET status = 'captured', amount_captured_cents = amount_cents,
                    captured_at = '{when}' WHERE booking_id = '{booking}'"
        ))
        .await;
    }

    /// Cancelled and refunded at `when`.
    async fn refund(&self, booking: Uuid, when: &str) {
        self.exec(&format!(
            "UPDATE bookings SET status = 'refunded', cancelled_at = '{when}', refunded_at = '{when}'
              WHERE id = '{booking}';
             UPDATE payments SET status = 'refunded', amount_refunded_cents = amount_captured_cents,
                    refunded_at = '{when}' WHERE booking_id = '{booking}';
             INSERT INTO payment_refunds (id, payment_id, amount_cents, currency, source, refunded_at)
             SELECT 'seed-' || id, id, amount_captured_cents, currency, 'orderly', '{when}'
               FROM payments WHERE booking_id = '{booking}'"
        ))
        .await;
    }

    /// The day's totals counted directly, by status, between two literal instants.
    async fn direct(&self, from: &str, until: &str) -> Vec<CurrencyTotals> {
        let rows = self
            .p
            .db
            .query_all_raw(Statement::from_string(
                self.p.db.get_database_backend(),
                format!(
                    "SELECT c.currency,
                        (SELECT count(*) FROM bookings b WHERE b.currency = c.currency
                            AND b.status IN ('confirmed', 'paid')
                            AND b.created_at >= '{from}' AND b.created_at < '{until}') AS bookings,
                        (SELECT coalesce(sum(b.quantity), 0)::bigint FROM bookings b
                          WHERE b.currency = c.currency AND b.status IN ('confirmed', 'paid')
                            AND b.created_at >= '{from}' AND b.created_at < '{until}') AS seats,
                        (SELECT coalesce(sum(p.amount_captured_cents), 0)::bigint FROM payments p
                          WHERE p.currency = c.currency
                            AND p.captured_at >= '{from}' AND p.captured_at < '{until}') AS gross,
                        (SELECT coalesce(sum(p.amount_refunded_cents), 0)::bigint FROM payments p
                          WHERE p.currency = c.currency
                            AND p.refunded_at >= '{from}' AND p.refunded_at < '{until}') AS refunds
                       FROM (SELECT DISTINCT currency FROM bookings) c
                      ORDER BY c.currency"
                ),
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                let gross: i64 = r.try_get("", "gross").unwrap();
                let refunds: i64 = r.try_get("", "refunds").unwrap();
                CurrencyTotals {
                    currency: r.try_get("", "currency").unwrap(),
                    bookings: r.try_get("", "bookings").unwrap(),
                    seats: r.try_get("", "seats").unwrap(),
                    gross_cents: gross,
                    refunds_cents: refunds,
                    net_cents: gross - refunds,
                }
            })
            .filter(|t| {
                t.bookings != 0 || t.seats != 0 || t.gross_cents != 0 || t.refunds_cents != 0
            })
            .collect()
    }
}

/// Runs the report job's domain function for `date` (nightly) and returns what it stored.
async fn report(p: &Pipeline, settings: &ReportSettings, date: &str) -> Report {
    let job = DailyReport {
        date: day(date),
        request: None,
    };
    let computed = reports::run(&p.db, settings, &job, None).await.unwrap();
    let stored = reports::find(&p.db, day(date)).await.unwrap().unwrap();
    assert_eq!(stored, computed);
    stored
}

#[tokio::test]
async fn report_totals_equal_a_direct_count_including_a_refund_made_on_a_later_day() {
    let p = Pipeline::new(&[]).await;
    let s = Seed::new(&p).await;
    let kayak = s.listing("Kayak, \"sunset\" tour", "eur").await;
    let walk = s.listing("Old town walk", "eur").await;
    let cruise = s.listing("Harbour cruise", "usd").await;
    // 2026-11-20 in Paris (UTC+1) runs from 2026-11-19T23:00Z to 2026-11-20T23:00Z.
    let refunded_later = s.booking(&kayak, 2, "2026-11-20T09:00:00Z", true).await;
    s.capture(refunded_later, "2026-11-20T09:05:00Z").await;
    let kept = s.booking(&kayak, 3, "2026-11-20T12:00:00Z", true).await;
    s.capture(kept, "2026-11-20T12:05:00Z").await;
    let _authorised = s.booking(&walk, 1, "2026-11-20T15:00:00Z", true).await;
    let _unpaid = s.booking(&walk, 4, "2026-11-20T16:00:00Z", false).await;
    let dollars = s.booking(&cruise, 5, "2026-11-20T20:00:00Z", true).await;
    s.capture(dollars, "2026-11-20T20:30:00Z").await;
    // Made the day before, captured on the day: money of the day, not a booking of it.
    let earlier = s.booking(&walk, 1, "2026-11-19T10:00:00Z", true).await;
    s.capture(earlier, "2026-11-20T08:00:00Z").await;
    // 23:59:59 and 00:00:00 local: one second apart, one day apart.
    let _before_midnight = s.booking(&walk, 6, "2026-11-19T22:59:59Z", true).await;
    let _at_midnight = s.booking(&walk, 7, "2026-11-19T23:00:00Z", true).await;
    let _next_midnight = s.booking(&walk, 8, "2026-11-20T23:00:00Z", true).await;

    let settings = paris();
    let first = report(&p, &settings, "2026-11-20").await;
    let direct = s
        .direct("2026-11-19T23:00:00Z", "2026-11-20T23:00:00Z")
        .await;
    assert_eq!(first.totals, direct);
    assert_eq!(first.timezone, "Europe/Paris");
    let eur = &first.totals[0];
    assert_eq!(
        (eur.currency.as_str(), eur.bookings, eur.seats),
        ("eur", 4, 13)
    );
    assert_eq!(eur.gross_cents, (2 + 3 + 1) * 4200);
    let usd = &first.totals[1];
    assert_eq!(
        (usd.currency.as_str(), usd.bookings, usd.seats),
        ("usd", 1, 5)
    );
    assert_eq!(usd.gross_cents, 5 * 4200);
    // Per listing: each listing's lines add up to its currency's totals.
    for total in &first.totals {
        let lines: Vec<_> = first
            .listings
            .iter()
            .filter(|l| l.currency == total.currency)
            .collect();
        assert_eq!(
            lines.iter().map(|l| l.bookings).sum::<i64>(),
            total.bookings
        );
        assert_eq!(lines.iter().map(|l| l.seats).sum::<i64>(), total.seats);
        assert_eq!(
            lines.iter().map(|l| l.gross_cents).sum::<i64>(),
            total.gross_cents
        );
    }
    let kayak_line = first
        .listings
        .iter()
        .find(|l| l.listing_id == kayak.id)
        .unwrap();
    assert_eq!(kayak_line.title, kayak.title);
    assert_eq!((kayak_line.bookings, kayak_line.seats), (2, 5));
    // Deterministic order: by currency, then title.
    let order: Vec<_> = first.listings.iter().map(|l| l.title.as_str()).collect();
    assert_eq!(
        order,
        [kayak.title.as_str(), "Old town walk", "Harbour cruise"]
    );

    // Refunded two days later: the refund is money of that day...
    s.refund(refunded_later, "2026-11-22T10:00:00Z").await;
    let refund_day = report(&p, &settings, "2026-11-22").await;
    assert_eq!(
        refund_day.totals,
        s.direct("2026-11-21T23:00:00Z", "2026-11-22T23:00:00Z")
            .await
    );
    assert_eq!(refund_day.totals.len(), 1);
    let t = &refund_day.totals[0];
    assert_eq!(
        (t.bookings, t.gross_cents, t.refunds_cents),
        (0, 0, 2 * 4200)
    );
    assert_eq!(t.net_cents, -2 * 4200);
    assert_eq!(refund_day.listings.len(), 1);
    assert_eq!(refund_day.listings[0].listing_id, kayak.id);

    // ...and the day of the booking, asked again, no longer counts it as a booking; what
    // was captured that day stays captured that day.
    let again = report(&p, &settings, "2026-11-20").await;
    assert_eq!(
        again.totals,
        s.direct("2026-11-19T23:00:00Z", "2026-11-20T23:00:00Z")
            .await
    );
    let eur = &again.totals[0];
    assert_eq!((eur.bookings, eur.seats), (3, 11));
    assert_eq!(eur.gross_cents, first.totals[0].gross_cents);
    assert_eq!(eur.refunds_cents, 0);
    assert!(again.generated_at >= first.generated_at);
    assert_eq!(
        p.scalar("SELECT count(*) FROM daily_reports WHERE report_date = '2026-11-20'")
            .await,
        1,
        "a re-run replaces the day's row"
    );
}

#[tokio::test]
async fn report_of_a_daylight_saving_day_in_paris_counts_the_whole_23_or_25_hours() {
    let p = Pipeline::new(&[]).await;
    let s = Seed::new(&p).await;
    let listing = s.listing("Night train", "eur").await;
    // 2026-03-29: clocks go from 02:00 +01 to 03:00 +02; the day runs 23 hours,
    // 2026-03-28T23:00Z to 2026-03-29T22:00Z.
    for (utc, seats) in [
        ("2026-03-28T22:30:00Z", 1), // 23:30 on the 28th: outside
        ("2026-03-28T23:30:00Z", 2), // 00:30: inside
        ("2026-03-29T21:30:00Z", 3), // 23:30 (+02): inside
        ("2026-03-29T22:30:00Z", 4), // 00:30 on the 30th: outside
    ] {
        s.booking(&listing, seats, utc, true).await;
    }
    // 2026-10-25: clocks go from 03:00 +02 back to 02:00 +01; the day runs 25 hours,
    // 2026-10-24T22:00Z to 2026-10-25T23:00Z, and 02:30 happens twice.
    for (utc, seats) in [
        ("2026-10-24T21:30:00Z", 1), // 23:30 on the 24th: outside
        ("2026-10-24T22:30:00Z", 2), // 00:30 (+02): inside
        ("2026-10-25T00:30:00Z", 3), // the first 02:30 (+02): inside
        ("2026-10-25T01:30:00Z", 4), // the second 02:30 (+01): inside
        ("2026-10-25T22:30:00Z", 5), // 23:30 (+01): inside
        ("2026-10-25T23:30:00Z", 6), // 00:30 on the 26th: outside
    ] {
        s.booking(&listing, seats, utc, true).await;
    }

    let settings = paris();
    let spring = report(&p, &settings, "2026-03-29").await;
    assert_eq!(
        spring.totals,
        s.direct("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z")
            .await
    );
    assert_eq!((spring.totals[0].bookings, spring.totals[0].seats), (2, 5));

    let autumn = report(&p, &settings, "2026-10-25").await;
    assert_eq!(
        autumn.totals,
        s.direct("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")
            .await
    );
    assert_eq!((autumn.totals[0].bookings, autumn.totals[0].seats), (4, 14));

    // A day without anything is stored too, empty.
    let quiet = report(&p, &settings, "2026-10-27").await;
    assert!(quiet.totals.is_empty() && quiet.listings.is_empty());
}

#[tokio::test]
async fn report_reruns_ask_for_one_email_per_admin_per_run_and_a_slower_run_never_wins() {
    let p = Pipeline::new(&[]).await;
    let settings = ReportSettings {
        recipients: vec!["a@x".into(), "b@y".into(), "A@X ".into()],
        ..paris()
    };
    let nightly = DailyReport {
        date: day("2026-11-20"),
        request: None,
    };
    let emails = "SELECT count(*) FROM notifications WHERE kind = 'daily_report'";
    let jobs = "SELECT count(*) FROM outbox WHERE job_type = 'send_email'";
    reports::run(&p.db, &settings, &nightly, None)
        .await
        .unwrap();
    assert_eq!((p.scalar(emails).await, p.scalar(jobs).await), (2, 2));
    // A retry of the same run: recomputed, nobody told twice.
    reports::run(&p.db, &settings, &nightly, None)
        .await
        .unwrap();
    assert_eq!((p.scalar(emails).await, p.scalar(jobs).await), (2, 2));
    // An admin's request is a run of its own.
    let requested = DailyReport {
        request: Some(Uuid::now_v7()),
        ..nightly.clone()
    };
    let latest = reports::run(&p.db, &settings, &requested, None)
        .await
        .unwrap();
    assert_eq!((p.scalar(emails).await, p.scalar(jobs).await), (4, 4));

    // A report computed before the stored one does not replace it.
    let stale = Report {
        generated_at: latest.generated_at - chrono::Duration::seconds(1),
        timezone: "UTC".into(),
        ..latest.clone()
    };
    assert!(!reports::store(&p.db, &stale).await.unwrap());
    assert_eq!(
        reports::find(&p.db, day("2026-11-20")).await.unwrap(),
        Some(latest)
    );
}

#[tokio::test]
async fn report_job_run_by_a_worker_is_stored_and_mailed_once_to_each_admin_with_its_csv() {
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = Pipeline::new(&[
        ("ADMIN_EMAILS", "a@x,b@y"),
        ("SMTP_URL", &smtp.url),
        ("REPORT_TZ", "Europe/Paris"),
    ])
    .await;
    let s = Seed::new(&p).await;
    let title = "Kayak, \"sunset\" tour";
    let kayak = s.listing(title, "eur").await;
    let booking = s.booking(&kayak, 2, "2026-11-20T09:00:00Z", true).await;
    s.capture(booking, "2026-11-20T09:05:00Z").await;
    let job = DailyReport {
        date: day("2026-11-20"),
        request: None,
    };
    assert!(outbox::enqueue(&p.db, &job, None, None).await.unwrap());
    let _worker = p.spawn_worker(&[]);

    wait_until(
        "both admins got the report",
        Duration::from_secs(60),
        || async { smtp.accepted() >= 2 },
    )
    .await;
    p.wait_until_drained(Duration::from_secs(30)).await;
    let stored = reports::find(&p.db, day("2026-11-20"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.totals[0].gross_cents, 2 * 4200);

    let raw = smtp.messages.lock().unwrap().clone();
    assert_eq!(raw.len(), 2, "one e-mail per admin");
    let mut recipients = Vec::new();
    for message in &raw {
        let mail = MessageParser::default().parse(message.as_bytes()).unwrap();
        recipients.push(
            mail.to()
                .and_then(|to| to.first())
                .and_then(|a| a.address())
                .unwrap()
                .to_owned(),
        );
        assert_eq!(
            mail.subject(),
            Some("Daily report for Friday 20 November 2026")
        );
        let text = mail.body_text(0).unwrap();
        assert!(text.contains("84.00 EUR"), "{text}");
        assert!(text.contains("attached CSV"), "{text}");
        let attachments: Vec<_> = mail.attachments().collect();
        assert_eq!(attachments.len(), 1);
        let csv = attachments[0];
        assert_eq!(csv.attachment_name(), Some("orderly-report-2026-11-20.csv"));
        let content_type = csv.content_type().unwrap();
        assert_eq!(
            (content_type.ctype(), content_type.subtype()),
            ("text", Some("csv"))
        );
        let body = String::from_utf8(csv.contents().to_vec()).unwrap();
        let lines: Vec<&str> = body.lines().map(|l| l.trim_end_matches('\r')).collect();
        assert_eq!(
            lines,
            [
                "row,listing_id,title,currency,bookings,seats,gross_cents,refunds_cents,net_cents",
                &format!(
                    "listing,{},\"Kayak, \"\"sunset\"\" tour\",eur,1,2,8400,0,8400",
                    kayak.id
                ),
                "total,,,eur,1,2,8400,0,8400",
            ]
        );
    }
    recipients.sort();
    assert_eq!(recipients, ["a@x", "b@y"]);

    // The same run again (a retry, or the nightly job enqueued twice): nobody is told twice.
    assert!(!outbox::enqueue(&p.db, &job, None, None).await.unwrap());
    reports::run(
        &p.db,
        &ReportSettings::from_settings(&p.settings),
        &job,
        None,
    )
    .await
    .unwrap();
    p.wait_until_drained(Duration::from_secs(30)).await;
    assert_eq!(smtp.accepted(), 2);
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM notifications WHERE kind = 'daily_report' AND status = 'sent'"
        )
        .await,
        2
    );
}
