//! What stands between a request and its answer: token buckets for the rate limits, and the
//! faults a test injects into record reads.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;

use super::Fault;
use super::routes::{error, unauthorized};
use super::state::State;

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

impl State {
    /// Takes a token from every bucket, or answers the over-the-limit response.
    pub(super) fn throttle(&mut self) -> Option<HttpResponse> {
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
