//! `retention`: a scheduler tick deletes what is past its keeping, in short batches (the
//! rules are in `orderly_domain::retention`).

use std::time::Duration;

use crate::job_error::JobError;
use orderly_domain::retention;
use orderly_jobs::Retention;

use super::Handler;
use crate::context::JobContext;

/// Rows per delete.
const BATCH: u64 = 2000;
/// How long one run may delete; what is left waits for the next run.
const BUDGET: Duration = Duration::from_secs(240);

impl Handler for Retention {
    async fn run(self, ctx: &JobContext, _request_id: Option<&str>) -> Result<(), JobError> {
        for pruned in retention::prune(&ctx.db, BATCH, BUDGET).await? {
            if pruned.rows > 0 {
                tracing::info!(retention.rule = pruned.rule, rows = pruned.rows, "pruned");
            }
        }
        Ok(())
    }
}
