//! Per-client rate limits, shared by every node: the counters live in the database (one
//! atomic statement per request) or in Redis when it is configured.
//!
//! A node remembers, for a bounded number of buckets, until when the shared counter refused
//! them, and refuses those locally until then: a flood from one client costs the database one
//! statement per period, not one per request, and no admission is given that the shared
//! counter would not give. When the counters cannot be reached the request is admitted (fail
//! open) with a metric and a warning at most every few seconds: a limiter outage must not
//! become an outage of sign-in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::AbuseStats;
use super::redis_counters::RedisCounters;
use crate::domain::limits::{LimitedRoute, RouteLimits, client_network};
use crate::domain::time::retry_after_secs;
use crate::service::background::Background;
use crate::storage::rate_limits::{self, Rate, Verdict};
use crate::storage::{Store, StoreError};

/// How long a request waits for the counters before it is admitted unchecked.
const COUNTER_TIMEOUT: Duration = Duration::from_millis(500);
/// Counter updates running at once at most; beyond, requests wait for one to end (within
/// [`COUNTER_TIMEOUT`]), so an overloaded database still slows a flood down.
const MAX_TAKES_IN_FLIGHT: usize = 256;
/// How long a counter update may run, after its request has stopped waiting for it.
const TAKE_DEADLINE: Duration = Duration::from_secs(5);
/// Buckets a node remembers as refused; beyond it, refusals are asked of the counters again.
const MAX_REMEMBERED: usize = 10_000;
/// Least time between two warnings that the counters cannot be reached.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// The window limits are counted in.
const MINUTE: Duration = Duration::from_secs(60);

/// What the limiter says to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Refused; try again after this many seconds.
    Limited {
        retry_after_secs: u64,
    },
}

/// Where the shared counters live.
#[derive(Clone)]
pub enum Counters {
    Database(Store),
    Redis(RedisCounters),
}

impl Counters {
    async fn take(&self, bucket: &str, rate: Rate) -> Result<Verdict, CounterError> {
        match self {
            Self::Database(store) => Ok(store.write(async |conn| rate_limits::take(conn, bucket, rate).await).await?),
            Self::Redis(redis) => Ok(redis.take(bucket, rate).await?),
        }
    }
}

/// Why the counters could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error(transparent)]
    Database(#[from] StoreError),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
}

/// The per-client rate limiter of the limited routes.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    counters: Counters,
    /// Permits for counter updates, which run as tasks of their own (see [`RateLimiter::admit`]).
    takes: Arc<Semaphore>,
    limits: RouteLimits,
    refused: Mutex<HashMap<String, Instant>>,
    last_warning: Mutex<Option<Instant>>,
    stats: AbuseStats,
    /// Where counter updates run (and so where the Redis connection lives).
    background: Background,
}

impl RateLimiter {
    pub fn new(counters: Counters, limits: RouteLimits, stats: AbuseStats) -> Self {
        let takes = Arc::new(Semaphore::new(MAX_TAKES_IN_FLIGHT));
        let inner = Inner {
            counters,
            takes,
            limits,
            refused: Mutex::default(),
            last_warning: Mutex::default(),
            stats,
            background: Background::current(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Whether a request to `route` from `client` may go on.
    pub async fn admit(&self, route: LimitedRoute, client: IpAddr) -> Admission {
        let per_minute = self.inner.limits.per_minute(route);
        if per_minute == 0 {
            return Admission::Admitted;
        }
        let bucket = format!("{}:{}", route.name(), client_network(client));
        if let Some(wait) = self.remembered(&bucket) {
            return limited(wait);
        }
        let rate = Rate::per(per_minute, MINUTE);
        match tokio::time::timeout(COUNTER_TIMEOUT, self.charge(bucket, rate)).await {
            Ok(Ok(Verdict::Admitted)) => Admission::Admitted,
            Ok(Ok(Verdict::Refused(wait))) => limited(wait),
            Ok(Err(reason)) => self.fail_open(&reason),
            Err(_) => self.fail_open("no answer in time"),
        }
    }

    /// Updates `bucket`'s counter in a task of its own, which goes on when the request stops
    /// waiting: a request admitted unchecked after the timeout (or whose client went away) is
    /// still counted, and a refusal still remembered. Cancelled, the update would be rolled
    /// back (behind a transaction pooler) or never sent.
    async fn charge(&self, bucket: String, rate: Rate) -> Result<Verdict, String> {
        let permit = self.inner.takes.clone().acquire_owned().await.map_err(|closed| closed.to_string())?;
        let limiter = self.clone();
        let take = self.inner.background.spawn(async move {
            let taken = tokio::time::timeout(TAKE_DEADLINE, limiter.inner.counters.take(&bucket, rate)).await;
            drop(permit);
            let verdict = taken.map_err(|_| "the counters did not answer".to_owned())?.map_err(|e| e.to_string())?;
            if let Verdict::Refused(wait) = verdict {
                limiter.remember(bucket, wait);
            }
            Ok(verdict)
        });
        take.await.map_err(|panicked| panicked.to_string())?
    }

    fn remembered(&self, bucket: &str) -> Option<Duration> {
        let refused = self.inner.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = *refused.get(bucket)?;
        until.checked_duration_since(Instant::now()).filter(|wait| !wait.is_zero())
    }

    fn remember(&self, bucket: String, wait: Duration) {
        let now = Instant::now();
        let mut refused = self.inner.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if refused.len() >= MAX_REMEMBERED {
            refused.retain(|_, until| *until > now);
        }
        if refused.len() < MAX_REMEMBERED {
            refused.insert(bucket, now + wait);
        }
    }

    fn fail_open(&self, reason: &str) -> Admission {
        self.inner.stats.limiter_failures.inc();
        let now = Instant::now();
        let mut last = self.inner.last_warning.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|at| now.duration_since(at) >= WARNING_INTERVAL) {
            *last = Some(now);
            tracing::warn!(reason, "rate limiter unreachable: admitting requests unchecked");
        }
        Admission::Admitted
    }
}

fn limited(wait: Duration) -> Admission {
    Admission::Limited { retry_after_secs: retry_after_secs(wait) }
}
