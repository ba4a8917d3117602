//! Twenty's REST API, as the mirror reads it: object discovery from the metadata API, pages of
//! records, and the webhook subscription; paced under the workspace's rate limits, retried when the
//! failure is transient, and failing at once, with a message an operator can act on, when it is not.
//!
//! - `transport`: sending, pacing, the answer classifier, retries and backoff;
//! - `error`: [`ClientError`], [`TransientCause`] and what they tell the operator;
//! - `records`, `metadata`, `subscriptions`: one family of endpoints each;
//! - `wire`: Twenty's JSON read into [`Page`], [`ObjectMetadata`], [`Subscription`].
//!
//! Retry policy, by answer:
//! - 429, and 400 "Limit reached …" from older releases: Twenty's budget is spent. The pacer's
//!   buckets are emptied (our count re-syncs with the server's). With `Retry-After` (or the body's
//!   `retryAfterSeconds`) every request waits that long, the retry included; without it the retry
//!   waits at least one refill interval of the slowest limit (a second when there is none), plus
//!   exponential backoff with jitter. A budget the 429's body states is adopted by the pacer.
//! - `X-RateLimit-Remaining` and `X-RateLimit-Reset`, on any answer: when few requests remain, the
//!   pacer spreads them until the reset (see `budget` and the pacer).
//! - 402: the workspace's quota is spent; never retried ([`ClientError::QuotaExhausted`]).
//! - 5xx, 408, timeouts, refused or broken connections: exponential backoff with full jitter.
//! - Every other 4xx fails at once: retrying cannot fix a refused key or a wrong path.
//!
//! Every retry counts against `RetryPolicy::max_attempts`. The API key goes out as a bearer token on
//! every call; it is kept in a `SecretString` and a header value marked sensitive, and it is scrubbed
//! from anything Twenty echoes back, so it never reaches `Debug` output, errors or logs.

mod budget;
mod error;
mod metadata;
mod paths;
mod records;
mod subscriptions;
mod transport;
mod wire;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::Url;
use secrecy::SecretString;

pub use self::error::{ClientError, TransientCause};
use self::transport::Transport;
pub use self::transport::{ClientStats, RetryPolicy};
pub use self::wire::{ObjectMetadata, Page, Subscription, SubscriptionFields};
pub use super::pacer::{RateLimit, parse_rate_limits};

/// Records per page. Twenty clamps `limit` to 200, so this is the fewest requests a pass can make.
pub const PAGE_SIZE: u32 = 200;

/// A workspace has a few dozen objects and subscriptions; at 200 a page this bound is only reached
/// by a server that keeps answering "there is more".
const MAX_METADATA_PAGES: usize = 50;

/// How to reach Twenty and how hard to try.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The API's base URL, e.g. `https://api.twenty.com` or `https://crm.example.com`; a trailing
    /// slash is optional, and a path prefix is kept.
    pub base_url: String,
    pub api_key: SecretString,
    /// Our own budget; every limit applies. Empty means no pacing.
    pub rate_limits: Vec<RateLimit>,
    /// For one whole request, until the last byte of the body.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl ClientSettings {
    /// Settings with the defaults: Twenty's own limits (100 a minute and 100 a second), a 30 s timeout
    /// and the default retry policy.
    pub fn new(base_url: impl Into<String>, api_key: SecretString) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            rate_limits: RateLimit::twenty_defaults(),
            // A page of 200 records at depth 0 is a few hundred kilobytes; 30 s leaves room for a slow
            // database behind Twenty without hanging a run on a dead connection.
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// A client for one workspace. Cheap to clone; clones share the connection pool, the rate-limit
/// budget and the stats.
#[derive(Clone)]
pub struct TwentyClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// Without a trailing slash; paths start with one.
    base: String,
    transport: Transport,
    /// The path of the webhook subscription API once a request has found it: every clone of the
    /// client asks one server, so the answer holds for the client's whole life.
    webhooks_path: OnceLock<&'static str>,
}

impl fmt::Debug for TwentyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = &self.inner.transport;
        f.debug_struct("TwentyClient")
            .field("base_url", &self.inner.base)
            .field("rate_limits", &transport.rate_limits())
            .field("timeout", &transport.timeout)
            .field("retry", &transport.retry)
            .finish_non_exhaustive()
    }
}

impl TwentyClient {
    pub fn new(settings: ClientSettings) -> Result<Self, ClientError> {
        let base = parse_base_url(&settings.base_url)?;
        let transport = Transport::new(&settings)?;
        Ok(Self { inner: Arc::new(Inner { base, transport, webhooks_path: OnceLock::new() }) })
    }

    /// The base URL requests go to, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// A snapshot of the counters shared by every clone of this client.
    pub fn stats(&self) -> ClientStats {
        self.inner.transport.stats()
    }

    fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base)
    }
}

/// Checks the base URL and returns it without a trailing slash.
fn parse_base_url(value: &str) -> Result<String, ClientError> {
    // The value is echoed only when it cannot carry a password.
    let shown = if value.contains('@') { String::new() } else { format!(" {value:?}") };
    let invalid = |why: &str| ClientError::Settings(format!("TWENTY_API_URL{shown} {why}"));
    let url = Url::parse(value.trim()).map_err(|e| invalid(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must start with https:// (or http://)"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry a user name or password; the API key is sent separately"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or a fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "test-key-s3cr3t";

    #[test]
    fn settings_are_checked_and_the_key_stays_secret() {
        let settings = |url: &str, key: &str| ClientSettings::new(url, SecretString::from(key.to_owned()));
        let client = TwentyClient::new(settings("https://api.twenty.com/", KEY)).unwrap();
        assert_eq!(client.base_url(), "https://api.twenty.com");
        let prefixed = TwentyClient::new(settings("http://crm.local:3000/twenty/", KEY)).unwrap();
        assert_eq!(prefixed.base_url(), "http://crm.local:3000/twenty");
        let debug = format!("{client:?} {:?}", settings("https://api.twenty.com", KEY));
        assert!(!debug.contains(KEY), "{debug}");
        assert!(debug.contains("rate_limits") && debug.contains("retry"), "{debug}");

        for (url, key) in [
            ("api.twenty.com", KEY),
            ("ftp://api.twenty.com", KEY),
            ("https://user:pw@api.twenty.com", KEY),
            ("https://api.twenty.com?x=1", KEY),
            ("https://api.twenty.com", "  "),
            ("https://api.twenty.com", "abc\ndef"),
        ] {
            let error = TwentyClient::new(settings(url, key)).expect_err(url).to_string();
            assert!(!error.contains("abc") && !error.contains("pw@"), "{error}");
        }
        let mut bad = settings("https://api.twenty.com", KEY);
        bad.retry.max_attempts = 0;
        assert!(TwentyClient::new(bad).is_err());
        let mut bad = settings("https://api.twenty.com", KEY);
        bad.timeout = Duration::ZERO;
        assert!(TwentyClient::new(bad).is_err());
        let mut bad = settings("https://api.twenty.com", KEY);
        bad.rate_limits = vec![RateLimit::new(0, Duration::from_secs(1))];
        assert!(TwentyClient::new(bad).is_err());
    }
}
