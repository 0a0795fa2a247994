//! Seat arithmetic: the one place that decides how seats are taken and returned.
//!
//! Callers hold the listing's row lock (`SELECT ... FOR UPDATE`) while they apply these
//! results; the database's `CHECK (seats_left BETWEEN 0 AND capacity)` is the last guard.

/// Why seats could not be changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeatError {
    /// Fewer seats are left than were asked for.
    #[error("only {left} seats left")]
    SoldOut {
        /// Seats still free.
        left: i32,
    },
    /// A new capacity below the seats already booked.
    #[error("{booked} seats are already booked")]
    BelowBooked {
        /// Seats held by bookings.
        booked: i32,
    },
}

/// Seats left after taking `quantity`.
pub fn take(seats_left: i32, quantity: i32) -> Result<i32, SeatError> {
    if quantity > seats_left {
        Err(SeatError::SoldOut { left: seats_left })
    } else {
        Ok(seats_left - quantity)
    }
}

/// Seats left after returning `quantity`, never above capacity.
pub fn give_back(seats_left: i32, capacity: i32, quantity: i32) -> i32 {
    (seats_left + quantity).min(capacity)
}

/// Seats left when capacity changes from `old_capacity` to `new_capacity`.
pub fn resize(old_capacity: i32, seats_left: i32, new_capacity: i32) -> Result<i32, SeatError> {
    let booked = old_capacity - seats_left;
    if new_capacity < booked {
        Err(SeatError::BelowBooked { booked })
    } else {
        Ok(new_capacity - booked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taking_more_seats_than_left_is_sold_out() {
        assert_eq!(take(3, 3), Ok(0));
        assert_eq!(take(3, 4), Err(SeatError::SoldOut { left: 3 }));
    }

    #[test]
    fn giving_back_never_exceeds_capacity() {
        assert_eq!(give_back(8, 10, 2), 10);
        assert_eq!(give_back(9, 10, 2), 10);
    }

    #[test]
    fn capacity_cannot_drop_below_booked_seats() {
        assert_eq!(resize(10, 4, 6), Ok(0));
        assert_eq!(resize(10, 4, 12), Ok(6));
        assert_eq!(resize(10, 4, 5), Err(SeatError::BelowBooked { booked: 6 }));
    }
}
