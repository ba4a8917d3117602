//! What an answer says about Twenty's budget: `Retry-After` and `X-RateLimit-*` (sent by current
//! releases on successful answers too), and the structured body of a 429 (`retryAfterSeconds`,
//! `limit`, `periodCount`, `periodUnit`). Pure: headers and a body go in, a [`BudgetSignal`] comes out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::Value;

use crate::twenty::pacer::RateLimit;

/// A wait or a window longer than this is not a rate limit's (Twenty's longest is a minute): it is
/// capped here so that a broken header cannot park the client for years.
const MAX_SIGNAL: Duration = Duration::from_secs(86_400);

/// `X-RateLimit-Reset` values below this are a number of seconds from now rather than a Unix time
/// (September 2001): some servers send the IETF draft's delta form under the same name.
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// What one answer told about the budget; every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct BudgetSignal {
    /// Wait at least this long before the next request (`Retry-After`, or `retryAfterSeconds`).
    pub(super) retry_after: Option<Duration>,
    /// The window's size (`X-RateLimit-Limit`).
    pub(super) limit: Option<u32>,
    /// Requests left in the window (`X-RateLimit-Remaining`).
    pub(super) remaining: Option<u32>,
    /// Time until the window resets (`X-RateLimit-Reset`, epoch seconds).
    pub(super) reset_in: Option<Duration>,
    /// The limit as the body of a 429 states it: `limit` requests per `periodCount periodUnit`.
    pub(super) stated_limit: Option<RateLimit>,
}

impl BudgetSignal {
    /// Reads the headers of any answer, and the body of a 429 or a 402.
    pub(super) fn read(headers: &HeaderMap, body: Option<&[u8]>, now: SystemTime) -> BudgetSignal {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let number = |name: &str| header(name).and_then(|v| v.parse::<u64>().ok());
        let body: Option<Value> = body.and_then(|b| serde_json::from_slice(b).ok());
        let field = |key: &str| body.as_ref().and_then(|b| b.get(key));
        let retry_after = header(RETRY_AFTER.as_str())
            .and_then(seconds)
            .or_else(|| field("retryAfterSeconds").and_then(Value::as_f64).and_then(secs_f64));
        let reset_in = number("x-ratelimit-reset").and_then(|reset| {
            if reset < EPOCH_THRESHOLD {
                return Some(Duration::from_secs(reset));
            }
            let now = now.duration_since(UNIX_EPOCH).ok()?;
            Duration::from_secs(reset).checked_sub(now)
        });
        let stated_limit = (|| {
            let requests = u32::try_from(field("limit")?.as_u64()?).ok()?;
            let count = field("periodCount").and_then(Value::as_u64).unwrap_or(1);
            let unit = period_unit(field("periodUnit")?.as_str()?)?;
            let limit = RateLimit::new(requests, unit.checked_mul(u32::try_from(count).ok()?)?);
            limit.validate().ok().map(|()| limit)
        })();
        BudgetSignal {
            retry_after: retry_after.map(cap),
            limit: number("x-ratelimit-limit").and_then(|n| u32::try_from(n).ok()),
            remaining: number("x-ratelimit-remaining").and_then(|n| u32::try_from(n).ok()),
            reset_in: reset_in.map(cap),
            stated_limit,
        }
    }
}

fn cap(wait: Duration) -> Duration {
    wait.min(MAX_SIGNAL)
}

/// `Retry-After` in seconds (Twenty's form; fractions accepted). The HTTP-date form is not read:
/// Twenty does not send it, and then the client paces itself as it does without the header.
fn seconds(value: &str) -> Option<Duration> {
    value.parse::<f64>().ok().and_then(secs_f64)
}

fn secs_f64(value: f64) -> Option<Duration> {
    (value.is_finite() && value >= 0.0).then(|| Duration::from_secs_f64(value.min(MAX_SIGNAL.as_secs_f64())))
}

/// Twenty's `periodUnit` (`SECOND`, `MINUTE`, …), in any case, singular or plural.
fn period_unit(unit: &str) -> Option<Duration> {
    let unit = unit.trim().to_ascii_lowercase();
    let millis = match unit.strip_suffix('s').unwrap_or(&unit) {
        "millisecond" => 1,
        "second" => 1_000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn current_twenty_headers_and_body_are_read() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let body = json!({
            "statusCode": 429, "error": "RATE_LIMITED", "messages": ["Too many requests"],
            "limitKind": "RATE", "scope": {"spenderType": "API_KEY", "spenderId": "k", "operationType": "READ"},
            "limit": 20, "remaining": 0, "periodCount": 1, "periodUnit": "MINUTE", "retryAfterSeconds": 7
        })
        .to_string();
        let signal = BudgetSignal::read(
            &headers(&[
                ("retry-after", "7"),
                ("x-ratelimit-limit", "20"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1800000007"),
            ]),
            Some(body.as_bytes()),
            now,
        );
        assert_eq!(
            signal,
            BudgetSignal {
                retry_after: Some(Duration::from_secs(7)),
                limit: Some(20),
                remaining: Some(0),
                reset_in: Some(Duration::from_secs(7)),
                stated_limit: Some(RateLimit::new(20, Duration::from_secs(60))),
            }
        );
    }

    #[test]
    fn older_answers_say_nothing_and_odd_values_are_ignored_or_capped() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let old = br#"{"statusCode":429,"messages":["Limit reached (100 tokens per 60000 ms)"]}"#;
        assert_eq!(BudgetSignal::read(&HeaderMap::new(), Some(old), now), BudgetSignal::default());
        let odd = headers(&[
            ("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT"),
            ("x-ratelimit-remaining", "-1"),
            ("x-ratelimit-reset", "1700000000"),
        ]);
        assert_eq!(BudgetSignal::read(&odd, None, now), BudgetSignal::default(), "a reset in the past");
        let body = br#"{"retryAfterSeconds": 1.5, "limit": 5, "periodCount": 2, "periodUnit": "seconds"}"#;
        let signal = BudgetSignal::read(&headers(&[("x-ratelimit-reset", "30")]), Some(body), now);
        assert_eq!(signal.retry_after, Some(Duration::from_millis(1_500)));
        assert_eq!(signal.reset_in, Some(Duration::from_secs(30)), "the delta form");
        assert_eq!(signal.stated_limit, Some(RateLimit::new(5, Duration::from_secs(2))));
        let huge = BudgetSignal::read(&headers(&[("retry-after", "99999999999")]), None, now);
        assert_eq!(huge.retry_after, Some(MAX_SIGNAL));
        let zero = br#"{"limit": 0, "periodUnit": "minute"}"#;
        assert_eq!(BudgetSignal::read(&HeaderMap::new(), Some(zero), now).stated_limit, None);
    }
}
