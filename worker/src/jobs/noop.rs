//! `noop`: does nothing; a queue health probe and the benchmark's unit of work.

use crate::job_error::JobError;
use orderly_jobs::Noop;

use super::Handler;
use crate::context::JobContext;

impl Handler for Noop {
    async fn run(self, _ctx: &JobContext, _request_id: Option<&str>) -> Result<(), JobError> {
        Ok(())
    }
}
