//! Counters shared by every instance, in Redis. One request is ONE round trip: a Lua script
//! (sent as EVALSHA, loaded on NOSCRIPT) checks every rule's GCRA key and every quota's
//! counter and charges them all or none, using Redis' own clock so instances with skewed
//! clocks agree. The connection reconnects by itself; each call has a short budget, and
//! after a failure Redis is left alone for `retry` so an outage costs requests nothing.
//!
//! A quota's counter is one hash per caller, `{prefix}quota:{name}:{k:id}` holding the start
//! of its window (`s`) and the units used in it (`n`), expiring when the window ends. The
//! window is chosen in the script by Redis' `TIME` among the three this instance sends
//! (the previous, current and next calendar window by its own clock), so the calendar
//! arithmetic stays in Rust (`window`) while every instance turns the day at Redis'
//! midnight; a counter of another window counts as zero and is overwritten.
//!
//! On a Redis Cluster a script may only touch keys of one slot. The keys of one caller share
//! a hash tag (see `redis_key`), and the request's keys are charged slot by slot, the slots
//! in parallel (still one round trip of time); when one slot refuses, the slots that charged
//! give their units back (`REFUND`), so a request is still charged everywhere or nowhere.

use std::time::Duration;

use futures_util::future::try_join_all;
use redis::cluster_routing::Slot;

use super::quota::{QuotaOutcome, QuotaState};
use super::window::Window;
use super::{Limit, Outcome};
use crate::config::RedisEndpoint;
use crate::sharing::{SharedCallError, SharedRedis};

/// What both scripts start with. ARGV[1] is the number of rule keys, which come first in
/// KEYS; quota keys follow. Each rule has three ARGV (emission interval us, burst tolerance
/// us, cost), then each quota six (limit, cost, and the four boundaries, Unix seconds, of
/// the three windows it may be in).
const PRELUDE: &str = r"
local t = redis.call('TIME')
local secs = tonumber(t[1])
local now = secs * 1000000 + tonumber(t[2])
local nr = tonumber(ARGV[1])
local nq = #KEYS - nr
local function quota_args(j)
  local a = 1 + 3 * nr + 6 * (j - 1)
  local w = 2
  for c = 1, 3 do
    if tonumber(ARGV[a + 2 + c]) <= secs and secs < tonumber(ARGV[a + 3 + c]) then w = c end
  end
  return tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), w, ARGV[a + 2 + w], ARGV[a + 3 + w]
end
local function held_count(key, start)
  local held = redis.call('HMGET', key, 's', 'n')
  if held[1] == start then return tonumber(held[2]) or 0 end
  return 0
end
";

/// GCRA over the rule keys and a count per quota key; three numbers per key and Redis' time
/// (seconds) at the end. A rule answers (state, retry_after us, reset us), a quota (state,
/// used, window 0..=2). State 1 is charged, 0 refused, 2 would allow but another key refused.
/// Nothing is written unless every key allows; TATs are stored as integer microseconds of
/// Redis' clock and expire when they would be indistinguishable from a fresh key. Cost 0
/// reads without writing.
const CHARGE: &str = r"
local out, held, writes, counts, before = {}, {}, {}, {}, {}
local refused = false
for i = 1, nr do
  local interval = tonumber(ARGV[3 * i - 1])
  local tolerance = tonumber(ARGV[3 * i])
  local cost = tonumber(ARGV[3 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  held[i] = tat
  local new_tat = tat + interval * cost
  local allow_at = new_tat - tolerance
  if allow_at > now then
    refused = true
    out[3 * i - 2], out[3 * i - 1], out[3 * i] = 0, allow_at - now, tat - now
  else
    if cost > 0 then writes[i] = new_tat end
    out[3 * i - 2], out[3 * i - 1], out[3 * i] = 1, 0, new_tat - now
  end
end
for j = 1, nq do
  local k = nr + j
  local limit, cost, w, start, stop = quota_args(j)
  local used = held_count(KEYS[k], start)
  before[k] = used
  if cost > 0 and used + cost > limit then
    refused = true
    out[3 * k - 2], out[3 * k - 1], out[3 * k] = 0, used, w - 1
  else
    if cost > 0 then counts[k] = {start, used + cost, stop} end
    out[3 * k - 2], out[3 * k - 1], out[3 * k] = 1, used + cost, w - 1
  end
end
if refused then
  for k = 1, #KEYS do
    if out[3 * k - 2] == 1 then
      out[3 * k - 2] = 2
      if k <= nr then out[3 * k] = held[k] - now else out[3 * k - 1] = before[k] end
    end
  end
else
  for i, tat in pairs(writes) do
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  end
  for k, c in pairs(counts) do
    redis.call('HSET', KEYS[k], 's', c[1], 'n', c[2])
    redis.call('EXPIREAT', KEYS[k], c[3])
  end
end
out[#out + 1] = secs
return out
";

/// Gives back what CHARGE charged (same KEYS and ARGV), for keys of a slot that allowed a
/// request another slot refused. Answers as CHARGE does for a key it did not charge (state
/// 2), and Redis' time.
const REFUND: &str = r"
local out = {}
for i = 1, nr do
  local interval = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') - interval * cost
  if tat > now then
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  else
    redis.call('DEL', KEYS[i])
    tat = now
  end
  out[3 * i - 2], out[3 * i - 1], out[3 * i] = 2, 0, tat - now
end
for j = 1, nq do
  local k = nr + j
  local limit, cost, w, start = quota_args(j)
  local used = held_count(KEYS[k], start)
  if used > 0 then
    used = math.max(0, used - cost)
    redis.call('HSET', KEYS[k], 'n', used)
  end
  out[3 * k - 2], out[3 * k - 1], out[3 * k] = 2, used, w - 1
end
out[#out + 1] = secs
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
    charge: redis::Script,
    refund: redis::Script,
}

/// One rule key to check: its full Redis name, the limit that applies and the cost.
pub struct SharedCheck<'a> {
    pub key: &'a str,
    pub limit: Limit,
    pub cost: u32,
}

/// One quota key to charge: its full Redis name, the caller's limit, the cost (0 reads) and
/// the previous, current and next window by this instance's clock.
pub struct QuotaCheck<'a> {
    pub key: &'a str,
    pub limit: u32,
    pub cost: u32,
    pub windows: [Window; 3],
}

/// A key of either kind, for grouping by slot.
enum Check<'a> {
    Rule(&'a SharedCheck<'a>),
    Quota(&'a QuotaCheck<'a>),
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
            charge: redis::Script::new(&format!("{PRELUDE}{CHARGE}")),
            refund: redis::Script::new(&format!("{PRELUDE}{REFUND}")),
        })
    }

    /// Whether keys must keep to one slot per script (see `ratelimit::redis_key`).
    pub fn is_cluster(&self) -> bool {
        self.redis.is_cluster()
    }

    /// Checks and charges every rule key; all are charged or none.
    pub async fn check(&self, checks: &[SharedCheck<'_>]) -> Result<Vec<Outcome>, RedisStoreError> {
        Ok(self.charge(checks, &[]).await?.0)
    }

    /// Checks and charges every rule and quota key; all are charged or none.
    pub async fn charge(
        &self,
        rules: &[SharedCheck<'_>],
        quotas: &[QuotaCheck<'_>],
    ) -> Result<(Vec<Outcome>, Vec<QuotaOutcome>), RedisStoreError> {
        let checks: Vec<Check<'_>> = rules
            .iter()
            .map(Check::Rule)
            .chain(quotas.iter().map(Check::Quota))
            .collect();
        let groups = self.by_slot(&checks);
        let replies =
            try_join_all(groups.iter().map(|g| self.run(&self.charge, &checks, g))).await?;
        let mut states = vec![[0i64; 3]; checks.len()];
        let mut now = 0;
        for (group, reply) in groups.iter().zip(&replies) {
            now = now.max(place(&mut states, group, reply));
        }
        if groups.len() > 1 && states.iter().any(|s| s[0] == 0) {
            // Refused in one slot: the slots that charged give their units back.
            let charged: Vec<&Vec<usize>> = groups
                .iter()
                .filter(|g| g.iter().any(|&i| states[i][0] == 1))
                .collect();
            let refunds = try_join_all(charged.iter().map(|g| self.run(&self.refund, &checks, g)));
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
        let (rule_states, quota_states) = states.split_at(rules.len());
        let rule_outcomes = rule_states
            .iter()
            .zip(rules)
            .map(|(r, check)| outcome(r[0], r[1], r[2], check.limit))
            .collect();
        let quota_outcomes = quota_states
            .iter()
            .zip(quotas)
            .map(|(q, check)| quota_outcome(q, check, now))
            .collect();
        Ok((rule_outcomes, quota_outcomes))
    }

    /// The checks' indices grouped by the slot of their key: one group on a single node.
    fn by_slot(&self, checks: &[Check<'_>]) -> Vec<Vec<usize>> {
        if !self.is_cluster() {
            return vec![(0..checks.len()).collect()];
        }
        let mut groups: Vec<(Slot, Vec<usize>)> = Vec::new();
        for (i, check) in checks.iter().enumerate() {
            let slot = Slot::for_key(check.key());
            match groups.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, group)) => group.push(i),
                None => groups.push((slot, vec![i])),
            }
        }
        groups.into_iter().map(|(_, group)| group).collect()
    }

    /// Runs `script` on the checks of one slot (rules first, as `checks` lists them); three
    /// numbers per key, then Redis' time.
    async fn run(
        &self,
        script: &redis::Script,
        checks: &[Check<'_>],
        group: &[usize],
    ) -> Result<Vec<i64>, RedisStoreError> {
        let mut invocation = script.prepare_invoke();
        let rules = group
            .iter()
            .filter(|&&i| matches!(checks[i], Check::Rule(_)))
            .count();
        invocation.arg(rules);
        for check in group.iter().map(|&i| &checks[i]) {
            match check {
                Check::Rule(rule) => {
                    let interval = micros(rule.limit.interval());
                    invocation
                        .key(rule.key)
                        .arg(interval)
                        .arg(interval * u64::from(rule.limit.limit))
                        .arg(rule.cost.min(rule.limit.limit));
                }
                Check::Quota(quota) => {
                    let [previous, current, next] = quota.windows;
                    invocation
                        .key(quota.key)
                        .arg(quota.limit)
                        .arg(quota.cost.min(quota.limit))
                        .arg(previous.start)
                        .arg(current.start)
                        .arg(current.end)
                        .arg(next.end);
                }
            }
        }
        let reply: Vec<i64> = self
            .redis
            .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        if reply.len() != group.len() * 3 + 1 {
            return Err(RedisStoreError::Reply);
        }
        Ok(reply)
    }
}

impl Check<'_> {
    fn key(&self) -> &str {
        match self {
            Check::Rule(rule) => rule.key,
            Check::Quota(quota) => quota.key,
        }
    }
}

/// Puts a slot's reply (three numbers per key) at its keys' places; returns Redis' time.
fn place(states: &mut [[i64; 3]], group: &[usize], reply: &[i64]) -> u64 {
    for (&i, state) in group.iter().zip(reply.chunks_exact(3)) {
        states[i].copy_from_slice(state);
    }
    reply
        .last()
        .and_then(|&secs| u64::try_from(secs).ok())
        .unwrap_or(0)
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

/// A quota's (state, used, window) as the script answered them, at Redis' time `now`.
fn quota_outcome(reply: &[i64; 3], check: &QuotaCheck<'_>, now: u64) -> QuotaOutcome {
    let [state, used, window] = *reply;
    QuotaOutcome {
        state: match state {
            1 => QuotaState::Allowed,
            2 => QuotaState::Spared,
            _ => QuotaState::Exhausted,
        },
        used: u64::try_from(used).unwrap_or(0),
        window: check.windows[usize::try_from(window).unwrap_or(1).min(2)],
        now,
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}
