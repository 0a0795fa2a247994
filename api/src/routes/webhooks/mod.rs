//! Calls from providers, authenticated by their signatures rather than by a user.

pub mod stripe;
