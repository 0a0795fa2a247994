//! How a job attempt failed, and the one place where the domain's and the providers' errors
//! become job outcomes. Each variant is mapped once, with no catch-all, so a new domain
//! error does not compile until it is classified (see `docs/errors.md`).

use orderly_domain::bookings::BookingError;
use orderly_domain::payments::PaymentError;
use orderly_domain::reports::ReportError;
use orderly_providers::ProviderError;

/// How a job attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Retrying cannot help: the job goes straight to dead, keeping this error (and its
    /// chain).
    #[error("permanent failure: {0:#}")]
    Permanent(anyhow::Error),
    /// May work later: retried with backoff until its attempts run out.
    #[error("transient failure: {0:#}")]
    Transient(anyhow::Error),
}

impl From<sea_orm::DbErr> for JobError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Transient(anyhow::Error::new(e).context("database"))
    }
}

impl From<ProviderError> for JobError {
    fn from(e: ProviderError) -> Self {
        match e {
            // The detail, not the class: the job's outcome says the class.
            ProviderError::Permanent(m) => Self::Permanent(m.into()),
            ProviderError::Transient(m) => Self::Transient(m.into()),
            // The domain reads the object after such an answer; one that reaches the job
            // layer is a state no retry changes.
            ProviderError::State(m) => Self::Permanent(m.into()),
        }
    }
}

impl From<BookingError> for JobError {
    fn from(e: BookingError) -> Self {
        match e {
            BookingError::Db(db) => db.into(),
            BookingError::Payment(provider) => provider.into(),
            // The job's booking or listing is gone or in a state the job cannot move: no
            // retry changes that.
            BookingError::ListingNotFound
            | BookingError::ListingUnavailable(_)
            | BookingError::SoldOut(_)
            | BookingError::NotFound
            | BookingError::WrongStatus(_)
            | BookingError::CancellationClosed
            | BookingError::TooManyHolds(_)
            | BookingError::DuplicateKey => Self::Permanent(e.into()),
        }
    }
}

impl From<PaymentError> for JobError {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::Booking(booking) => booking.into(),
            PaymentError::Provider(provider) => provider.into(),
            PaymentError::Db(db) => db.into(),
            // The same record, or the same event, fails the same way until someone acts.
            PaymentError::Inconsistent(_) | PaymentError::Unreadable(_) => {
                Self::Permanent(e.into())
            }
        }
    }
}

impl From<ReportError> for JobError {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Db(db) => db.into(),
            // The same day, or the same stored report, fails the same way every time.
            ReportError::BadDay(_)
            | ReportError::Unwritable(_)
            | ReportError::Unreadable { .. } => Self::Permanent(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_and_unreachable_providers_are_retried_refusals_are_not() {
        let db = sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal("down".into()));
        assert!(matches!(JobError::from(db), JobError::Transient(_)));
        let unreachable = PaymentError::Provider(ProviderError::Transient("503".into()));
        assert!(matches!(
            JobError::from(unreachable),
            JobError::Transient(_)
        ));
        let declined = PaymentError::Provider(ProviderError::Permanent("card_declined".into()));
        assert!(
            matches!(JobError::from(declined), JobError::Permanent(m) if m.to_string() == "card_declined")
        );
        let gone = PaymentError::Booking(BookingError::NotFound);
        assert!(matches!(JobError::from(gone), JobError::Permanent(_)));
        let broken = PaymentError::Inconsistent("a captured payment without a provider id");
        assert!(
            matches!(JobError::from(broken), JobError::Permanent(m) if m.to_string().contains("provider id"))
        );
    }
}
