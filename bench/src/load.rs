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
    figures_of(&histogram, errors, load.duration)
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

/// An open-loop load: requests sent at a fixed rate whatever the answers do, each timed from
/// when it was due, not from when it went out, so a stall shows up in every request it
/// delayed (no coordinated omission).
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    pub per_second: f64,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Requests of several kinds, told apart in the figures.
pub trait Mixed: Send + Sync + 'static {
    /// The kinds, by name; `send` answers an index into them.
    fn kinds(&self) -> &'static [&'static str];
    /// Sends request number `n`; answers its kind and whether it got the status it expected.
    fn send(&self, n: usize, client: &reqwest::Client) -> impl Future<Output = (usize, bool)> + Send;
}

/// Most requests in flight at once; beyond that a due request is counted as an error (the
/// server is not keeping up, and waiting would turn the load closed-loop again).
const MAX_IN_FLIGHT: usize = 20_000;

/// Drives `mixed` at `rate`: answers the figures of each kind, by name.
pub async fn drive_at_rate<M: Mixed>(client: &reqwest::Client, mixed: Arc<M>, rate: Rate) -> Vec<(String, Measured)> {
    let kinds = mixed.kinds();
    let start = tokio::time::Instant::now();
    let measure_from = start + rate.warmup;
    let end = measure_from + rate.duration;
    let interval = Duration::from_secs_f64(1.0 / rate.per_second.max(0.001));
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<(usize, bool, u64, bool)>();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut n = 0_usize;
    let mut dropped = 0_u64;
    loop {
        let due = start + interval.mul_f64(n as f64);
        if due >= end {
            break;
        }
        tokio::time::sleep_until(due).await;
        let measured = due >= measure_from;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            dropped += u64::from(measured);
            n += 1;
            continue;
        };
        let (client, mixed, sender) = (client.clone(), mixed.clone(), sender.clone());
        tokio::spawn(async move {
            let (kind, ok) = mixed.send(n, &client).await;
            let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
            sender.send((kind, ok, micros, measured)).ok();
            drop(permit);
        });
        n += 1;
    }
    drop(sender);
    let mut histograms: Vec<(Histogram<u64>, u64)> = kinds.iter().map(|_| (new_histogram(), 0)).collect();
    while let Some((kind, ok, micros, measured)) = receiver.recv().await {
        if let (true, Some((histogram, errors))) = (measured, histograms.get_mut(kind)) {
            histogram.saturating_record(micros.max(1));
            *errors += u64::from(!ok);
        }
    }
    let mut figures: Vec<(String, Measured)> = kinds
        .iter()
        .zip(histograms)
        .map(|(name, (histogram, errors))| {
            let errors = if errors > 0 { BTreeMap::from([(500, errors)]) } else { BTreeMap::new() };
            ((*name).to_owned(), figures_of(&histogram, errors, rate.duration))
        })
        .collect();
    if dropped > 0 {
        figures.push(("(not sent: too many in flight)".to_owned(), dropped_figures(dropped, rate.duration)));
    }
    figures
}

fn figures_of(histogram: &Histogram<u64>, errors: BTreeMap<u16, u64>, duration: Duration) -> Measured {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Measured {
        requests: histogram.len(),
        per_second: histogram.len() as f64 / duration.as_secs_f64(),
        p50_ms: ms(0.50),
        p90_ms: ms(0.90),
        p99_ms: ms(0.99),
        max_ms: histogram.max() as f64 / 1000.0,
        errors,
    }
}

fn dropped_figures(dropped: u64, duration: Duration) -> Measured {
    Measured {
        requests: 0,
        per_second: dropped as f64 / duration.as_secs_f64(),
        p50_ms: 0.0,
        p90_ms: 0.0,
        p99_ms: 0.0,
        max_ms: 0.0,
        errors: BTreeMap::from([(0, dropped)]),
    }
}
