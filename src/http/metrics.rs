//! Prometheus metrics: requests by route and status, latency by route, and the password
//! hashing pool's queue. Every label comes from a closed set: routes by their matched pattern
//! (`/v1/users/{ref}`), never the raw path, and methods by name only when they are standard.

use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::error::ProblemCode;
use crate::mail::delivery::MailStats;
use crate::service::abuse::AbuseStats;
use crate::service::hashing::PasswordHasher;
use crate::service::transfers::LedgerStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Route,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: Route,
}

/// A route label: the matched template, shared with the router (cloning it counts a
/// reference; it allocates nothing), or `unmatched`.
#[derive(Clone, Debug)]
pub struct Route(Option<MatchedPath>);

impl Route {
    pub fn of(request: &Request) -> Self {
        Self(request.extensions().get::<MatchedPath>().cloned())
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The registry and the handles the middleware updates.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    throttled: Family<ReasonLabels, Counter>,
    hash_waiting: Gauge,
    hash_busy: Gauge,
    hash_capacity: Gauge,
    /// Connections being served, for the serving loop to keep.
    pub connections: Gauge,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 8 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Metrics {
    pub fn new(mail: &MailStats, ledger: &LedgerStats, abuse: &AbuseStats) -> Arc<Self> {
        let mut registry = Registry::with_prefix("tessera");
        registry.register(
            "mail_queued",
            "Mails in the outbox, not yet accepted by the SMTP server",
            mail.queued.clone(),
        );
        registry.register("mail_sent", "Mails the SMTP server accepted", mail.sent.clone());
        registry.register("mail_failed", "Attempts to send a mail that failed", mail.failed.clone());
        registry.register("mail_retries", "Attempts to send a mail that had failed before", mail.retries.clone());
        registry.register("mail_expired", "Mails dropped unsent because their link had expired", mail.expired.clone());
        registry.register(
            "mail_dead_lettered",
            "Mails set aside after failing for too long",
            mail.dead_lettered.clone(),
        );
        registry.register("mail_dead_letters", "Dead letters waiting for an operator", mail.dead_letters.clone());
        registry.register(
            "ledger_retries",
            "Money-moving transactions run again after the database broke a conflict",
            ledger.retries.clone(),
        );
        registry.register(
            "rate_limiter_failures",
            "Requests admitted unchecked because the rate limiter's counters could not be reached",
            abuse.limiter_failures.clone(),
        );
        registry.register(
            "mail_over_address_limit",
            "Verification and reset mails dropped unsent because their address had its hour's worth",
            abuse.mails_over_address_limit.clone(),
        );
        registry.register(
            "mail_requests_dropped",
            "Forgot-password and resend requests dropped because too many were in progress",
            abuse.mail_requests_dropped.clone(),
        );
        let throttled = Family::<ReasonLabels, Counter>::default();
        registry.register("throttled", "Requests answered 429, by reason", throttled.clone());
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let hash_waiting = Gauge::default();
        let hash_busy = Gauge::default();
        let hash_capacity = Gauge::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer HTTP requests", latency.clone());
        registry.register("hash_pool_waiting", "Password hashing calls waiting for the pool", hash_waiting.clone());
        registry.register("hash_pool_busy", "Password hashing calls running", hash_busy.clone());
        registry.register("hash_pool_capacity", "Password hashing calls that may run at once", hash_capacity.clone());
        let connections = Gauge::default();
        registry.register("http_connections", "HTTP connections being served", connections.clone());
        Arc::new(Self { registry, requests, latency, throttled, hash_waiting, hash_busy, hash_capacity, connections })
    }

    /// The text exposition, with the pool gauges read now.
    pub fn render(&self, hasher: &PasswordHasher) -> String {
        self.hash_waiting.set(gauge_value(hasher.waiting()));
        self.hash_busy.set(gauge_value(hasher.busy()));
        self.hash_capacity.set(gauge_value(hasher.concurrency()));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            tracing::warn!("could not encode metrics");
        }
        text
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A request's method as a label: one of the standard methods, else `other`, so that made-up
/// methods (any token a client sends) cannot add series.
pub fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::TRACE, "TRACE"),
        (Method::CONNECT, "CONNECT"),
    ];
    KNOWN.iter().find(|(known, _)| known == method).map_or("other", |(_, name)| name)
}

impl Metrics {
    /// Counts and times one answered request, labelled from closed sets: the method by
    /// [`method_label`], the route by its matched template. A `429` is also counted by its
    /// problem code.
    pub fn record(&self, method: &'static str, route: Route, response: &Response, elapsed: Duration) {
        let status = response.status().as_u16();
        let labels = RouteLabels { method, route };
        self.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&RequestLabels { method, route: labels.route, status }).inc();
        if status == 429 {
            // The reason is a problem code: a closed set.
            let reason = response.extensions().get::<ProblemCode>().map_or("other", |code| code.0);
            self.throttled.get_or_create(&ReasonLabels { reason }).inc();
        }
    }
}
