//! Domain rules shared by the API and the workers.

pub mod seats;
