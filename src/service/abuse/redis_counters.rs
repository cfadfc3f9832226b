//! The rate limiter's counters in Redis: the same GCRA as the database's
//! ([`crate::storage::rate_limits`]), as one Lua script on Redis's own clock, each bucket
//! expiring once it is full again.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::storage::rate_limits::{Rate, Verdict};

/// Keys are `tessera:rate:{bucket}`.
const KEY_PREFIX: &str = "tessera:rate:";
/// How long to wait for Redis to connect or answer.
const TIMEOUT: Duration = Duration::from_millis(250);

/// KEYS[1] the bucket; ARGV[1] the period, ARGV[2] the capacity (ms). Answers the wait in ms,
/// 0 when admitted.
const TAKE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local period = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
local next = math.max(tat, now) + period
if next - now <= capacity then
  redis.call('SET', KEYS[1], next, 'PX', next - now)
  return 0
end
return next - capacity - now
";

/// A connection to Redis, re-established in the background after a failure.
#[derive(Clone)]
pub struct RedisCounters {
    connection: ConnectionManager,
    script: redis::Script,
}

impl RedisCounters {
    /// Connects lazily: a Redis that is down at start only means limits fail open until it is up.
    pub fn new(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self { connection, script: redis::Script::new(TAKE) })
    }

    pub async fn take(&self, bucket: &str, rate: Rate) -> redis::RedisResult<Verdict> {
        let mut connection = self.connection.clone();
        let wait_ms: i64 = self
            .script
            .key(format!("{KEY_PREFIX}{bucket}"))
            .arg(rate.period_ms)
            .arg(rate.capacity_ms)
            .invoke_async(&mut connection)
            .await?;
        Ok(Verdict::from_wait(wait_ms))
    }
}
