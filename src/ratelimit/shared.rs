//! Counters shared by every instance, in Redis. One request is ONE round trip: a Lua GCRA
//! script (sent as EVALSHA, loaded on NOSCRIPT) checks every rule's key and charges them all
//! or none, using Redis' own clock so instances with skewed clocks agree. The connection
//! reconnects by itself; each call has a short budget, and after a failure Redis is left
//! alone for `retry` so an outage costs requests nothing.
//!
//! On a Redis Cluster a script may only touch keys of one slot. The keys of one caller share
//! a hash tag (see `redis_key`), and the request's keys are charged slot by slot, the slots
//! in parallel (still one round trip of time); when one slot refuses, the slots that charged
//! give their units back (`REFUND`), so a request is still charged everywhere or nowhere.

use std::time::Duration;

use futures_util::future::try_join_all;
use redis::cluster_routing::Slot;

use super::{Limit, Outcome};
use crate::config::RedisEndpoint;
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

/// Gives back what GCRA charged (same ARGV), for keys of a slot that allowed a request
/// another slot refused. Returns (2, 0, reset us) per key, as GCRA does for a key it did not
/// charge.
const REFUND: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 * i - 2])
  local cost = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') - interval * cost
  if tat > now then
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  else
    redis.call('DEL', KEYS[i])
    tat = now
  end
  out[3 * i - 2], out[3 * i - 1], out[3 * i] = 2, 0, tat - now
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
    refund: redis::Script,
}

/// One key to check: its full Redis name, the limit that applies and the cost.
pub struct SharedCheck<'a> {
    pub key: &'a str,
    pub limit: Limit,
    pub cost: u32,
}

impl RedisStore {
    /// Does not connect: the first call does, and the connection reconnects after failures.
    pub fn new(
        endpoint: &RedisEndpoint,
        timeout: Duration,
        retry: Duration,
    ) -> Result<Self, redis::RedisError> {
        Ok(Self {
            redis: SharedRedis::new(endpoint, timeout, retry)?,
            script: redis::Script::new(GCRA),
            refund: redis::Script::new(REFUND),
        })
    }

    /// Whether keys must keep to one slot per script (see `ratelimit::redis_key`).
    pub fn is_cluster(&self) -> bool {
        self.redis.is_cluster()
    }

    /// Checks and charges every key; all are charged or none.
    pub async fn check(&self, checks: &[SharedCheck<'_>]) -> Result<Vec<Outcome>, RedisStoreError> {
        let groups = self.by_slot(checks);
        let replies =
            try_join_all(groups.iter().map(|g| self.run(&self.script, checks, g))).await?;
        let mut states = vec![[0i64; 3]; checks.len()];
        for (group, reply) in groups.iter().zip(&replies) {
            place(&mut states, group, reply);
        }
        if groups.len() > 1 && states.iter().any(|s| s[0] == 0) {
            // Refused in one slot: the slots that charged give their units back.
            let charged: Vec<&Vec<usize>> = groups
                .iter()
                .filter(|g| g.iter().any(|&i| states[i][0] == 1))
                .collect();
            let refunds = try_join_all(charged.iter().map(|g| self.run(&self.refund, checks, g)));
            match refunds.await {
                Ok(replies) => {
                    for (group, reply) in charged.iter().zip(&replies) {
                        place(&mut states, group, reply);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "rate limits: a refund did not reach redis"),
            }
            for state in &mut states {
                if state[0] == 1 {
                    state[0] = 2;
                }
            }
        }
        Ok(states
            .iter()
            .zip(checks)
            .map(|(r, check)| outcome(r[0], r[1], r[2], check.limit))
            .collect())
    }

    /// The checks' indices grouped by the slot of their key: one group on a single node.
    fn by_slot(&self, checks: &[SharedCheck<'_>]) -> Vec<Vec<usize>> {
        if !self.is_cluster() {
            return vec![(0..checks.len()).collect()];
        }
        let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
        for (i, check) in checks.iter().enumerate() {
            let slot = Slot::for_key(check.key);
            match groups.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, group)) => group.push(i),
                None => groups.push((slot, vec![i])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }

    /// Runs `script` on the checks of one slot; three numbers per key.
    async fn run(
        &self,
        script: &redis::Script,
        checks: &[SharedCheck<'_>],
        group: &[usize],
    ) -> Result<Vec<i64>, RedisStoreError> {
        let mut invocation = script.prepare_invoke();
        for check in group.iter().map(|&i| &checks[i]) {
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
        if reply.len() != group.len() * 3 {
            return Err(RedisStoreError::Reply);
        }
        Ok(reply)
    }
}

/// Puts a slot's reply (three numbers per key) at its keys' places.
fn place(states: &mut [[i64; 3]], group: &[usize], reply: &[i64]) {
    for (&i, state) in group.iter().zip(reply.chunks_exact(3)) {
        states[i].copy_from_slice(state);
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
