use std::path::Path;
use std::sync::LazyLock;

use super::*;
use orderly_core::config::DEFAULT_TEMPLATES_DIR as DEFAULT_DIR;
use orderly_testing::copy_of_templates;

static TEMPLATES: LazyLock<Templates> =
    LazyLock::new(|| Templates::load(Path::new(DEFAULT_DIR)).unwrap());

const HOSTILE: [&str; 2] = [
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
];

#[test]
fn every_booking_email_renders_both_parts_from_sample_data() {
    let data = samples::booking();
    for kind in BookingEmailKind::ALL {
        let email = booking_email(&TEMPLATES, kind, &data).unwrap();
        let what = kind.name();
        assert_eq!(
            email.subject,
            format!("{}: Sunset kayak tour", kind.subject()),
            "{what}"
        );
        for part in [&email.text, &email.html] {
            assert!(part.contains("Hello Ada Lovelace,"), "{what}: {part}");
            assert!(part.contains("Sunset kayak tour"), "{what}: {part}");
            assert!(
                part.contains("Sat 14 Mar 2026, 18:30 UTC"),
                "{what}: {part}"
            );
            assert!(part.contains("84.00 EUR"), "{what}: {part}");
            assert!(
                part.contains("01927c3e-5a4b-7d2e-9f10-2b3c4d5e6f70"),
                "{what}: the booking reference: {part}"
            );
            assert!(
                !part.contains("{{") && !part.contains("{%"),
                "{what}: {part}"
            );
        }
        assert!(email.html.starts_with("<!DOCTYPE html>"), "{what}");
        assert!(
            email
                .html
                .contains(&format!("<title>{}</title>", email.subject)),
            "{what}"
        );
        assert!(
            !email.text.contains('<'),
            "{what}: no markup in text: {}",
            email.text
        );
        assert!(
            !email.html.contains("src=") && !email.html.contains("<link"),
            "{what}: nothing is fetched from elsewhere"
        );
    }
}

#[test]
fn every_booking_email_renders_without_a_booking() {
    for kind in BookingEmailKind::ALL {
        let email = booking_email(&TEMPLATES, kind, &samples::without_booking()).unwrap();
        assert_eq!(email.subject, kind.subject());
        assert!(email.text.starts_with("Hello,\n\n"), "{}", email.text);
        assert!(!email.text.contains("Reference:"), "{}", email.text);
        assert!(email.html.contains("Hello,"));
    }
}

#[test]
fn a_hostile_listing_title_is_escaped_in_html_and_intact_in_text() {
    for title in HOSTILE {
        let mut data = samples::booking();
        data.customer_name = Some(title.into());
        if let Some(listing) = data.listing.as_mut() {
            listing.title = title.into();
        }
        for kind in BookingEmailKind::ALL {
            let email = booking_email(&TEMPLATES, kind, &data).unwrap();
            assert!(email.text.contains(title), "{}", email.text);
            assert!(!email.html.contains(title), "{}", email.html);
            assert!(!email.html.contains("<script>"), "{}", email.html);
            assert!(!email.html.contains("<img"), "{}", email.html);
            assert!(
                email.html.contains("&lt;script&gt;") || email.html.contains("&quot;&gt;&lt;img"),
                "{}",
                email.html
            );
        }
    }
}

#[test]
fn the_subject_is_one_line_whatever_the_title() {
    let mut data = samples::booking();
    if let Some(listing) = data.listing.as_mut() {
        listing.title = "Kayak\r\nBcc: everyone@example.com".into();
    }
    let email = booking_email(&TEMPLATES, BookingEmailKind::Confirmed, &data).unwrap();
    assert_eq!(
        email.subject,
        "Your booking is confirmed: Kayak  Bcc: everyone@example.com"
    );
}

#[test]
fn a_failed_payment_says_until_when_the_seats_are_held_while_they_are() {
    let mut data = samples::booking();
    let held = booking_email(&TEMPLATES, BookingEmailKind::PaymentFailed, &data).unwrap();
    assert!(
        held.text
            .contains("Your seats stay reserved until Sat 7 Mar 2026, 18:45 UTC"),
        "{}",
        held.text
    );
    if let Some(booking) = data.booking.as_mut() {
        booking.held_until = None;
    }
    let released = booking_email(&TEMPLATES, BookingEmailKind::PaymentFailed, &data).unwrap();
    assert!(
        released.text.contains("Your seats have been released"),
        "{}",
        released.text
    );
}

#[test]
fn the_daily_report_gives_revenue_per_currency_and_the_top_listings() {
    let report = daily_report(&TEMPLATES, &samples::report()).unwrap();
    assert_eq!(report.subject, "Daily report for Saturday 14 March 2026");
    for part in [&report.text, &report.html] {
        assert!(part.contains("Saturday 14 March 2026"), "{part}");
        assert!(part.contains("42"), "{part}");
        assert!(part.contains("3,984.00 EUR"), "gross: {part}");
        assert!(part.contains("3,900.00 EUR"), "net: {part}");
        assert!(part.contains("120.00 USD"), "{part}");
        assert!(part.contains("Old town walk"), "{part}");
    }
    assert!(report.text.contains("(counted in Europe/Berlin)"));
    assert!(report.html.contains("(counted in Europe&#x2f;Berlin)"));
    assert!(
        report
            .text
            .contains("  1. Sunset kayak tour: 30 bookings, 71 seats, 2,982.00 EUR\n"),
        "{}",
        report.text
    );

    let quiet = daily_report(&TEMPLATES, &samples::quiet_report()).unwrap();
    for part in [&quiet.text, &quiet.html] {
        assert!(part.contains("No bookings were made"), "{part}");
        assert!(!part.contains("Top listings"), "{part}");
    }
}

#[test]
fn every_notification_kind_but_the_report_is_a_booking_email() {
    use sea_orm::Iterable;
    for kind in NotificationKind::iter() {
        match BookingEmailKind::try_from(kind) {
            Ok(email) => assert_eq!(email.name(), kind.as_str()),
            Err(_) => assert_eq!(kind, NotificationKind::DailyReport),
        }
    }
}

/// Loads and checks `dir` expecting a refusal; returns its message.
fn refusal(dir: &Path) -> String {
    let error = Templates::load(dir)
        .and_then(|templates| check(&templates))
        .expect_err("the templates must be refused");
    error.to_string()
}

#[test]
fn the_templates_of_the_source_tree_pass_the_check() {
    check(&TEMPLATES).unwrap();
}

#[test]
fn a_template_that_does_not_render_is_refused_at_the_check_naming_the_file() {
    let dir = copy_of_templates();
    let file = dir.join("email/reminder.txt");
    let source = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, source.replace("listing.title", "listing.titel")).unwrap();

    let message = refusal(&dir);

    assert!(message.starts_with("TEMPLATES_DIR: "), "{message}");
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("does not render"), "{message}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_broken_shared_layout_is_refused_naming_it() {
    let dir = copy_of_templates();
    std::fs::write(dir.join("email/base.txt"), "{{ customer_name | shout }}\n").unwrap();

    let message = refusal(&dir);

    assert!(message.contains("email/base.txt"), "{message}");
    assert!(message.contains("shout"), "{message}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_template_is_refused_at_the_check_naming_the_file() {
    let dir = copy_of_templates();
    let file = dir.join("email/payment_failed.txt");
    std::fs::remove_file(&file).unwrap();

    let message = refusal(&dir);

    assert_eq!(
        message,
        format!("TEMPLATES_DIR: {} is missing", file.display())
    );
    std::fs::remove_dir_all(dir).unwrap();
}
