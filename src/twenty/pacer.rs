//! The client's own request budget, so that a long pass stays under Twenty's rate limits instead of
//! discovering them through 429s: releases before late 2026 send no `Retry-After` and no
//! `X-RateLimit-*`, so the client has to pace itself. What newer ones say is learned on top
//! ([`Pacer::hold_for`], [`Pacer::observe_window`], [`Pacer::adopt`]): it can only slow the client.
//!
//! Each limit is a token bucket of capacity `requests`, refilled continuously at `requests / per` and
//! full at start, which is how Twenty's throttler counts. With 100 requests a minute, a pass of N
//! requests bursts the first 100 and then sends one every 600 ms: about (N − 100) × 0.6 s, the fastest
//! the server allows, with no 429.
//!
//! The buckets are kept as "theoretical arrival times" (GCRA): a caller reserves the earliest instant at
//! which every bucket holds a token, under a short synchronous lock, then sleeps until it outside the
//! lock. Reservations are handed out in the order callers arrive, so concurrent callers are served
//! first come, first served and never race for the same token. A caller dropped while it sleeps gives
//! up its slot unused, which only makes the pacer more careful.
//!
//! Our own GCRA rather than the `governor` crate's, because Twenty's budget needs what a governor
//! limiter cannot do:
//! - Several limits at once (100 a minute and 100 a second), one instant reserved in every bucket
//!   under one lock. Two limiters awaited in turn take the first one's token before the second has
//!   one, so the first counts the request earlier than it is sent and may let the next one through
//!   before the server's window allows it.
//! - The buckets are state we set: emptied after a 429 so that our count re-syncs with the server's
//!   ([`Pacer::drain`]), held for `Retry-After`, spread by `X-RateLimit-*`; a governor limiter's
//!   state cannot be set from outside.
//! - First come, first served: governor's waiters each sleep and then race for the token again.
//! - Tokio's clock, so that the tests below run on paused time; governor sleeps on its own timer.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);

/// At most `requests` requests in any window of `per`, with bursts up to `requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl RateLimit {
    pub const fn new(requests: u32, per: Duration) -> Self {
        Self { requests, per }
    }

    /// Twenty's default per-workspace limits for API keys: 100 a minute and 100 a second.
    pub fn twenty_defaults() -> Vec<RateLimit> {
        vec![RateLimit::new(100, Duration::from_secs(60)), RateLimit::new(100, Duration::from_secs(1))]
    }

    /// The time one token takes to come back, rounded up to the nanosecond so that rounding never
    /// lets us run faster than the limit.
    pub fn refill_interval(&self) -> Duration {
        let nanos = self.per.as_nanos().div_ceil(u128::from(self.requests.max(1)));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Why this limit cannot be paced, if it cannot: zero requests, a zero window, or a window over a year.
    pub fn validate(&self) -> Result<(), String> {
        if self.requests == 0 {
            return Err(format!("{self}: a limit of zero requests allows nothing; use \"off\" for no limit"));
        }
        if self.per.is_zero() {
            return Err(format!("{} requests per zero time is not a limit", self.requests));
        }
        // Keeps every instant the pacer computes far from overflow.
        if self.per > MAX_WINDOW {
            return Err(format!("{self}: the window may be a year at most"));
        }
        Ok(())
    }
}

/// Parses one limit: `100/min`, `10/s`, `6000/h`, `1000/d`, or with a window length: `100/10s`,
/// `5/500ms`. Units: `ms`, `s`/`sec`/`second`, `m`/`min`/`minute`, `h`/`hour`, `d`/`day`.
impl FromStr for RateLimit {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let expected = || format!("{value:?}: expected a limit such as 100/min, 10/s or 6000/h");
        let (count, window) = value.trim().split_once('/').ok_or_else(expected)?;
        let requests: u32 = count.trim().parse().map_err(|_| expected())?;
        let window = window.trim();
        let split = window.find(|c: char| !c.is_ascii_digit()).unwrap_or(window.len());
        let (amount, unit) = window.split_at(split);
        let amount: u64 = if amount.is_empty() { 1 } else { amount.parse().map_err(|_| expected())? };
        let millis_per_unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "ms" => 1,
            "s" | "sec" | "second" => 1_000,
            "m" | "min" | "minute" => 60_000,
            "h" | "hour" => 3_600_000,
            "d" | "day" => 86_400_000,
            other => {
                return Err(format!("{value:?}: unknown unit {other:?}; use ms, s, min, h or d"));
            }
        };
        let millis = amount.checked_mul(millis_per_unit).ok_or_else(|| format!("{value:?} is too large"))?;
        let limit = RateLimit::new(requests, Duration::from_millis(millis));
        limit.validate()?;
        Ok(limit)
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per.as_millis() {
            1_000 => write!(f, "{}/s", self.requests),
            60_000 => write!(f, "{}/min", self.requests),
            3_600_000 => write!(f, "{}/h", self.requests),
            86_400_000 => write!(f, "{}/d", self.requests),
            ms => write!(f, "{}/{ms}ms", self.requests),
        }
    }
}

/// Parses a setting such as `TWENTY_RATE_LIMIT`: `off` (no limit, an empty list), or one or more
/// comma-separated limits that all apply, e.g. `100/min,100/s`.
pub fn parse_rate_limits(value: &str) -> Result<Vec<RateLimit>, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") || value.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let limits = value
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(RateLimit::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    if limits.is_empty() {
        return Err(format!("{value:?}: expected off or limits such as 100/min,100/s"));
    }
    Ok(limits)
}

/// One limit's state: `tat` is the instant at which the bucket would be full again if no request came.
#[derive(Debug)]
struct Bucket {
    interval: Duration,
    /// How far `tat` may run ahead of now while a token is left: (capacity − 1) intervals.
    burst: Duration,
    /// A whole bucket's worth of intervals: `tat` this far ahead means the bucket is empty.
    capacity: Duration,
    tat: Instant,
}

/// Twenty's own account of its window, from `X-RateLimit-Remaining` and `X-RateLimit-Reset`: the
/// requests left are spread evenly until the reset instead of being spent at once.
#[derive(Debug)]
struct ServerWindow {
    next: Instant,
    spacing: Duration,
    resets_at: Instant,
}

#[derive(Debug)]
struct State {
    buckets: Vec<Bucket>,
    /// The server's budget as a 429 stated it, when it is one: paced like ours.
    adopted: Option<(RateLimit, Bucket)>,
    /// No request before this instant (`Retry-After`).
    not_before: Instant,
    window: Option<ServerWindow>,
}

/// Waits until every configured limit, and what Twenty said of its own, allows one more request.
/// Shared by all clones of a client.
#[derive(Debug)]
pub struct Pacer {
    limits: Vec<RateLimit>,
    state: Mutex<State>,
}

impl State {
    /// Ours and the adopted one.
    fn buckets_mut(&mut self) -> impl Iterator<Item = &mut Bucket> {
        self.buckets.iter_mut().chain(self.adopted.iter_mut().map(|(_, bucket)| bucket))
    }
}

impl Bucket {
    fn new(limit: &RateLimit, tat: Instant) -> Bucket {
        let interval = limit.refill_interval();
        Bucket {
            interval,
            burst: interval.saturating_mul(limit.requests - 1),
            capacity: interval.saturating_mul(limit.requests),
            tat,
        }
    }
}

impl Pacer {
    /// A pacer with full buckets. Limits of zero requests or a zero window are ignored (they are
    /// rejected when parsed; see [`parse_rate_limits`]); an empty list means no limit.
    pub fn new(limits: &[RateLimit]) -> Self {
        let limits: Vec<RateLimit> = limits.iter().copied().filter(|l| l.validate().is_ok()).collect();
        let now = Instant::now();
        let buckets = limits.iter().map(|limit| Bucket::new(limit, now)).collect();
        let state = State { buckets, adopted: None, not_before: now, window: None };
        Self { limits, state: Mutex::new(state) }
    }

    pub fn limits(&self) -> &[RateLimit] {
        &self.limits
    }

    /// The server's budget once a 429 stated it, else `None`.
    pub fn adopted(&self) -> Option<RateLimit> {
        self.lock().adopted.as_ref().map(|(limit, _)| *limit)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The longest time one token takes to come back, over every limit (the adopted one included);
    /// zero without limits. After a 429 the server's bucket is empty, and this is the least time
    /// until it has a token again.
    pub fn refill_interval(&self) -> Duration {
        let adopted = self.adopted().map(|limit| limit.refill_interval()).unwrap_or(Duration::ZERO);
        self.limits.iter().map(RateLimit::refill_interval).fold(adopted, Duration::max)
    }

    /// Takes one token from every bucket, waiting first if any is empty. Returns the time waited.
    pub async fn acquire(&self) -> Duration {
        let now = Instant::now();
        let slot = self.reserve(now);
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
        slot.saturating_duration_since(now)
    }

    /// Empties every bucket as of now. Called when Twenty says its budget is exhausted, so that our
    /// count agrees with the server's again (another client may share the workspace's budget, or a
    /// previous run spent it just before we started).
    pub fn drain(&self) {
        let now = Instant::now();
        for bucket in self.lock().buckets_mut() {
            bucket.tat = bucket.tat.max(now + bucket.capacity);
        }
    }

    /// Sends no request, of any caller, before `wait` from now (Twenty's `Retry-After`).
    pub fn hold_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut state = self.lock();
        state.not_before = state.not_before.max(until);
    }

    /// How long from now until the pacer lets a request go for `Retry-After`; zero when it does.
    pub fn held_for(&self) -> Duration {
        self.lock().not_before.saturating_duration_since(Instant::now())
    }

    /// Paces to the budget a 429 stated (`limit` requests per `periodCount periodUnit`), from now on
    /// and on top of our own limits, starting empty as the server's is. A key's budget can be lower
    /// than `TWENTY_RATE_LIMIT`: this keeps that from becoming a stream of 429s.
    pub fn adopt(&self, limit: RateLimit) {
        if limit.validate().is_err() {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        if state.adopted.as_ref().is_some_and(|(known, _)| *known == limit) {
            return;
        }
        let mut bucket = Bucket::new(&limit, now);
        bucket.tat = now + bucket.capacity;
        state.adopted = Some((limit, bucket));
    }

    /// What Twenty said of its window: `remaining` requests of `limit` until `reset_in` from now. With
    /// half the window's budget or more left, nothing changes (a short run goes out at once); below
    /// that, the requests left are spread evenly until the reset, so that the run slows to the
    /// server's pace before it runs out and another client of the same budget still finds some. With
    /// none left, nothing goes out before the reset.
    pub fn observe_window(&self, limit: Option<u32>, remaining: u32, reset_in: Duration) {
        let now = Instant::now();
        let mut state = self.lock();
        if remaining == 0 {
            state.not_before = state.not_before.max(now + reset_in);
            state.window = None;
            return;
        }
        if limit.is_some_and(|limit| u64::from(remaining) * 2 >= u64::from(limit)) {
            state.window = None;
            return;
        }
        let spacing = reset_in / remaining;
        state.window = Some(ServerWindow { next: now + spacing, spacing, resets_at: now + reset_in });
    }

    /// Reserves the earliest instant, not before `now`, at which every bucket holds a token, and takes
    /// that token from each.
    fn reserve(&self, now: Instant) -> Instant {
        let mut state = self.lock();
        let not_before = now.max(state.not_before);
        let mut slot = state
            .buckets_mut()
            .filter_map(|bucket| bucket.tat.checked_sub(bucket.burst))
            .fold(not_before, Instant::max);
        if let Some(server) = &mut state.window {
            if slot.max(server.next) < server.resets_at {
                slot = slot.max(server.next);
                server.next = slot + server.spacing;
            } else {
                state.window = None;
            }
        }
        for bucket in state.buckets_mut() {
            bucket.tat = bucket.tat.max(slot) + bucket.interval;
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_up_to_capacity_passes_then_requests_are_spaced_by_the_refill_interval() {
        let pacer = Pacer::new(&["100/min".parse().unwrap()]);
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(pacer.acquire().await, Duration::ZERO);
        }
        assert_eq!(Instant::now(), start, "the first 100 go out at once");
        for n in 1..=5u32 {
            assert_eq!(pacer.acquire().await, ms(600));
            assert_eq!(Instant::now() - start, ms(600) * n);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_pass_takes_the_minimum_the_limit_allows() {
        let pacer = Pacer::new(&["100/min".parse().unwrap()]);
        let start = Instant::now();
        let mut waited = Duration::ZERO;
        for _ in 0..1_000 {
            waited += pacer.acquire().await;
        }
        // (N − capacity) × interval = 900 × 0.6 s.
        assert_eq!(Instant::now() - start, Duration::from_secs(540));
        assert_eq!(waited, Duration::from_secs(540));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_refills_continuously_up_to_its_capacity() {
        let pacer = Pacer::new(&["10/s".parse().unwrap()]);
        for _ in 0..10 {
            pacer.acquire().await;
        }
        // 350 ms refill 3 tokens (and a half).
        tokio::time::advance(ms(350)).await;
        for _ in 0..3 {
            assert_eq!(pacer.acquire().await, Duration::ZERO);
        }
        assert_eq!(pacer.acquire().await, ms(50));
        // A long pause refills no more than the capacity.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..10 {
            assert_eq!(pacer.acquire().await, Duration::ZERO);
        }
        assert_eq!(pacer.acquire().await, ms(100));
    }

    #[tokio::test(start_paused = true)]
    async fn two_limits_combine() {
        // 3 a second allows short bursts; 5 a minute caps the long run.
        let pacer = Pacer::new(&parse_rate_limits("3/s, 5/min").unwrap());
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..7 {
            pacer.acquire().await;
            at.push((Instant::now() - start).as_millis());
        }
        // Slots at 1/3 s and 2/3 s; tokio's timer wakes on the next whole millisecond.
        assert_eq!(at, [0, 0, 0, 334, 667, 12_000, 24_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn off_never_waits() {
        let pacer = Pacer::new(&parse_rate_limits("off").unwrap());
        let start = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(pacer.acquire().await, Duration::ZERO);
        }
        pacer.drain();
        assert_eq!(pacer.acquire().await, Duration::ZERO);
        assert_eq!(Instant::now(), start);
        assert_eq!(pacer.refill_interval(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_empties_every_bucket() {
        let pacer = Pacer::new(&RateLimit::twenty_defaults());
        assert_eq!(pacer.acquire().await, Duration::ZERO);
        pacer.drain();
        // Both buckets are empty: the slower one decides.
        assert_eq!(pacer.refill_interval(), ms(600));
        assert_eq!(pacer.acquire().await, ms(600));
        assert_eq!(pacer.acquire().await, ms(600));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_get_distinct_slots_in_arrival_order() {
        let pacer = Arc::new(Pacer::new(&["1/s".parse().unwrap()]));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let pacer = pacer.clone();
            tasks.push(tokio::spawn(async move {
                pacer.acquire().await;
                (Instant::now() - start).as_secs()
            }));
            // Let the task take its reservation before the next one arrives.
            tokio::task::yield_now().await;
        }
        let mut done = Vec::new();
        for task in tasks {
            done.push(task.await.unwrap());
        }
        assert_eq!(done, [0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_every_caller() {
        let pacer = Pacer::new(&RateLimit::twenty_defaults());
        pacer.hold_for(Duration::from_secs(3));
        assert_eq!(pacer.held_for(), Duration::from_secs(3));
        assert_eq!(pacer.acquire().await, Duration::from_secs(3));
        assert_eq!(pacer.held_for(), Duration::ZERO);
        // A shorter hold never shortens a longer one.
        pacer.hold_for(Duration::from_secs(2));
        pacer.hold_for(Duration::from_secs(1));
        assert_eq!(pacer.acquire().await, Duration::from_secs(2));
        assert_eq!(pacer.acquire().await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn few_requests_left_are_spread_until_the_reset() {
        let pacer = Pacer::new(&parse_rate_limits("100/s").unwrap());
        // Half the window or more left: no change.
        pacer.observe_window(Some(10), 5, Duration::from_secs(10));
        assert_eq!(pacer.acquire().await, Duration::ZERO);
        // 4 of 10 left, 8 s to the reset: one every 2 s.
        pacer.observe_window(Some(10), 4, Duration::from_secs(8));
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            pacer.acquire().await;
            at.push((Instant::now() - start).as_secs());
        }
        // The fourth would land on the reset: the window is over, and the pacer goes at its own pace.
        assert_eq!(at, [2, 4, 6, 6, 6]);
        // None left: nothing before the reset.
        pacer.observe_window(None, 0, Duration::from_secs(5));
        assert_eq!(pacer.acquire().await, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stated_budget_is_adopted_empty_and_paced() {
        let pacer = Pacer::new(&parse_rate_limits("100/s").unwrap());
        pacer.adopt(RateLimit::new(2, Duration::from_secs(1)));
        assert_eq!(pacer.adopted(), Some(RateLimit::new(2, Duration::from_secs(1))));
        assert_eq!(pacer.refill_interval(), ms(500));
        assert_eq!(pacer.acquire().await, ms(500));
        assert_eq!(pacer.acquire().await, ms(500));
        // The same budget stated again changes nothing; a drain empties it with ours.
        pacer.adopt(RateLimit::new(2, Duration::from_secs(1)));
        assert_eq!(pacer.acquire().await, ms(500));
        tokio::time::advance(Duration::from_secs(5)).await;
        pacer.drain();
        assert_eq!(pacer.acquire().await, ms(500));
    }

    #[test]
    fn limits_parse_from_settings() {
        let parse = |s: &str| s.parse::<RateLimit>().unwrap();
        assert_eq!(parse("100/min"), RateLimit::new(100, Duration::from_secs(60)));
        assert_eq!(parse("10/s"), RateLimit::new(10, Duration::from_secs(1)));
        assert_eq!(parse("6000/h"), RateLimit::new(6000, Duration::from_secs(3600)));
        assert_eq!(parse(" 100 / 10s "), RateLimit::new(100, Duration::from_secs(10)));
        assert_eq!(parse("5/500ms"), RateLimit::new(5, ms(500)));
        assert_eq!(parse("1000/day"), RateLimit::new(1000, Duration::from_secs(86_400)));
        assert_eq!(parse("100/minute").to_string(), "100/min");
        assert_eq!(parse("5/500ms").to_string(), "5/500ms");

        assert_eq!(parse_rate_limits("off").unwrap(), []);
        assert_eq!(parse_rate_limits("OFF").unwrap(), []);
        assert_eq!(parse_rate_limits("100/min,100/s").unwrap(), RateLimit::twenty_defaults());

        for bad in [
            "",
            "100",
            "min",
            "x/min",
            "100/fortnight",
            "0/min",
            "100/0s",
            "-1/s",
            "100/min,nope",
            ",",
            "1/400d",
        ] {
            let error = parse_rate_limits(bad).expect_err(bad);
            assert!(!error.is_empty());
        }
        assert!("0/min".parse::<RateLimit>().unwrap_err().contains("off"));
    }

    #[test]
    fn refill_intervals_round_up() {
        assert_eq!(RateLimit::new(100, Duration::from_secs(60)).refill_interval(), ms(600));
        assert_eq!(
            RateLimit::new(3, Duration::from_secs(1)).refill_interval(),
            Duration::from_nanos(333_333_334)
        );
    }
}
