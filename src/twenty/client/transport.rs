//! Sending one request to Twenty: paced under our own budget, classified by its answer, and retried
//! while the failure is transient. Knows nothing of Twenty's endpoints; `records`, `metadata` and
//! `subscriptions` build on [`Transport::request_json`].
//!
//! The retry loop is `backon`'s: it asks [`Transport::may_retry`] whether to try again, takes its
//! exponential schedule from [`RetryPolicy`], lets [`Transport::delay_after`] turn each ceiling into
//! the wait, and reports each retry to the log and the stats. The wait is ours, because backon's
//! jitter adds up to one more delay on top of the ceiling where we want "full jitter" (a delay drawn
//! below it), and because after a 429 it must be at least one refill interval of our slowest limit,
//! which only the pacer knows, or as long as `Retry-After` says.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::ClientSettings;
use super::budget::BudgetSignal;
use super::error::{ClientError, TransientCause, error_message, refusal};
use crate::twenty::pacer::{Pacer, RateLimit};

/// A reachable host accepts a connection in well under a second; waiting longer than this only
/// delays the retry of a dead one. The per-request timeout still bounds slow answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The wait after a 429 when no limit of our own says how fast the server refills: Twenty's
/// shortest window.
const UNKNOWN_REFILL: Duration = Duration::from_secs(1);

/// We pace this much under each configured limit. Our clock and Twenty's never agree to the
/// millisecond (timer granularity, network jitter), and a request that lands exactly on the
/// boundary would be refused; 1% costs 1% of a long pass's time.
const PACING_MARGIN: f64 = 0.01;

fn with_margin(limits: &[RateLimit]) -> Vec<RateLimit> {
    limits.iter().map(|l| RateLimit::new(l.requests, l.per.mul_f64(1.0 + PACING_MARGIN))).collect()
}

/// How often, and how patiently, a failed request is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first one included.
    pub max_attempts: u32,
    /// The backoff ceiling after the first failure; it doubles with each further failure.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Six tries with backoff ceilings of 0.5, 1, 2, 4 and 8 s between them: up to 15.5 s of waiting
    /// (half that on average, plus 0.6 s a retry after a 429), enough to ride out a restart of Twenty,
    /// short enough that a broken run is reported while someone is looking.
    fn default() -> Self {
        Self { max_attempts: 6, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The backoff ceilings, one per retry: `base_delay × 2^(retry−1)`, at most `max_delay`, for
    /// `max_attempts − 1` retries. backon doubles in `f32`: exactly for the default 0.5 s, within
    /// nanoseconds for other bases, which the jitter drawn below the ceiling makes moot.
    fn schedule(&self) -> ExponentialBuilder {
        let retries = usize::try_from(self.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        ExponentialBuilder::new()
            .with_min_delay(self.base_delay.min(self.max_delay))
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(retries)
    }
}

/// "Full jitter": a delay drawn uniformly below the ceiling, `fraction` in `[0, 1)`. Spreading the
/// retries keeps concurrent callers from hitting a recovering server in lockstep.
fn full_jitter(ceiling: Duration, fraction: f64) -> Duration {
    ceiling.mul_f64(fraction.clamp(0.0, 1.0))
}

/// The delay after Twenty said its budget is spent: at least `floor` (one refill interval of the
/// slowest limit, the least time until the server has a token again), plus the jittered backoff,
/// which grows in case something else is spending the same workspace's budget.
fn rate_limited_delay(floor: Duration, ceiling: Duration, fraction: f64) -> Duration {
    floor.saturating_add(full_jitter(ceiling, fraction))
}

/// What the client has done since it was created, over all its clones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Completed requests by HTTP status (`"200"`, `"429"`, …), and `"error"` for requests that got
    /// no complete answer: timeouts, refused or broken connections.
    pub requests: BTreeMap<String, u64>,
    /// Requests sent again after a transient failure.
    pub retries: u64,
    /// Time spent waiting for our own rate limit before sending.
    pub rate_limit_wait: Duration,
    /// Time spent backing off between a failure and its retry.
    pub retry_wait: Duration,
}

impl ClientStats {
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }
}

/// How one try ended, before retries are decided.
enum Failure {
    Transient(TransientCause),
    Fatal(ClientError),
}

/// What an answer's status means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Success,
    RateLimited,
    /// The workspace's quota is spent: no retry can help before Twenty says so.
    QuotaExhausted,
    Retry,
    Fail,
}

/// Classifies an answer by its status and, for a 400, by Twenty's message.
fn classify(status: StatusCode, message: &str) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Success,
        429 => Verdict::RateLimited,
        402 => Verdict::QuotaExhausted,
        // Releases before 429 answered an exhausted budget with 400 "Limit reached (…)".
        400 if message.to_ascii_lowercase().contains("limit reached") => Verdict::RateLimited,
        // A proxy's request timeout is a timeout like ours: the request may well pass next time.
        408 => Verdict::Retry,
        500..=599 => Verdict::Retry,
        _ => Verdict::Fail,
    }
}

/// The connection pool, the credentials, the budget and the counters that every clone of a client
/// shares.
pub(super) struct Transport {
    http: reqwest::Client,
    authorization: HeaderValue,
    api_key: SecretString,
    pub(super) timeout: Duration,
    pub(super) retry: RetryPolicy,
    pacer: Pacer,
    stats: Mutex<ClientStats>,
}

impl Transport {
    /// Checks everything in `settings` but the base URL, and builds the HTTP client.
    pub(super) fn new(settings: &ClientSettings) -> Result<Self, ClientError> {
        let key = settings.api_key.expose_secret().trim();
        if key.is_empty() {
            return Err(ClientError::Settings(
                "the API key is empty: set TWENTY_API_KEY to a key from Twenty's Settings → APIs & Webhooks"
                    .to_owned(),
            ));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            ClientError::Settings(
                "the API key contains characters an HTTP header cannot carry (a stray newline or quote?)"
                    .to_owned(),
            )
        })?;
        authorization.set_sensitive(true);
        if settings.timeout.is_zero() {
            return Err(ClientError::Settings("the request timeout must be longer than zero".to_owned()));
        }
        if settings.retry.max_attempts == 0 {
            return Err(ClientError::Settings("max_attempts must be at least 1".to_owned()));
        }
        for limit in &settings.rate_limits {
            limit.validate().map_err(ClientError::Settings)?;
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(CONNECT_TIMEOUT))
            .user_agent(concat!("twenty-mirror/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ClientError::Settings(format!("cannot start the HTTP client: {}", error_chain(&e)))
            })?;
        Ok(Self {
            http,
            authorization,
            api_key: SecretString::from(key.to_owned()),
            timeout: settings.timeout,
            retry: settings.retry,
            pacer: Pacer::new(&with_margin(&settings.rate_limits)),
            stats: Mutex::new(ClientStats::default()),
        })
    }

    /// Our own limits, as paced (the margin included).
    pub(super) fn rate_limits(&self) -> &[RateLimit] {
        self.pacer.limits()
    }

    /// A snapshot of the counters.
    pub(super) fn stats(&self) -> ClientStats {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn update_stats(&self, update: impl FnOnce(&mut ClientStats)) {
        update(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// GETs `url` with `query` and parses the answer as JSON, pacing every try and retrying transient
    /// failures.
    pub(super) async fn get_json(&self, url: &str, query: &[(&str, &str)]) -> Result<Value, ClientError> {
        self.request_json(Method::GET, url, query, None).await
    }

    /// Sends `method` to `url` with `query` and, when given, `body` as JSON, and parses the answer as
    /// JSON, pacing every try. Transient failures are retried, except where repeating a POST could
    /// do twice what it does: then only when Twenty certainly did not act (a rate-limit refusal, a
    /// connection that was never made). Every retry counts against `RetryPolicy::max_attempts`.
    pub(super) async fn request_json(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let attempts = AtomicU32::new(0);
        let (method_ref, attempts_ref) = (&method, &attempts);
        let attempt = move || async move {
            attempts_ref.fetch_add(1, Ordering::Relaxed);
            let waited = self.pacer.acquire().await;
            if !waited.is_zero() {
                self.update_stats(|stats| stats.rate_limit_wait += waited);
            }
            let outcome = self.try_once(method_ref, url, query, body).await;
            if let Err(Failure::Transient(cause)) = &outcome
                && cause.is_rate_limited()
            {
                // Twenty's bucket is empty: ours must be too, for this caller and every other one.
                self.pacer.drain();
            }
            outcome
        };
        let outcome = attempt
            .retry(self.retry.schedule())
            .when(|failure| Self::may_retry(method_ref, failure))
            .adjust(|failure, ceiling| ceiling.map(|ceiling| self.delay_after(failure, ceiling)))
            .notify(|failure, delay| {
                let Failure::Transient(cause) = failure else { return };
                tracing::warn!(
                    method = %method_ref,
                    url,
                    attempt = attempts_ref.load(Ordering::Relaxed),
                    max_attempts = self.retry.max_attempts,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    cause = %cause,
                    "a request to Twenty failed; retrying"
                );
                self.update_stats(|stats| {
                    stats.retries += 1;
                    stats.retry_wait += delay;
                });
            })
            .await;
        let attempts = attempts.into_inner();
        match outcome {
            Ok(answer) => Ok(answer),
            Err(Failure::Fatal(error)) => Err(error),
            Err(Failure::Transient(cause)) => {
                let url = url.to_owned();
                Err(if Self::may_repeat(&method, &cause) {
                    ClientError::Exhausted { method, url, attempts, cause }
                } else {
                    ClientError::NotRetried { method, url, cause }
                })
            }
        }
    }

    /// Whether a try that failed with `failure` may be repeated: only a transient failure can be.
    fn may_retry(method: &Method, failure: &Failure) -> bool {
        match failure {
            Failure::Transient(cause) => Self::may_repeat(method, cause),
            Failure::Fatal(_) => false,
        }
    }

    /// Whether a request may be sent again after `cause`: any idempotent one, and a POST (which
    /// creates something) only when Twenty certainly did not carry it out.
    fn may_repeat(method: &Method, cause: &TransientCause) -> bool {
        *method != Method::POST || cause.was_not_carried_out()
    }

    /// The wait before the next try, from the schedule's `ceiling` for it: jittered below it, and
    /// after a rate-limit refusal at least one refill interval more.
    fn delay_after(&self, failure: &Failure, ceiling: Duration) -> Duration {
        match failure {
            Failure::Transient(TransientCause::RateLimited { retry_after: Some(wait), .. }) => {
                // Twenty said when: that long (the pacer holds every caller as long), and a little
                // jitter so that the callers it held do not all go at once.
                let spread = full_jitter(self.retry.base_delay.min(ceiling), jitter());
                self.pacer.held_for().max(*wait).saturating_add(spread)
            }
            Failure::Transient(cause) if cause.is_rate_limited() => {
                // Without limits of our own, the server's refill interval is unknown: wait at least
                // a second, Twenty's shortest window, rather than retrying at once.
                let unknown_refill =
                    if self.pacer.limits().is_empty() { UNKNOWN_REFILL } else { Duration::ZERO };
                let floor = self.pacer.refill_interval().max(self.retry.base_delay).max(unknown_refill);
                rate_limited_delay(floor, ceiling, jitter())
            }
            _ => full_jitter(ceiling, jitter()),
        }
    }

    /// One try: send, read the whole body, classify.
    async fn try_once(
        &self,
        method: &Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .query(query);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Err(self.transport_failure(method, url, error)),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let answer = match response.bytes().await {
            Ok(answer) => answer,
            Err(error) => return Err(self.transport_failure(method, url, error)),
        };
        self.update_stats(|stats| *stats.requests.entry(status.as_str().to_owned()).or_default() += 1);
        tracing::debug!(%method, url, status = status.as_u16(), bytes = answer.len(), "Twenty answered");
        let error_body = (!status.is_success()).then_some(&answer[..]);
        let signal = BudgetSignal::read(&headers, error_body, SystemTime::now());
        self.learn(status, &signal);

        if status.is_success() {
            return serde_json::from_slice(&answer).map_err(|e| {
                Failure::Fatal(ClientError::UnexpectedResponse {
                    method: method.clone(),
                    url: url.to_owned(),
                    status: status.as_u16(),
                    reason: format!("not JSON: {e}"),
                })
            });
        }
        let mut message = error_message(&answer, self.api_key.expose_secret());
        // A validation message could quote what we sent; a subscription's secret must not be echoed.
        if let Some(secret) = body.and_then(|b| b.get("secret")).and_then(Value::as_str)
            && !secret.is_empty()
        {
            message = message.replace(secret, "[redacted]");
        }
        let code = status.as_u16();
        Err(match classify(status, &message) {
            Verdict::RateLimited => Failure::Transient(TransientCause::RateLimited {
                status: code,
                message,
                retry_after: signal.retry_after,
            }),
            Verdict::QuotaExhausted => Failure::Fatal(ClientError::QuotaExhausted {
                method: method.clone(),
                url: url.to_owned(),
                retry_after: signal.retry_after.or(signal.reset_in).and_then(|wait| {
                    chrono::Duration::from_std(wait).ok().map(|wait| chrono::Utc::now() + wait)
                }),
                message,
            }),
            Verdict::Retry => Failure::Transient(TransientCause::Server { status: code, message }),
            Verdict::Success | Verdict::Fail => Failure::Fatal(refusal(method, code, url, message)),
        })
    }

    /// Teaches the pacer what an answer said of Twenty's budget: a wait (`Retry-After`, on a 429 or
    /// a 503), the window's remainder (`X-RateLimit-*`, on any answer), and the budget a 429 states.
    fn learn(&self, status: StatusCode, signal: &BudgetSignal) {
        let code = status.as_u16();
        if let Some(wait) = signal.retry_after
            && matches!(code, 429 | 503)
        {
            self.pacer.hold_for(wait);
        }
        if let (Some(remaining), Some(reset_in)) = (signal.remaining, signal.reset_in)
            && code != 402
        {
            self.pacer.observe_window(signal.limit, remaining, reset_in);
        }
        if let Some(stated) = signal.stated_limit
            && code == 429
        {
            let paced = with_margin(&[stated]).remove(0);
            if self.pacer.adopted() != Some(paced) {
                tracing::info!(limit = %stated, "Twenty states the key's budget; pacing to it as well");
                self.pacer.adopt(paced);
            }
        }
    }

    fn transport_failure(&self, method: &Method, url: &str, error: reqwest::Error) -> Failure {
        self.update_stats(|stats| *stats.requests.entry("error".to_owned()).or_default() += 1);
        if error.is_builder() {
            return Failure::Fatal(ClientError::Settings(format!(
                "cannot build the request {method} {url}: {}",
                error_chain(&error)
            )));
        }
        let cause = if error.is_timeout() {
            TransientCause::Timeout { after: self.timeout }
        } else if error.is_connect() {
            TransientCause::Connection(error_chain(&error))
        } else {
            TransientCause::Transport(error_chain(&error))
        };
        Failure::Transient(cause)
    }
}

/// A reqwest error with its causes, which say what actually failed ("Connection refused"), without
/// the URL, which every message names separately.
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A random fraction in `[0, 1)` for jitter. Every `RandomState` is keyed afresh, so hashing anything
/// with a new one gives an unpredictable number: enough for spreading retries, without a crate.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let bits = RandomState::new().hash_one(0u8);
    // The top 53 bits fill an f64's mantissa exactly.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn only_rate_limits_and_transient_statuses_are_retried() {
        let verdict = |status: u16, message: &str| classify(StatusCode::from_u16(status).unwrap(), message);
        assert_eq!(verdict(200, ""), Verdict::Success);
        assert_eq!(verdict(429, ""), Verdict::RateLimited);
        assert_eq!(verdict(400, "Limit reached (100 tokens per 60000 ms)"), Verdict::RateLimited);
        assert_eq!(verdict(400, "limit reached"), Verdict::RateLimited);
        assert_eq!(verdict(400, "Invalid filter"), Verdict::Fail);
        for status in [500, 502, 503, 504, 408] {
            assert_eq!(verdict(status, ""), Verdict::Retry, "{status}");
        }
        for status in [401, 403, 404, 405, 409, 422, 301] {
            assert_eq!(verdict(status, "Limit reached"), Verdict::Fail, "{status}");
        }
    }

    #[test]
    fn a_post_is_repeated_only_when_twenty_did_not_act() {
        let transient = |cause| Failure::Transient(cause);
        let server = || transient(TransientCause::Server { status: 500, message: String::new() });
        let limited = || {
            transient(TransientCause::RateLimited { status: 429, message: String::new(), retry_after: None })
        };
        let refused = || transient(TransientCause::Connection("refused".into()));
        let timeout = || transient(TransientCause::Timeout { after: ms(10) });
        let broken = || transient(TransientCause::Transport("reset".into()));
        for method in [Method::GET, Method::PATCH] {
            for failure in [server(), limited(), refused(), timeout(), broken()] {
                assert!(Transport::may_retry(&method, &failure), "{method}");
            }
        }
        assert!(Transport::may_retry(&Method::POST, &limited()));
        assert!(Transport::may_retry(&Method::POST, &refused()));
        for failure in [server(), timeout(), broken()] {
            assert!(!Transport::may_retry(&Method::POST, &failure));
        }
        let fatal = Failure::Fatal(ClientError::Settings(String::new()));
        assert!(!Transport::may_retry(&Method::GET, &fatal));
    }

    #[test]
    fn backoff_grows_exponentially_within_its_bounds() {
        let ceilings = |policy: RetryPolicy| policy.schedule().build().collect::<Vec<_>>();
        let policy = RetryPolicy::default();
        assert_eq!(ceilings(policy), [ms(500), ms(1_000), ms(2_000), ms(4_000), ms(8_000)]);
        let patient = RetryPolicy { max_attempts: 9, ..policy };
        let secs = Duration::from_secs;
        assert_eq!(ceilings(patient)[5..], [secs(16), secs(30), secs(30)]);
        assert!(ceilings(RetryPolicy { max_attempts: 1, ..policy }).is_empty());
        let inverted = RetryPolicy { max_attempts: 3, base_delay: secs(60), max_delay: secs(30) };
        assert_eq!(ceilings(inverted), [secs(30), secs(30)], "the first retry is capped too");

        assert_eq!(full_jitter(ms(2_000), 0.0), Duration::ZERO);
        assert_eq!(full_jitter(ms(2_000), 0.5), ms(1_000));
        assert!(full_jitter(ms(2_000), 0.999_999) <= ms(2_000));
        assert_eq!(rate_limited_delay(ms(600), ms(500), 0.0), ms(600));
        assert_eq!(rate_limited_delay(ms(600), ms(1_000), 0.5), ms(1_100));
        for _ in 0..1_000 {
            let f = jitter();
            assert!((0.0..1.0).contains(&f), "{f}");
        }
        assert_ne!(jitter(), jitter());
    }

    #[test]
    fn a_rate_limit_waits_at_least_the_slowest_refill_interval() {
        let transport = |limits: &str| {
            let mut settings = ClientSettings::new("https://api.twenty.com", SecretString::from("k"));
            settings.rate_limits = crate::twenty::pacer::parse_rate_limits(limits).unwrap();
            settings.retry = RetryPolicy { max_attempts: 3, base_delay: ms(1), max_delay: ms(1) };
            Transport::new(&settings).unwrap()
        };
        let limited = Failure::Transient(TransientCause::RateLimited {
            status: 429,
            message: String::new(),
            retry_after: None,
        });
        let server = Failure::Transient(TransientCause::Server { status: 503, message: String::new() });
        // 100/min paced 1% under: a token every 606 ms.
        let paced = transport("100/min,100/s");
        let delay = paced.delay_after(&limited, ms(1));
        assert!((ms(606)..=ms(607)).contains(&delay), "{delay:?}");
        assert!(paced.delay_after(&server, ms(1)) <= ms(1));
        // Without limits of our own, a second.
        let unpaced = transport("off");
        let delay = unpaced.delay_after(&limited, ms(1));
        assert!((ms(1_000)..=ms(1_001)).contains(&delay), "{delay:?}");
    }
}
