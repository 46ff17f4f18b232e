//! Counters shared by every instance, in Redis. One request is ONE round trip: a Lua GCRA
//! script (sent as EVALSHA, loaded on NOSCRIPT) checks every rule's key and charges them all
//! or none, using Redis' own clock so instances with skewed clocks agree. The connection is a
//! `ConnectionManager`, which reconnects by itself; each call has a short budget, and after
//! a failure Redis is left alone for `retry` so an outage costs requests nothing.

use std::time::Duration;

use super::{Limit, Outcome};
use crate::sharing::{SharedCallError, SharedRedis};

/// GCRA over several keys. ARGV holds (emission interval us, burst tolerance us, cost) per
/// key. Returns (allowed, retry_after us, reset us) per key. Nothing is written unless every
/// key allows; TATs are stored as integer microseconds of Redis' clock and expire when they
/// would be indistinguishable from a fresh key.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local tats, out = {}, {}
local refused = false
for i = 1, n do
  local interval = tonumber(ARGV[3 * i - 2])
  local tolerance = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - tolerance
  if allow_at > now then
    refused = true
    out[3 * i - 2], out[3 * i - 1], out[3 * i] = 0, allow_at - now, tat - now
  else
    tats[i] = new_tat
    out[3 * i - 2], out[3 * i - 1], out[3 * i] = 1, 0, new_tat - now
  end
end
for i = 1, n do
  if refused then
    if out[3 * i - 2] == 1 then
      local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
      if tat < now then tat = now end
      out[3 * i] = tat - now
    end
  else
    redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1)
  end
end
if refused then
  for i = 1, n do
    if out[3 * i - 2] == 1 then out[3 * i - 2] = 2 end
  end
end
return out
";

#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    #[error(transparent)]
    Shared(#[from] SharedCallError),
    #[error("unexpected reply from the rate-limit script")]
    Reply,
}

pub struct RedisStore {
    /// After a failure, calls fail at once without touching Redis for `retry`.
    redis: SharedRedis,
    script: redis::Script,
}

/// One key to check: its full Redis name, the limit that applies and the cost.
pub struct SharedCheck<'a> {
    pub key: &'a str,
    pub limit: Limit,
    pub cost: u32,
}

impl RedisStore {
    /// Does not connect: the first call does, and the manager reconnects after failures.
    pub fn new(url: &str, timeout: Duration, retry: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            redis: SharedRedis::new(url, timeout, retry)?,
            script: redis::Script::new(GCRA),
        })
    }

    /// Checks and charges every key in one round trip; all are charged or none.
    pub async fn check(&self, checks: &[SharedCheck<'_>]) -> Result<Vec<Outcome>, RedisStoreError> {
        let mut invocation = self.script.prepare_invoke();
        for check in checks {
            let interval = micros(check.limit.interval());
            invocation
                .key(check.key)
                .arg(interval)
                .arg(interval * u64::from(check.limit.limit))
                .arg(check.cost.clamp(1, check.limit.limit));
        }
        let reply: Vec<i64> = self
            .redis
            .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        if reply.len() != checks.len() * 3 {
            return Err(RedisStoreError::Reply);
        }
        Ok(reply
            .chunks_exact(3)
            .zip(checks)
            .map(|(r, check)| outcome(r[0], r[1], r[2], check.limit))
            .collect())
    }
}

/// `state` is 1 (charged), 2 (would allow, not charged: another key refused) or 0 (refused).
fn outcome(state: i64, retry_us: i64, reset_us: i64, limit: Limit) -> Outcome {
    let reset = Duration::from_micros(u64::try_from(reset_us).unwrap_or(0));
    let interval = limit.interval();
    let used = if interval.is_zero() {
        0
    } else {
        reset.as_nanos().div_ceil(interval.as_nanos())
    };
    let remaining = u32::try_from(u128::from(limit.limit).saturating_sub(used)).unwrap_or(0);
    Outcome {
        allowed: state == 1,
        remaining: if state == 0 { 0 } else { remaining },
        reset,
        retry_after: Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}
