//! Instants as the service stores and shows them: microseconds since the Unix epoch in the
//! database (a portable, sortable BIGINT), RFC 3339 UTC strings on the wire.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `wait` in whole seconds, rounded up and at least 1: what a `Retry-After` says, so that a
/// client that waits as told is not turned away again.
pub fn retry_after_secs(wait: Duration) -> u64 {
    u64::try_from(wait.as_micros().div_ceil(1_000_000).max(1)).unwrap_or(u64::MAX)
}

/// A point in time, UTC, with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self(micros)
    }

    /// Rebuilds a timestamp read from storage.
    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the epoch, as stored.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch, as JWT claims want them.
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// This instant moved forward by `duration` (saturating).
    pub fn plus(self, duration: Duration) -> Self {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(micros))
    }

    /// This instant moved back by `duration` (saturating).
    pub fn minus(self, duration: Duration) -> Self {
        let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(micros))
    }

    /// RFC 3339 in UTC with whole seconds, e.g. `2026-11-23T10:00:00Z`.
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp(self.as_secs())
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }

    /// RFC 3339 in UTC to the microsecond (fractional digits only when there are any), e.g.
    /// `2026-11-23T10:00:00.25Z`: what an export writes, so that nothing is lost.
    pub fn to_rfc3339_exact(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default()
    }

    /// Parses an RFC 3339 string (any offset) into a timestamp.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
        let micros = parsed.unix_timestamp_nanos() / 1_000;
        i64::try_from(micros).ok().map(Self)
    }
}

/// An RFC 3339 string, as a query parameter or a field gives it.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse_rfc3339(&text).ok_or_else(|| D::Error::custom("expected an RFC 3339 instant"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc() {
        let t = Timestamp::from_micros(1_795_428_000_123_456);
        assert_eq!(t.to_rfc3339(), "2026-11-23T10:00:00Z");
    }

    #[test]
    fn parses_offsets_into_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-23T11:00:00+01:00");
        assert_eq!(t.map(Timestamp::to_rfc3339).as_deref(), Some("2026-11-23T10:00:00Z"));
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn plus_adds_durations() {
        let t = Timestamp::from_micros(0).plus(Duration::from_secs(90));
        assert_eq!(t.as_secs(), 90);
        assert_eq!(t.minus(Duration::from_secs(30)).as_secs(), 60);
    }
}
