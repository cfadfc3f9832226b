//! Abuse protection: per-client rate limits shared by every node ([`limiter`]), sign-in lockout
//! ([`lockout`]), and the counters operators watch.

pub mod limiter;
pub mod lockout;
pub mod redis_counters;

use prometheus_client::metrics::counter::Counter;

/// What abuse protection counts, for the metrics.
#[derive(Debug, Clone, Default)]
pub struct AbuseStats {
    /// Requests admitted unchecked because the limiter's counters could not be reached.
    pub limiter_failures: Counter,
    /// Verification and reset mails not sent because their address had its hour's worth.
    pub mails_over_address_limit: Counter,
    /// Forgot-password and resend requests dropped because their queue was full.
    pub mail_requests_dropped: Counter,
}
