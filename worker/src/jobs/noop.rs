//! `noop`: does nothing; a queue health probe and the benchmark's unit of work.

use orderly_shared::jobs::{JobError, Noop};

pub async fn run(_job: Noop) -> Result<(), JobError> {
    Ok(())
}
