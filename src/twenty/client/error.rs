//! Why a call to Twenty failed, said so that an operator can act on it: which setting to check, which
//! permission to grant, whether trying again later may help. No message carries the API key or a
//! subscription's secret.

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::paths::is_webhooks_url;

/// Twenty's error messages can quote whole filters or records: keep enough to act on, not a dump.
const MAX_MESSAGE_CHARS: usize = 300;

/// Why a request that may succeed later failed this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransientCause {
    /// Twenty's rate limit: HTTP 429, or 400 "Limit reached" from older releases.
    RateLimited { status: u16, message: String },
    /// HTTP 5xx or 408.
    Server { status: u16, message: String },
    /// No complete answer within the timeout.
    Timeout { after: Duration },
    /// The connection could not be made (refused, unreachable, DNS, TLS).
    Connection(String),
    /// The connection broke while the request or the answer was under way.
    Transport(String),
}

impl TransientCause {
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, TransientCause::RateLimited { .. })
    }

    /// Whether Twenty certainly did not carry the request out: it refused it for the rate limit, or
    /// the connection was never made. Only then may a request that is not idempotent be sent again.
    pub(super) fn was_not_carried_out(&self) -> bool {
        matches!(self, TransientCause::RateLimited { .. } | TransientCause::Connection(_))
    }
}

impl fmt::Display for TransientCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransientCause::RateLimited { status, message } => {
                write!(
                    f,
                    "Twenty's rate limit was reached (HTTP {status}: {message}); if this lasts, something \
                     else spends the workspace's budget or TWENTY_RATE_LIMIT is above the server's limit"
                )
            }
            TransientCause::Server { status, message } => write!(f, "HTTP {status} from Twenty: {message}"),
            TransientCause::Timeout { after } => write!(f, "no complete answer within {after:?}"),
            TransientCause::Connection(detail) => write!(f, "cannot connect: {detail}"),
            TransientCause::Transport(detail) => write!(f, "the connection failed: {detail}"),
        }
    }
}

/// Why a call to Twenty failed. `Display` says what to do about it; none of them contains the key.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid Twenty client settings: {0}")]
    Settings(String),
    #[error("{0:?} is not an object's plural name as the metadata API gives it (letters and digits only)")]
    InvalidObjectName(String),
    #[error("{0:?} is not a webhook subscription id (letters, digits and dashes only)")]
    InvalidSubscriptionId(String),
    #[error(
        "Twenty refused the API key (HTTP 401 on {method} {url}): TWENTY_API_KEY is wrong or revoked; \
         create a key in Twenty under Settings → APIs & Webhooks{}",
        says(.message)
    )]
    Unauthorized { method: Method, url: String, message: String },
    #[error("the API key may not {method} {url} (HTTP 403): {}{}", forbidden_hint(.url), says(.message))]
    Forbidden { method: Method, url: String, message: String },
    #[error("{method} {url} does not exist (HTTP 404): {}{}", not_found_hint(.url), says(.message))]
    NotFound { method: Method, url: String, message: String },
    #[error("Twenty rejected {method} {url} (HTTP {status}): {message}")]
    Rejected { method: Method, url: String, status: u16, message: String },
    #[error("{method} {url} failed {attempts} times; the last time: {cause}")]
    Exhausted { method: Method, url: String, attempts: u32, cause: TransientCause },
    /// A request that is not safe to repeat (a POST that creates something) failed in a way that
    /// leaves open whether Twenty carried it out, so it was not sent again.
    #[error(
        "{method} {url} failed ({cause}) and was not retried, because Twenty may have carried it out; \
         look before trying again"
    )]
    NotRetried { method: Method, url: String, cause: TransientCause },
    #[error(
        "{method} {url} answered HTTP {status} with a body Twenty does not send ({reason}); check that \
         TWENTY_API_URL is the address of Twenty's API"
    )]
    UnexpectedResponse { method: Method, url: String, status: u16, reason: String },
    /// HTTP 402: the workspace has used up its quota. Trying again sooner cannot help, so it is never
    /// retried.
    #[error(
        "the Twenty workspace's quota is exhausted (HTTP 402): {}{}",
        quota_retry_hint(*.retry_after),
        says(.message)
    )]
    QuotaExhausted { retry_after: Option<Duration>, message: String },
}

impl ClientError {
    /// The HTTP status of the (last) answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Unauthorized { .. } => Some(401),
            ClientError::QuotaExhausted { .. } => Some(402),
            ClientError::Forbidden { .. } => Some(403),
            ClientError::NotFound { .. } => Some(404),
            ClientError::Rejected { status, .. } | ClientError::UnexpectedResponse { status, .. } => {
                Some(*status)
            }
            ClientError::Exhausted {
                cause: TransientCause::RateLimited { status, .. } | TransientCause::Server { status, .. },
                ..
            }
            | ClientError::NotRetried {
                cause: TransientCause::RateLimited { status, .. } | TransientCause::Server { status, .. },
                ..
            } => Some(*status),
            _ => None,
        }
    }

    /// Whether the request failed only because retries ran out on a transient cause, so that a later
    /// run may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Exhausted { .. } | ClientError::NotRetried { .. })
    }

    /// Whether Twenty refused for the workspace's quota: nothing sent before the quota renews can
    /// succeed.
    pub fn is_quota_exhausted(&self) -> bool {
        matches!(self, ClientError::QuotaExhausted { .. })
    }
}

fn quota_retry_hint(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(wait) => format!("Twenty says to try again in {}s", wait.as_secs()),
        None => "Twenty did not say when it may be tried again; raise the plan's limits or wait for the \
                 quota to renew"
            .to_owned(),
    }
}

/// What a 403 asks of the operator: the subscription API needs another permission than records do.
fn forbidden_hint(url: &str) -> &'static str {
    if is_webhooks_url(url) {
        "give the key's role the permission to manage API keys and webhooks (Settings → Roles)"
    } else {
        "give the key's role read access to this object"
    }
}

fn not_found_hint(url: &str) -> &'static str {
    if is_webhooks_url(url) {
        "check TWENTY_API_URL, and that the webhook subscription exists"
    } else {
        "check TWENTY_API_URL and that the object exists and is active"
    }
}

fn says(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!("; Twenty says: {message}") }
}

/// Maps a status that no retry can fix to the error that says what to do.
pub(super) fn refusal(method: &Method, status: u16, url: &str, message: String) -> ClientError {
    let (method, url) = (method.clone(), url.to_owned());
    match status {
        401 => ClientError::Unauthorized { method, url, message },
        // Twenty's quota answers carry no rate-limit headers: when it renews is not said.
        402 => ClientError::QuotaExhausted { retry_after: None, message },
        403 => ClientError::Forbidden { method, url, message },
        404 => ClientError::NotFound { method, url, message },
        _ => ClientError::Rejected {
            method,
            url,
            status,
            message: if message.is_empty() { "no message".to_owned() } else { message },
        },
    }
}

/// A successful GET whose body is not what Twenty sends.
pub(super) fn unexpected(url: &str, reason: String) -> ClientError {
    unexpected_answer(Method::GET, url, 200, reason)
}

pub(super) fn unexpected_answer(method: Method, url: &str, status: u16, reason: String) -> ClientError {
    ClientError::UnexpectedResponse { method, url: url.to_owned(), status, reason }
}

/// The human part of an error answer: Twenty's `messages`, or NestJS's `message`, or the `error`
/// name, or the body's text; with the API key scrubbed and at most `MAX_MESSAGE_CHARS` long.
pub(super) fn error_message(body: &[u8], api_key: &str) -> String {
    let strings = |value: &Value| -> Option<String> {
        match value {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Array(items) => {
                let parts: Vec<&str> = items.iter().filter_map(Value::as_str).map(str::trim).collect();
                (!parts.is_empty()).then(|| parts.join("; "))
            }
            _ => None,
        }
    };
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => ["messages", "message", "error"]
            .iter()
            .find_map(|key| object.get(*key).and_then(strings))
            .unwrap_or_default(),
        _ => String::from_utf8_lossy(body).split_whitespace().collect::<Vec<_>>().join(" "),
    };
    let text = if api_key.is_empty() { text } else { text.replace(api_key, "[redacted]") };
    truncate(text, MAX_MESSAGE_CHARS)
}

fn truncate(mut text: String, max_chars: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "test-key-s3cr3t";

    #[test]
    fn error_bodies_give_their_messages() {
        let twenty =
            br#"{"statusCode":400,"error":"BadRequestException","messages":["Invalid filter","near ["]}"#;
        assert_eq!(error_message(twenty, KEY), "Invalid filter; near [");
        let nest = br#"{"statusCode":403,"message":"Forbidden resource","error":"Forbidden"}"#;
        assert_eq!(error_message(nest, KEY), "Forbidden resource");
        let name_only = br#"{"statusCode":500,"error":"InternalServerError"}"#;
        assert_eq!(error_message(name_only, KEY), "InternalServerError");
        assert_eq!(
            error_message(b"<html>\n  <h1>502 Bad Gateway</h1>\n</html>", KEY),
            "<html> <h1>502 Bad Gateway</h1> </html>"
        );
        assert_eq!(error_message(b"", KEY), "");

        let long = json!({"messages": ["é".repeat(1_000)]}).to_string();
        let message = error_message(long.as_bytes(), KEY);
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));

        let echoed = format!(r#"{{"messages":["Token {KEY} is invalid"]}}"#);
        assert_eq!(error_message(echoed.as_bytes(), KEY), "Token [redacted] is invalid");
    }

    #[test]
    fn refusals_say_what_to_do_for_records_and_for_subscriptions() {
        let records = "https://crm.example/rest/people";
        let webhooks = "https://crm.example/rest/metadata/webhooks";
        let legacy = "https://crm.example/rest/webhooks/w1";
        let text = |status: u16, url: &str| refusal(&Method::GET, status, url, "nope".to_owned()).to_string();

        assert!(text(401, records).contains("TWENTY_API_KEY"));
        assert!(text(403, records).contains("read access to this object"));
        assert!(text(403, webhooks).contains("manage API keys and webhooks"));
        assert!(text(403, legacy).contains("manage API keys and webhooks"));
        assert!(text(404, records).contains("the object exists and is active"));
        assert!(text(404, legacy).contains("the webhook subscription exists"));
        assert!(text(404, records).ends_with("; Twenty says: nope"));
        let silent = refusal(&Method::GET, 422, records, String::new());
        assert_eq!(silent.status(), Some(422));
        assert!(silent.to_string().ends_with("no message"), "{silent}");
        assert!(!silent.is_transient());

        let quota = refusal(&Method::GET, 402, records, "Quota exceeded".to_owned());
        assert!(quota.is_quota_exhausted() && !quota.is_transient());
        assert_eq!(quota.status(), Some(402));
        assert!(quota.to_string().contains("quota is exhausted"), "{quota}");
        let later = ClientError::QuotaExhausted {
            retry_after: Some(Duration::from_secs(90)),
            message: String::new(),
        };
        assert!(later.to_string().contains("try again in 90s"), "{later}");

        let cause = TransientCause::RateLimited { status: 429, message: "slow down".into() };
        let exhausted =
            ClientError::Exhausted { method: Method::GET, url: records.into(), attempts: 6, cause };
        assert_eq!(exhausted.status(), Some(429));
        assert!(exhausted.is_transient());
        assert!(exhausted.to_string().contains("TWENTY_RATE_LIMIT"), "{exhausted}");
        let cause = TransientCause::Timeout { after: Duration::from_secs(30) };
        let not_retried = ClientError::NotRetried { method: Method::POST, url: webhooks.into(), cause };
        assert_eq!(not_retried.status(), None);
        assert!(not_retried.is_transient());
    }
}
