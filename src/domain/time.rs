//! Instants as the service stores and shows them: microseconds since the Unix epoch in the
//! database (a portable, sortable BIGINT), RFC 3339 UTC strings on the wire.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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

    /// RFC 3339 in UTC with whole seconds, e.g. `2026-11-23T10:00:00Z`; empty outside the
    /// years 0 to 9999, which RFC 3339 cannot write.
    ///
    /// Written by hand rather than through `time`'s formatter, which costs ten times as much:
    /// every answer that shows an account writes four of these.
    pub fn to_rfc3339(self) -> String {
        ascii(&self.rfc3339_text()).to_owned()
    }

    /// [`Self::to_rfc3339`]'s twenty ASCII bytes, with no allocation; `None` outside the
    /// years 0 to 9999.
    pub fn rfc3339_text(self) -> Option<[u8; 20]> {
        let secs = self.as_secs();
        let (year, month, day) = civil_date(secs.div_euclid(86_400));
        let year = u16::try_from(year).ok().filter(|year| *year <= 9999)?;
        let of_day = secs.rem_euclid(86_400);
        let mut text = [0_u8; 20];
        let [y1, y2] = [year / 100, year % 100].map(|part| two_digits(i64::from(part)));
        for (slot, bytes) in [0, 2, 5, 8, 11, 14, 17].into_iter().zip([
            y1,
            y2,
            two_digits(month),
            two_digits(day),
            two_digits(of_day / 3600),
            two_digits(of_day / 60 % 60),
            two_digits(of_day % 60),
        ]) {
            text[slot..slot + 2].copy_from_slice(&bytes);
        }
        for (slot, byte) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'Z')] {
            text[slot] = byte;
        }
        Some(text)
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

/// The proleptic Gregorian date (year, month, day) of a day counted from 1970-01-01: Howard
/// Hinnant's `civil_from_days`, in whole-number arithmetic.
fn civil_date(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // from 0000-03-01, so that a leap day ends the year
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// [`Timestamp::rfc3339_text`]'s bytes as text; empty for `None`.
fn ascii(text: &Option<[u8; 20]>) -> &str {
    text.as_ref().and_then(|text| std::str::from_utf8(text).ok()).unwrap_or_default()
}

/// `value` (0 to 99) as two ASCII digits.
fn two_digits(value: i64) -> [u8; 2] {
    let value = u8::try_from(value.rem_euclid(100)).unwrap_or(0);
    [b'0' + value / 10, b'0' + value % 10]
}

/// Written as its RFC 3339 string (see [`Timestamp::to_rfc3339`]), without allocating.
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(ascii(&self.rfc3339_text()))
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

    /// The hand-written formatter agrees with `time`'s over leap days, century years, the
    /// epoch, instants before it and the edges of the years RFC 3339 can write.
    #[test]
    fn formats_as_the_time_crate_does() {
        let by_time = |secs: i64| {
            OffsetDateTime::from_unix_timestamp(secs).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
        };
        let mut instants = vec![
            0,
            -1,
            951_782_400,     // 2000-02-29
            4_107_456_000,   // 2100-02-28
            -62_167_219_200, // 0000-01-01T00:00:00
            -62_167_219_201, // the second before: year -1
            253_402_300_799, // 9999-12-31T23:59:59
            253_402_300_800, // 10000-01-01
        ];
        // Every 997,003 seconds (about 11.5 days, coprime to a day) from year 0 to 9999.
        instants.extend((-62_167_219_200_i64..253_402_300_800).step_by(997_003));
        for secs in instants {
            assert_eq!(Timestamp::from_micros(secs * 1_000_000).to_rfc3339(), by_time(secs), "{secs}");
        }
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
