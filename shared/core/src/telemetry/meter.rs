//! Where a process's metrics go: one Prometheus registry per process, with one bucket layout.
//!
//! `orderly-worker` and `orderly-scheduler` install theirs as the `metrics` facade's global
//! recorder ([`install_global`]): each is one process. The API keeps one registry per app,
//! since tests run several apps in one process, and hands it as a [`Meter`] to the shared
//! code that records on its behalf (the provider clients).

use std::sync::Arc;

use anyhow::Context;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Buckets of every `*_duration_seconds` histogram: 1 ms (a cache hit) to 2 min (an SMTP
/// transaction's limit).
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Buckets of `job_queue_wait_seconds`: 5 ms (an idle queue) to an hour (a backlog).
pub const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Buckets of `job_attempts`.
pub const ATTEMPT_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 5.0, 10.0, 20.0];

/// An empty registry with Orderly's histogram buckets (histograms without buckets would
/// render as summaries, which cannot be aggregated across processes).
pub fn prometheus_recorder() -> anyhow::Result<PrometheusRecorder> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), DURATION_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("job_queue_wait_seconds".into()),
                QUEUE_WAIT_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full("job_attempts".into()), ATTEMPT_BUCKETS)
        })
        .context("configuring metric buckets")?
        .build_recorder())
}

/// Installs a new registry as the process's global recorder; returns its handle, which
/// renders it (see [`super::metrics_endpoint`]). Fails if the process already has one.
pub fn install_global() -> anyhow::Result<PrometheusHandle> {
    let recorder = prometheus_recorder()?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| anyhow::anyhow!("this process already has a metrics recorder"))?;
    Ok(handle)
}

/// Where code that records on a process's behalf sends its metrics: the global recorder,
/// or a registry of its own (an API app's).
#[derive(Clone, Default)]
pub struct Meter(Option<Arc<dyn metrics::Recorder + Send + Sync>>);

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Meter(local)"
        } else {
            "Meter(global)"
        })
    }
}

impl Meter {
    /// The `metrics` facade's global recorder (none installed: metrics are discarded).
    pub fn global() -> Self {
        Self(None)
    }

    /// The registry `recorder`.
    pub fn local(recorder: Arc<dyn metrics::Recorder + Send + Sync>) -> Self {
        Self(Some(recorder))
    }

    /// Runs `record`, whose `metrics::` macros then record into this meter's registry.
    /// `record` must not await: a local recorder holds only for the synchronous call.
    pub fn record<T>(&self, record: impl FnOnce() -> T) -> T {
        match &self.0 {
            Some(recorder) => metrics::with_local_recorder(recorder.as_ref(), record),
            None => record(),
        }
    }
}
