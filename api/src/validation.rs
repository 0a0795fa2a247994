//! Field rules shared by several request bodies.

use std::sync::LazyLock;

use validator::{ValidateEmail, ValidationError};

use crate::auth::password::MIN_PASSWORD_CHARS;

/// E.164: `+`, then 2 to 15 digits, no leading zero.
pub static E164: LazyLock<regex::Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern, checked by the tests below
    regex::Regex::new(r"^\+[1-9][0-9]{1,14}$").unwrap()
});

/// A lower-case ISO 4217 code, as Stripe writes it.
pub static CURRENCY: LazyLock<regex::Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern, checked by the tests below
    regex::Regex::new(r"^[a-z]{3}$").unwrap()
});

/// An e-mail address, ignoring surrounding blanks (it is stored trimmed and lower-cased).
pub fn email_address(email: &str) -> Result<(), ValidationError> {
    let email = email.trim();
    if email.len() > 254 || !email.validate_email() {
        return Err(
            ValidationError::new("email").with_message("is not a valid e-mail address".into())
        );
    }
    Ok(())
}

/// A title: 1 to 200 characters once surrounding blanks are trimmed.
pub fn valid_title(title: &str) -> Result<(), ValidationError> {
    trimmed_length(title, 200, "title")
}

/// A display name: 1 to 100 characters once surrounding blanks are trimmed (it is stored
/// trimmed).
pub fn valid_name(name: &str) -> Result<(), ValidationError> {
    trimmed_length(name, 100, "name")
}

fn trimmed_length(text: &str, max: usize, code: &'static str) -> Result<(), ValidationError> {
    let length = text.trim().chars().count();
    if !(1..=max).contains(&length) {
        return Err(ValidationError::new(code)
            .with_message(format!("must be 1 to {max} characters (blanks aside)").into()));
    }
    Ok(())
}

/// Passwords: at least 10 characters, at most 1024 bytes (hashing cost).
pub fn password_length(password: &str) -> Result<(), ValidationError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ValidationError::new("password_too_short")
            .with_message(format!("must be at least {MIN_PASSWORD_CHARS} characters").into()));
    }
    if password.len() > 1024 {
        return Err(ValidationError::new("password_too_long")
            .with_message("must be at most 1024 bytes".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_accept_and_refuse_what_they_should() {
        assert!(E164.is_match("+4915112345678"));
        assert!(!E164.is_match("015112345678"));
        assert!(!E164.is_match("+0123"));
        assert!(CURRENCY.is_match("eur"));
        assert!(!CURRENCY.is_match("EUR"));
        assert!(password_length("short").is_err());
        assert!(password_length("long enough pw").is_ok());
    }
}
