//! Filters the templates format with: `money`, `datetime` and `date`.

use chrono::{DateTime, NaiveDate, Utc};
use minijinja::{Environment, Error, ErrorKind};

/// Adds the filters to `env`.
pub fn register(env: &mut Environment<'_>) {
    env.add_filter("money", money);
    env.add_filter("datetime", datetime);
    env.add_filter("date", date);
}

/// An amount in the currency's minor unit (cents), as people read it:
/// `{{ 1250 | money("eur") }}` is `12.50 EUR`, `123456` USD is `1,234.56 USD`, and a
/// currency without minor unit has no decimals (`500 JPY`).
pub fn money(minor: i64, currency: &str) -> String {
    let code = currency.trim().to_ascii_uppercase();
    let digits = minor_unit_digits(&code);
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    let scale = 10u64.pow(digits);
    let whole = thousands(minor / scale);
    if digits == 0 {
        format!("{sign}{whole} {code}")
    } else {
        let fraction = minor % scale;
        format!(
            "{sign}{whole}.{fraction:0width$} {code}",
            width = digits as usize
        )
    }
}

/// Decimal places of a currency's minor unit, as Stripe counts amounts.
fn minor_unit_digits(code: &str) -> u32 {
    const NONE: [&str; 16] = [
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    const THREE: [&str; 5] = ["BHD", "JOD", "KWD", "OMR", "TND"];
    if NONE.contains(&code) {
        0
    } else if THREE.contains(&code) {
        3
    } else {
        2
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An RFC 3339 date and time (as a timestamp serialises), in UTC:
/// `Sat 14 Mar 2026, 18:00 UTC`.
pub fn datetime(value: &str) -> Result<String, Error> {
    let at = DateTime::parse_from_rfc3339(value).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("datetime: `{value}` is not an RFC 3339 date and time ({e})"),
        )
    })?;
    Ok(at
        .with_timezone(&Utc)
        .format("%a %-d %b %Y, %H:%M UTC")
        .to_string())
}

/// A calendar day (`2026-03-14`, as a date serialises): `Saturday 14 March 2026`.
pub fn date(value: &str) -> Result<String, Error> {
    let day = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("date: `{value}` is not a date such as 2026-03-14 ({e})"),
        )
    })?;
    Ok(long_date(day))
}

/// `Saturday 14 March 2026`.
pub fn long_date(day: NaiveDate) -> String {
    day.format("%A %-d %B %Y").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_in_major_units_with_the_currency_code() {
        assert_eq!(money(1250, "eur"), "12.50 EUR");
        assert_eq!(money(5, "usd"), "0.05 USD");
        assert_eq!(money(0, "gbp"), "0.00 GBP");
        assert_eq!(money(123_456_789, "eur"), "1,234,567.89 EUR");
        assert_eq!(money(-1250, "eur"), "-12.50 EUR");
        assert_eq!(money(-5, "eur"), "-0.05 EUR");
        assert_eq!(money(5000, "jpy"), "5,000 JPY");
        assert_eq!(money(12_345, "kwd"), "12.345 KWD");
    }

    #[test]
    fn dates_read_as_words_and_times_in_utc() {
        assert_eq!(
            datetime("2026-03-14T19:30:00+01:00").unwrap(),
            "Sat 14 Mar 2026, 18:30 UTC"
        );
        assert_eq!(date("2026-03-14").unwrap(), "Saturday 14 March 2026");
        assert!(datetime("tomorrow").is_err());
        assert!(date("14/03/2026").is_err());
    }
}
