//! Rate-limit buckets in the database, shared by every node: one atomic statement per request.
//!
//! Each bucket is a GCRA ("generic cell rate algorithm", a token bucket kept as one instant):
//! `tat`, the theoretical arrival time, moves on by `period` per admitted request, and a request
//! is admitted while `tat` stays within `capacity` of now. So `capacity / period` requests may
//! come at once, then one per `period`. The instant is the database's clock, so nodes whose
//! clocks disagree still share one bucket exactly.

use std::time::Duration;

use sqlx::{AnyConnection, Row as _};

use super::error::StoreError;
use super::sql::{Backend, delete_older_than};

/// A bucket's shape, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Time one request uses up.
    pub period_ms: i64,
    /// How far ahead of now the bucket may run: `capacity / period` requests at once.
    pub capacity_ms: i64,
}

impl Rate {
    /// `count` requests per `window`, all of which may come at once.
    pub fn per(count: u32, window: Duration) -> Self {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
        let period_ms = (window_ms / i64::from(count.max(1))).max(1);
        Self { period_ms, capacity_ms: period_ms * i64::from(count.max(1)) }
    }
}

/// What a bucket said to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admitted,
    /// Not admitted; one would be after this long.
    Refused(Duration),
}

impl Verdict {
    /// The verdict of a bucket that answered how long to wait (0 or less: admitted).
    pub fn from_wait(wait_ms: i64) -> Self {
        if wait_ms <= 0 { Self::Admitted } else { Self::Refused(Duration::from_millis(wait_ms.unsigned_abs())) }
    }
}

/// The database's clock in milliseconds since the epoch.
const NOW_POSTGRES: &str = "CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)";
const NOW_SQLITE: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
const NOW_MYSQL: &str = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)";

/// Takes one request's worth from `bucket`, creating it full when new. Atomic on every backend:
/// the row is written in the one statement that decides, under its row lock.
pub async fn take(conn: &mut AnyConnection, bucket: &str, rate: Rate) -> Result<Verdict, StoreError> {
    let wait_ms: i64 = match Backend::of(conn) {
        Backend::Postgres => returning_wait(conn, &upsert(NOW_POSTGRES, "GREATEST", "$"), bucket, rate).await?,
        Backend::Sqlite => returning_wait(conn, &upsert(NOW_SQLITE, "MAX", "?"), bucket, rate).await?,
        Backend::MySql => {
            // No RETURNING: the verdict travels as the statement's LAST_INSERT_ID, which stays
            // 0 when the row is new. Assignments run left to right, so `tat` sees the verdict.
            let text = format!(
                "INSERT INTO rate_limits (bucket, tat, wait_ms) VALUES (?, {NOW_MYSQL} + ?, 0) \
                 ON DUPLICATE KEY UPDATE \
                 wait_ms = LAST_INSERT_ID(CASE WHEN GREATEST(tat, {NOW_MYSQL}) + ? - {NOW_MYSQL} <= ? THEN 0 \
                   ELSE GREATEST(tat, {NOW_MYSQL}) + ? - ? - {NOW_MYSQL} END), \
                 tat = CASE WHEN wait_ms = 0 THEN GREATEST(tat, {NOW_MYSQL}) + ? ELSE tat END"
            );
            let result = sqlx::query(&text)
                .bind(bucket.to_owned())
                .bind(rate.period_ms)
                .bind(rate.period_ms)
                .bind(rate.capacity_ms)
                .bind(rate.period_ms)
                .bind(rate.capacity_ms)
                .bind(rate.period_ms)
                .execute(&mut *conn)
                .await?;
            result.last_insert_id().unwrap_or(0)
        }
    };
    Ok(Verdict::from_wait(wait_ms))
}

/// The upsert for backends with `RETURNING` and numbered parameters (`$n` or `?n`):
/// 1 the bucket, 2 the period, 3 the capacity.
fn upsert(now: &str, greatest: &str, mark: &str) -> String {
    let (bucket, period, capacity) = (format!("{mark}1"), format!("{mark}2"), format!("{mark}3"));
    let next = format!("{greatest}(rate_limits.tat, {now}) + {period}");
    format!(
        "INSERT INTO rate_limits (bucket, tat, wait_ms) VALUES ({bucket}, {now} + {period}, 0) \
         ON CONFLICT (bucket) DO UPDATE SET \
         wait_ms = CASE WHEN {next} - {now} <= {capacity} THEN 0 ELSE {next} - {capacity} - {now} END, \
         tat = CASE WHEN {next} - {now} <= {capacity} THEN {next} ELSE rate_limits.tat END \
         RETURNING wait_ms"
    )
}

async fn returning_wait(conn: &mut AnyConnection, text: &str, bucket: &str, rate: Rate) -> Result<i64, StoreError> {
    let row = sqlx::query(text)
        .bind(bucket.to_owned())
        .bind(rate.period_ms)
        .bind(rate.capacity_ms)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get(0)?)
}

/// Deletes up to `limit` buckets that have been full since `before_ms` (the database's clock):
/// a missing bucket is a full one.
pub async fn delete_full(conn: &mut AnyConnection, before_ms: i64, limit: i64) -> Result<u64, StoreError> {
    Ok(delete_older_than(conn, "rate_limits", "bucket", "tat", before_ms, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirty_a_minute_is_one_every_two_seconds_thirty_at_once() {
        assert_eq!(Rate::per(30, Duration::from_secs(60)), Rate { period_ms: 2000, capacity_ms: 60_000 });
        assert_eq!(Rate::per(5, Duration::from_secs(3600)), Rate { period_ms: 720_000, capacity_ms: 3_600_000 });
    }

    #[test]
    fn a_positive_wait_is_a_refusal() {
        assert_eq!(Verdict::from_wait(0), Verdict::Admitted);
        assert_eq!(Verdict::from_wait(1500), Verdict::Refused(Duration::from_millis(1500)));
    }
}
