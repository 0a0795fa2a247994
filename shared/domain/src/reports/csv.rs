//! The report as a CSV file (RFC 4180, written by the `csv` crate: CRLF line ends, a field
//! with a comma, a quote or a line break quoted, quotes doubled), one row per listing and
//! currency, then one total row per currency.

use super::Report;

/// The columns, in order.
const HEADER: [&str; 9] = [
    "row",
    "listing_id",
    "title",
    "currency",
    "bookings",
    "seats",
    "gross_cents",
    "refunds_cents",
    "net_cents",
];

/// The attachment's file name: `orderly-report-2026-11-20.csv`.
pub fn file_name(report: &Report) -> String {
    format!("orderly-report-{}.csv", report.date)
}

/// `report` as CSV.
pub fn render(report: &Report) -> String {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let listings = report.listings.iter().map(|l| {
        [
            "listing".to_owned(),
            l.listing_id.to_string(),
            defuse(&l.title),
            l.currency.clone(),
            l.bookings.to_string(),
            l.seats.to_string(),
            l.gross_cents.to_string(),
            l.refunds_cents.to_string(),
            l.net_cents.to_string(),
        ]
    });
    let totals = report.totals.iter().map(|t| {
        [
            "total".to_owned(),
            String::new(),
            String::new(),
            t.currency.clone(),
            t.bookings.to_string(),
            t.seats.to_string(),
            t.gross_cents.to_string(),
            t.refunds_cents.to_string(),
            t.net_cents.to_string(),
        ]
    });
    // Writing to memory cannot fail, and every row has the header's nine fields (the
    // only error the writer has besides I/O), so neither call below ever fails.
    #[allow(clippy::expect_used)]
    {
        for row in std::iter::once(HEADER.map(str::to_owned))
            .chain(listings)
            .chain(totals)
        {
            out.write_record(&row).expect("a CSV row written to memory");
        }
        let bytes = out.into_inner().expect("a CSV flushed to memory");
        // Every field is a `String`, so the bytes are UTF-8.
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A title a provider typed, made inert for spreadsheets: one that starts like a formula
/// (`=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, so that opening the
/// file never runs what a provider wrote (OWASP's "CSV injection").
fn defuse(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::reports::{CurrencyTotals, ListingTotals};

    fn listing(title: &str, currency: &str) -> ListingTotals {
        ListingTotals {
            listing_id: Uuid::from_u128(1),
            title: title.into(),
            currency: currency.into(),
            bookings: 2,
            seats: 3,
            gross_cents: 1000,
            refunds_cents: 1500,
            net_cents: -500,
        }
    }

    fn report(listings: Vec<ListingTotals>) -> Report {
        Report {
            date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            timezone: "Europe/Paris".into(),
            generated_at: Utc::now(),
            totals: vec![CurrencyTotals {
                currency: "eur".into(),
                bookings: 2,
                seats: 3,
                gross_cents: 1000,
                refunds_cents: 1500,
                net_cents: -500,
            }],
            listings,
        }
    }

    /// An RFC 4180 reader, to check that what is written reads back field for field.
    fn parse(csv: &str) -> Vec<Vec<String>> {
        let mut rows = Vec::new();
        let (mut row, mut field) = (Vec::new(), String::new());
        let mut chars = csv.chars().peekable();
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match (quoted, c) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                (true, '"') => quoted = false,
                (true, c) => field.push(c),
                (false, '"') if field.is_empty() => quoted = true,
                (false, ',') => row.push(std::mem::take(&mut field)),
                (false, '\r') if chars.peek() == Some(&'\n') => {
                    chars.next();
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                (false, c) => field.push(c),
            }
        }
        assert!(!quoted && row.is_empty() && field.is_empty(), "a cut row");
        rows
    }

    #[test]
    fn titles_with_commas_quotes_and_line_breaks_read_back_whole() {
        let title = "Kayak, \"sunset\" tour\r\nline two\nand three";
        let csv = render(&report(vec![listing(title, "eur")]));
        let rows = parse(&csv);
        assert_eq!(rows.len(), 3, "{csv}");
        assert_eq!(rows[0], HEADER);
        assert_eq!(
            rows[1],
            [
                "listing",
                &Uuid::from_u128(1).to_string(),
                title,
                "eur",
                "2",
                "3",
                "1000",
                "1500",
                "-500"
            ]
        );
        assert_eq!(
            rows[2],
            ["total", "", "", "eur", "2", "3", "1000", "1500", "-500"]
        );
        assert!(csv.contains("\"Kayak, \"\"sunset\"\" tour\r\nline two\nand three\""));
    }

    #[test]
    fn plain_fields_are_not_quoted_and_rows_end_in_crlf() {
        let csv = render(&report(vec![listing("Old town walk", "eur")]));
        let lines: Vec<&str> = csv.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            "row,listing_id,title,currency,bookings,seats,gross_cents,refunds_cents,net_cents"
        );
        assert!(lines[1].contains(",Old town walk,eur,2,3,1000,1500,-500"));
        assert!(csv.ends_with("\r\n"));
    }

    #[test]
    fn a_title_that_looks_like_a_formula_is_defused_and_numbers_are_not() {
        let csv = render(&report(vec![listing(
            "=HYPERLINK(\"http://x\",\"a\")",
            "eur",
        )]));
        let rows = parse(&csv);
        assert_eq!(rows[1][2], "'=HYPERLINK(\"http://x\",\"a\")");
        assert_eq!(rows[1][8], "-500");
        assert_eq!(defuse("@sum"), "'@sum");
        assert_eq!(defuse("-1"), "'-1");
        assert_eq!(defuse("Walk - the old town"), "Walk - the old town");
    }

    #[test]
    fn a_quiet_day_has_a_header_and_nothing_else() {
        let mut quiet = report(Vec::new());
        quiet.totals.clear();
        assert_eq!(render(&quiet).split_terminator("\r\n").count(), 1);
        assert_eq!(file_name(&quiet), "orderly-report-2026-11-20.csv");
    }
}
