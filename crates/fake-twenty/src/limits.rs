//! What stands between a request and its answer: token buckets for the rate limits (older releases:
//! no headers), a per-key limit as current releases answer it (fixed windows, `Retry-After` and
//! `X-RateLimit-*` on every answer), a quota that runs out, and the faults a test injects.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use chrono::Utc;
use serde_json::json;

use super::routes::{error, unauthorized};
use super::state::State;
use super::{FakeTwenty, Fault};

/// A token bucket of capacity `limit`, refilled continuously at `limit / window`.
pub(super) struct Bucket {
    limit: u32,
    window: Duration,
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    /// A bucket that starts full at `now`.
    pub(super) fn full(limit: u32, window: Duration, now: Instant) -> Bucket {
        Bucket { limit, window, tokens: f64::from(limit), refilled_at: now }
    }

    fn refill(&mut self, now: Instant) {
        let per_sec = f64::from(self.limit) / self.window.as_secs_f64().max(1e-9);
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(f64::from(self.limit));
        self.refilled_at = now;
    }

    fn describe(&self) -> String {
        format!("Limit reached ({} tokens per {} ms)", self.limit, self.window.as_millis())
    }
}

/// A per-key limit of current releases: `limit` requests in each window of `window_secs` seconds,
/// windows aligned to the Unix epoch so that `X-RateLimit-Reset` (epoch seconds) is exact.
struct KeyLimit {
    limit: u32,
    window_secs: u64,
    window: u64,
    used: u32,
}

impl KeyLimit {
    fn resets_at_ms(&self) -> i64 {
        i64::try_from((self.window + 1) * self.window_secs * 1_000).unwrap_or(i64::MAX)
    }

    fn headers(&self) -> [(HeaderName, String); 3] {
        [
            (HeaderName::from_static("x-ratelimit-limit"), self.limit.to_string()),
            (HeaderName::from_static("x-ratelimit-remaining"), (self.limit - self.used).to_string()),
            (HeaderName::from_static("x-ratelimit-reset"), (self.resets_at_ms() / 1_000).to_string()),
        ]
    }
}

/// A quota that is spent after `allowed` requests: 402 from then on.
struct Quota {
    allowed: usize,
    served: usize,
    retry_after_secs: Option<u64>,
}

/// The per-key limit and the quota; neither is set by default.
#[derive(Default)]
pub(super) struct Usage {
    key_limit: Option<KeyLimit>,
    quota: Option<Quota>,
}

impl Usage {
    /// Counts one request, or answers the 402 or the 429 it meets.
    fn charge(&mut self) -> Option<HttpResponse> {
        if let Some(quota) = &mut self.quota {
            if quota.served >= quota.allowed {
                let mut body = json!({"statusCode": 402, "error": "QUOTA_EXCEEDED",
                    "messages": ["The workspace has used its API quota for this period"]});
                let mut response = HttpResponse::PaymentRequired();
                if let Some(secs) = quota.retry_after_secs {
                    body["retryAfterSeconds"] = json!(secs);
                    response.insert_header((RETRY_AFTER, secs.to_string()));
                }
                return Some(response.json(body));
            }
            quota.served += 1;
        }
        let limit = self.key_limit.as_mut()?;
        let now_ms = Utc::now().timestamp_millis();
        let window = u64::try_from(now_ms).unwrap_or(0) / 1_000 / limit.window_secs;
        if window != limit.window {
            limit.window = window;
            limit.used = 0;
        }
        if limit.used < limit.limit {
            limit.used += 1;
            return None;
        }
        let wait_secs = (limit.resets_at_ms() - now_ms + 999) / 1_000;
        let mut response = HttpResponse::TooManyRequests();
        response.insert_header((RETRY_AFTER, wait_secs.to_string()));
        for header in limit.headers() {
            response.insert_header(header);
        }
        Some(response.json(rate_limited_body(limit.limit, limit.window_secs, wait_secs)))
    }

    /// `X-RateLimit-*` on every answer but a 402, as current releases send them.
    pub(super) fn add_headers(&self, response: &mut HttpResponse) {
        let Some(limit) = &self.key_limit else { return };
        if response.status() == StatusCode::PAYMENT_REQUIRED {
            return;
        }
        for (name, value) in limit.headers() {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
}

/// The body of a current release's 429.
fn rate_limited_body(limit: u32, window_secs: u64, wait_secs: i64) -> serde_json::Value {
    json!({
        "statusCode": 429, "error": "RATE_LIMITED", "messages": ["Rate limit exceeded for this API key"],
        "limitKind": "RATE", "scope": {"spenderType": "API_KEY", "spenderId": "fake-key", "operationType": "ALL"},
        "limit": limit, "remaining": 0, "periodCount": window_secs, "periodUnit": "SECOND",
        "retryAfterSeconds": wait_secs,
    })
}

impl FakeTwenty {
    /// A per-key limit as current releases enforce it: `limit` requests per window of `window_secs`
    /// seconds (fixed windows), `X-RateLimit-*` on every answer, and over it a 429 with
    /// `Retry-After` and the structured body. `None` removes it. Independent of the token buckets.
    pub fn set_key_limit(&self, limit: Option<(u32, u64)>) {
        self.lock().usage.key_limit = limit.map(|(limit, window_secs)| KeyLimit {
            limit,
            window_secs: window_secs.max(1),
            window: 0,
            used: 0,
        });
    }

    /// After `allowed` more authenticated requests, every request answers 402 (the workspace's quota
    /// is spent), with `Retry-After` and `retryAfterSeconds` when `retry_after_secs` is given.
    pub fn set_quota(&self, allowed: usize, retry_after_secs: Option<u64>) {
        self.lock().usage.quota = Some(Quota { allowed, served: 0, retry_after_secs });
    }
}

impl State {
    /// Meets the quota and the per-key limit, then takes a token from every bucket, or answers the
    /// over-the-limit response.
    pub(super) fn throttle(&mut self) -> Option<HttpResponse> {
        if let Some(refusal) = self.usage.charge() {
            return Some(refusal);
        }
        let now = Instant::now();
        for bucket in &mut self.buckets {
            bucket.refill(now);
        }
        if let Some(empty) = self.buckets.iter().find(|b| b.tokens < 1.0) {
            let message = empty.describe();
            return Some(if self.limit_reached_as_400 {
                error(400, "BadRequestException", message)
            } else {
                error(429, "TooManyRequestsException", message)
            });
        }
        for bucket in &mut self.buckets {
            bucket.tokens -= 1.0;
        }
        None
    }

    pub(super) fn take_fault(&mut self) -> Option<Fault> {
        if let Some(fault) = &self.fail_always {
            return Some(fault.clone());
        }
        pop_fault(&mut self.faults)
    }

    /// The next fault injected for the subscription API.
    pub(super) fn take_webhook_fault(&mut self) -> Option<Fault> {
        pop_fault(&mut self.webhook_faults)
    }
}

/// The next fault of an injection queue, counting it down.
fn pop_fault(queue: &mut VecDeque<(Fault, usize)>) -> Option<Fault> {
    let (fault, remaining) = queue.front_mut()?;
    let fault = fault.clone();
    *remaining -= 1;
    if *remaining == 0 {
        queue.pop_front();
    }
    Some(fault)
}

/// The answer to a request that meets an injected fault (not a delay, which is no answer).
pub(super) fn fault_response(fault: &Fault) -> HttpResponse {
    match fault {
        Fault::Status(401) => unauthorized(),
        Fault::Status(429) => {
            error(429, "TooManyRequestsException", "Limit reached (100 tokens per 60000 ms)")
        }
        &Fault::RetryAfter(secs) => {
            let wait = i64::try_from(secs).unwrap_or(i64::MAX);
            let reset = Utc::now().timestamp() + wait;
            HttpResponse::TooManyRequests()
                .insert_header((RETRY_AFTER, secs.to_string()))
                .insert_header(("x-ratelimit-limit", "100"))
                .insert_header(("x-ratelimit-remaining", "0"))
                .insert_header(("x-ratelimit-reset", reset.to_string()))
                .json(rate_limited_body(100, 60, wait))
        }
        Fault::LimitReached400 => {
            error(400, "BadRequestException", "Limit reached (100 tokens per 60000 ms)")
        }
        &Fault::Status(status @ (502..=504)) => {
            let code = StatusCode::from_u16(status).expect("a valid status");
            let reason = code.canonical_reason().unwrap_or("Error");
            HttpResponse::build(code).insert_header((CONTENT_TYPE, "text/html")).body(format!(
                "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n\
                 <center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
            ))
        }
        &Fault::Status(status) => {
            let name = match status {
                400 => "BadRequestException",
                403 => "ForbiddenException",
                404 => "NotFoundException",
                500 => "InternalServerErrorException",
                _ => "HttpException",
            };
            let message = StatusCode::from_u16(status)
                .ok()
                .and_then(|code| code.canonical_reason())
                .unwrap_or("Injected fault");
            error(status, name, message)
        }
        Fault::Body(body) => HttpResponse::Ok().content_type("application/json").body(body.clone()),
        Fault::Delay(_) => unreachable!("a delay is not an answer"),
        Fault::Quoting(_) => unreachable!("answered by `quoting`, which sees the request"),
    }
}
