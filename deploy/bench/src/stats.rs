//! Percentiles of latency samples.

use std::time::Duration;

/// p50 and p99 in milliseconds of `samples` (sorted in place).
pub fn percentiles_ms(samples: &mut [Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}
