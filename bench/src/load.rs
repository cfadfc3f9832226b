//! The load driver: `concurrency` tasks, each sending one request after another for a fixed
//! time after a warm-up, recording latency in an HDR histogram and errors by status.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// How long and how hard to drive.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    pub requests: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Answers other than the expected status, by status (0: a transport error).
    pub errors: BTreeMap<u16, u64>,
}

impl Measured {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Errors other than answers with `status` (a `429` from a limiter doing its job, say).
    pub fn error_count_except(&self, status: u16) -> u64 {
        self.errors.iter().filter(|(s, _)| **s != status).map(|(_, n)| n).sum()
    }
}

/// One request of a scenario: answers the status it got. `worker` is the task's index.
pub trait Request: Send + Sync + 'static {
    fn send(&self, worker: usize, client: &reqwest::Client) -> impl Future<Output = u16> + Send;
    /// The status a successful request answers.
    fn expected(&self) -> u16 {
        200
    }
}

/// Drives `request` under `load`; every worker shares one HTTP client (one connection each).
pub async fn drive<R: Request>(client: &reqwest::Client, request: Arc<R>, load: Load) -> Measured {
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let workers: Vec<_> = (0..load.concurrency)
        .map(|worker| {
            let (client, request) = (client.clone(), request.clone());
            tokio::spawn(async move {
                let mut histogram = new_histogram();
                let mut errors = BTreeMap::new();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let status = request.send(worker, &client).await;
                    if sent >= measure_from {
                        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                        histogram.saturating_record(micros.max(1));
                        if status != request.expected() {
                            *errors.entry(status).or_insert(0) += 1;
                        }
                    }
                }
                (histogram, errors)
            })
        })
        .collect();
    let mut histogram = new_histogram();
    let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
    for worker in workers {
        if let Ok((h, e)) = worker.await {
            histogram.add(&h).ok();
            for (status, n) in e {
                *errors.entry(status).or_insert(0) += n;
            }
        }
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Measured {
        requests: histogram.len(),
        per_second: histogram.len() as f64 / load.duration.as_secs_f64(),
        p50_ms: ms(0.50),
        p90_ms: ms(0.90),
        p99_ms: ms(0.99),
        max_ms: histogram.max() as f64 / 1000.0,
        errors,
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("1 µs to 60 s at 3 figures are valid bounds")
}

/// The status of a response, or 0 for a transport error. The body is read to the end so the
/// connection goes back to the pool.
pub async fn status_of(result: reqwest::Result<reqwest::Response>) -> u16 {
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}
