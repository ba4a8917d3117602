//! Twenty's REST API, as the reconciler reads it: object discovery from the metadata API and pages of
//! records, paced under the workspace's rate limits, retried when the failure is transient, and failing
//! at once, with a message an operator can act on, when it is not.
//!
//! Retry policy, by answer:
//! - 429, and 400 "Limit reached …" from older releases: Twenty's budget is spent. Twenty sends no
//!   `Retry-After`, so the pacer's buckets are emptied (our count re-syncs with the server's) and the
//!   request is retried after at least one refill interval of the slowest limit (the base delay when
//!   there is no limit), plus exponential backoff with jitter.
//! - 5xx, 408, timeouts, refused or broken connections: exponential backoff with full jitter.
//! - Every other 4xx fails at once: retrying cannot fix a refused key or a wrong path.
//!
//! Every retry counts against `RetryPolicy::max_attempts`. The API key goes out as a bearer token on
//! every call; it is kept in a `SecretString` and a header value marked sensitive, and it is scrubbed
//! from anything Twenty echoes back, so it never reaches `Debug` output, errors or logs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pacer::Pacer;
pub use super::pacer::{RateLimit, parse_rate_limits};

/// Records per page. Twenty clamps `limit` to 200, so this is the fewest requests a pass can make.
pub const PAGE_SIZE: u32 = 200;

/// Twenty's error messages can quote whole filters or records: keep enough to act on, not a dump.
const MAX_MESSAGE_CHARS: usize = 300;

/// A reachable host accepts a connection in well under a second; waiting longer than this only
/// delays the retry of a dead one. The per-request timeout still bounds slow answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A workspace has a few dozen objects; at 200 a page this bound is only reached by a server that
/// keeps answering "there is more".
const MAX_METADATA_PAGES: usize = 50;

const METADATA_OBJECTS_PATH: &str = "/rest/metadata/objects";

/// Where current releases serve webhook subscriptions.
const METADATA_WEBHOOKS_PATH: &str = "/rest/metadata/webhooks";
/// Where older releases served them (webhooks were records of a workspace object then); tried when
/// the metadata path answers 404.
const LEGACY_WEBHOOKS_PATH: &str = "/rest/webhooks";

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
    /// The backoff ceiling after failed attempt number `attempt` (1-based): `base_delay × 2^(attempt−1)`,
    /// at most `max_delay`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base_delay.saturating_mul(1 << doublings).min(self.max_delay)
    }

    /// "Full jitter": a delay drawn uniformly below the ceiling, `fraction` in `[0, 1)`. Spreading the
    /// retries keeps concurrent callers from hitting a recovering server in lockstep.
    pub fn backoff(&self, attempt: u32, fraction: f64) -> Duration {
        self.ceiling(attempt).mul_f64(fraction.clamp(0.0, 1.0))
    }

    /// The delay after Twenty said its budget is spent: at least `floor` (one refill interval of the
    /// slowest limit, the least time until the server has a token again), plus the jittered backoff,
    /// which grows in case something else is spending the same workspace's budget.
    pub fn rate_limited_delay(&self, attempt: u32, floor: Duration, fraction: f64) -> Duration {
        floor.saturating_add(self.backoff(attempt, fraction))
    }
}

/// One object type, as the metadata API describes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetadata {
    pub id: String,
    /// The name webhooks use (`person`).
    pub name_singular: String,
    /// The name REST paths use (`people`).
    pub name_plural: String,
    #[serde(default)]
    pub label_singular: String,
    #[serde(default)]
    pub label_plural: String,
    // Every known release sends the three flags; should one go missing, the defaults describe an
    // ordinary active standard object rather than dropping it from the mirror.
    #[serde(default)]
    pub is_custom: bool,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default)]
    pub is_system: bool,
    /// The fields as Twenty sends them (`id, name, type, isNullable, isActive, isSystem, options,
    /// relation`, …); an empty list when absent.
    #[serde(default = "empty_list")]
    pub fields: Value,
}

impl ObjectMetadata {
    /// Whether the mirror follows this object unless told otherwise: active and not a system object.
    pub fn is_mirrored_by_default(&self) -> bool {
        self.is_active && !self.is_system
    }
}

fn yes() -> bool {
    true
}

fn empty_list() -> Value {
    Value::Array(Vec::new())
}

/// One page of records, flat (depth 0), every key kept as Twenty sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Value>,
    pub has_next_page: bool,
    /// The cursor to pass as `starting_after` for the next page; `None` on an empty page.
    pub end_cursor: Option<String>,
    /// Every record matching the filter, regardless of the cursor.
    pub total_count: Option<u64>,
}

/// A webhook subscription: where Twenty sends which events, and the secret it signs them with.
#[derive(Clone)]
pub struct Subscription {
    pub id: String,
    pub target_url: String,
    /// `<object>.<action>`, `*.<action>`, `<object>.*` or `*.*`, matched by Twenty as exact strings.
    pub operations: Vec<String>,
    pub description: Option<String>,
    /// `None` when Twenty sent none or an empty one: the deliveries are then unsigned.
    pub secret: Option<SecretString>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("target_url", &self.target_url)
            .field("operations", &self.operations)
            .field("description", &self.description)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// What a subscription is created or updated with.
#[derive(Clone)]
pub struct SubscriptionFields {
    pub target_url: String,
    pub operations: Vec<String>,
    /// Left as it is (on update) or unset (on create) when `None`.
    pub description: Option<String>,
    /// Left as it is (on update) when `None`; on create, newer releases then generate one and older
    /// ones sign nothing.
    pub secret: Option<SecretString>,
}

impl fmt::Debug for SubscriptionFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionFields")
            .field("target_url", &self.target_url)
            .field("operations", &self.operations)
            .field("description", &self.description)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl SubscriptionFields {
    /// The body Twenty reads: `{"targetUrl", "operations", "description"?, "secret"?}`.
    fn to_json(&self) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("targetUrl".into(), Value::from(self.target_url.as_str()));
        body.insert("operations".into(), Value::from(self.operations.clone()));
        if let Some(description) = &self.description {
            body.insert("description".into(), Value::from(description.as_str()));
        }
        if let Some(secret) = &self.secret {
            body.insert("secret".into(), Value::from(secret.expose_secret()));
        }
        Value::Object(body)
    }
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
}

impl ClientError {
    /// The HTTP status of the (last) answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Unauthorized { .. } => Some(401),
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

fn is_webhooks_url(url: &str) -> bool {
    url.contains(METADATA_WEBHOOKS_PATH) || url.contains(LEGACY_WEBHOOKS_PATH)
}

fn says(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!("; Twenty says: {message}") }
}

/// A client for one workspace. Cheap to clone; clones share the connection pool, the rate-limit
/// budget and the stats.
#[derive(Clone)]
pub struct TwentyClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Without a trailing slash; paths start with one.
    base: String,
    authorization: HeaderValue,
    api_key: SecretString,
    timeout: Duration,
    retry: RetryPolicy,
    pacer: Pacer,
    stats: Mutex<ClientStats>,
    /// The path of the webhook subscription API once a request has found it: every clone of the
    /// client asks one server, so the answer holds for the client's whole life.
    webhooks_path: OnceLock<&'static str>,
}

impl fmt::Debug for TwentyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwentyClient")
            .field("base_url", &self.inner.base)
            .field("rate_limits", &self.inner.pacer.limits())
            .field("timeout", &self.inner.timeout)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// How a request ended, before retries are decided.
enum Failure {
    Transient(TransientCause),
    Fatal(ClientError),
}

/// What an answer's status means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Success,
    RateLimited,
    Retry,
    Fail,
}

/// Classifies an answer by its status and, for a 400, by Twenty's message.
pub(crate) fn classify(status: StatusCode, message: &str) -> Verdict {
    match status.as_u16() {
        200..=299 => Verdict::Success,
        429 => Verdict::RateLimited,
        // Releases before 429 answered an exhausted budget with 400 "Limit reached (…)".
        400 if message.to_ascii_lowercase().contains("limit reached") => Verdict::RateLimited,
        // A proxy's request timeout is a timeout like ours: the request may well pass next time.
        408 => Verdict::Retry,
        500..=599 => Verdict::Retry,
        _ => Verdict::Fail,
    }
}

impl TwentyClient {
    pub fn new(settings: ClientSettings) -> Result<Self, ClientError> {
        let base = parse_base_url(&settings.base_url)?;
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
        let api_key = SecretString::from(key.to_owned());
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                authorization,
                api_key,
                timeout: settings.timeout,
                retry: settings.retry,
                pacer: Pacer::new(&with_margin(&settings.rate_limits)),
                stats: Mutex::new(ClientStats::default()),
                webhooks_path: OnceLock::new(),
            }),
        })
    }

    /// The base URL requests go to, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// Every object of the workspace, active or not, system or not, following the metadata API's
    /// pages when it has them. Both response shapes are read: `{"data": {"objects": […]}}` and
    /// `{"data": […]}`.
    pub async fn objects(&self) -> Result<Vec<ObjectMetadata>, ClientError> {
        let limit = PAGE_SIZE.to_string();
        let url = self.url(METADATA_OBJECTS_PATH);
        let mut objects = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_METADATA_PAGES {
            let mut query = vec![("limit", limit.as_str())];
            if let Some(cursor) = &cursor {
                query.push(("starting_after", cursor.as_str()));
            }
            let body = self.get_json(&url, &query).await?;
            let (page, page_info) = parse_objects(body).map_err(|reason| unexpected(&url, reason))?;
            objects.extend(page);
            match page_info {
                Some(PageInfo { has_next_page: true, end_cursor: Some(next) }) => {
                    if cursor.as_deref() == Some(next.as_str()) {
                        return Err(unexpected(&url, "the next page's cursor is the current one".to_owned()));
                    }
                    cursor = Some(next);
                }
                Some(PageInfo { has_next_page: true, end_cursor: None }) => {
                    return Err(unexpected(&url, "pageInfo has a next page but no endCursor".to_owned()));
                }
                _ => return Ok(objects),
            }
        }
        Err(unexpected(&url, format!("more than {MAX_METADATA_PAGES} pages of objects")))
    }

    /// One page of records of the object whose plural name is `name_plural` (`people`, `companies`,
    /// custom `websiteProperties`): `GET /rest/{name_plural}?limit=200&depth=0`, with Twenty's
    /// `filter` and `order_by` syntax passed through as given, and `cursor` as `starting_after` (the
    /// previous page's `end_cursor`).
    pub async fn list_page(
        &self,
        name_plural: &str,
        filter: Option<&str>,
        order_by: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Page, ClientError> {
        if name_plural.is_empty() || !name_plural.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ClientError::InvalidObjectName(name_plural.to_owned()));
        }
        let url = self.url(&format!("/rest/{name_plural}"));
        let limit = PAGE_SIZE.to_string();
        let mut query = vec![("limit", limit.as_str()), ("depth", "0")];
        if let Some(filter) = filter {
            query.push(("filter", filter));
        }
        if let Some(order_by) = order_by {
            query.push(("order_by", order_by));
        }
        if let Some(cursor) = cursor {
            query.push(("starting_after", cursor));
        }
        let body = self.get_json(&url, &query).await?;
        parse_page(name_plural, body).map_err(|reason| unexpected(&url, reason))
    }

    /// Every webhook subscription of the workspace, the secrets included. Reads a plain list and the
    /// paged `{"data": […], "pageInfo", "totalCount"}` shape, following its pages.
    ///
    /// The subscription API lives under `/rest/metadata/webhooks`; older releases answer 404 there and
    /// serve it under `/rest/webhooks`. The first call finds out which, and the client keeps using it.
    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, ClientError> {
        let (url, body) = self.webhooks_collection(Method::GET, &[], None).await?;
        let (mut subscriptions, mut page_info) =
            parse_subscriptions(body).map_err(|r| unexpected(&url, r))?;
        let mut cursor: Option<String> = None;
        for _ in 1..MAX_METADATA_PAGES {
            let next = match page_info {
                Some(PageInfo { has_next_page: true, end_cursor: Some(next) }) => next,
                Some(PageInfo { has_next_page: true, end_cursor: None }) => {
                    return Err(unexpected(&url, "pageInfo has a next page but no endCursor".to_owned()));
                }
                _ => return Ok(subscriptions),
            };
            if cursor.as_deref() == Some(next.as_str()) {
                return Err(unexpected(&url, "the next page's cursor is the current one".to_owned()));
            }
            let body = self.get_json(&url, &[("starting_after", next.as_str())]).await?;
            let (page, info) = parse_subscriptions(body).map_err(|r| unexpected(&url, r))?;
            subscriptions.extend(page);
            page_info = info;
            cursor = Some(next);
        }
        match page_info {
            Some(PageInfo { has_next_page: true, .. }) => {
                Err(unexpected(&url, format!("more than {MAX_METADATA_PAGES} pages of subscriptions")))
            }
            _ => Ok(subscriptions),
        }
    }

    /// Creates a subscription (`POST`, answered 201). Not retried once it may have reached Twenty,
    /// since a second POST would add a second subscription: see [`ClientError::NotRetried`].
    pub async fn create_subscription(
        &self,
        fields: &SubscriptionFields,
    ) -> Result<Subscription, ClientError> {
        let (url, body) = self.webhooks_collection(Method::POST, &[], Some(&fields.to_json())).await?;
        parse_subscription(body).map_err(|r| unexpected_answer(Method::POST, &url, 201, r))
    }

    /// Sets every field of `fields` on subscription `id` (`PATCH …/webhooks/{id}`); a `None`
    /// description or secret is left as it is.
    pub async fn update_subscription(
        &self,
        id: &str,
        fields: &SubscriptionFields,
    ) -> Result<Subscription, ClientError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ClientError::InvalidSubscriptionId(id.to_owned()));
        }
        let path = match self.webhooks_path() {
            Some(path) => path,
            None => {
                // A 404 for one subscription may only mean that it does not exist: find the API by
                // its list, which every release serves.
                self.webhooks_collection(Method::GET, &[], None).await?;
                self.webhooks_path().unwrap_or(METADATA_WEBHOOKS_PATH)
            }
        };
        let url = self.url(&format!("{path}/{id}"));
        let body = self.request_json(Method::PATCH, &url, &[], Some(&fields.to_json())).await?;
        parse_subscription(body).map_err(|r| unexpected_answer(Method::PATCH, &url, 200, r))
    }

    /// The path of the subscription API, once a request has found it.
    pub fn webhooks_path(&self) -> Option<&'static str> {
        self.inner.webhooks_path.get().copied()
    }

    /// Sends `method` to the subscription collection: to the path already found, or to the metadata
    /// path and, when that answers 404, to the older one; the path that answers is kept.
    async fn webhooks_collection(
        &self,
        method: Method,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(String, Value), ClientError> {
        if let Some(path) = self.webhooks_path() {
            let url = self.url(path);
            let answer = self.request_json(method, &url, query, body).await?;
            return Ok((url, answer));
        }
        let url = self.url(METADATA_WEBHOOKS_PATH);
        match self.request_json(method.clone(), &url, query, body).await {
            Ok(answer) => {
                let _ = self.inner.webhooks_path.set(METADATA_WEBHOOKS_PATH);
                Ok((url, answer))
            }
            Err(ClientError::NotFound { .. }) => {
                let legacy = self.url(LEGACY_WEBHOOKS_PATH);
                match self.request_json(method, &legacy, query, body).await {
                    Ok(answer) => {
                        tracing::debug!(
                            path = LEGACY_WEBHOOKS_PATH,
                            "Twenty serves webhooks at the older path"
                        );
                        let _ = self.inner.webhooks_path.set(LEGACY_WEBHOOKS_PATH);
                        Ok((legacy, answer))
                    }
                    Err(ClientError::NotFound { method, url, message }) => {
                        let also = format!("{METADATA_WEBHOOKS_PATH} answered 404 as well");
                        let message = if message.is_empty() { also } else { format!("{message} ({also})") };
                        Err(ClientError::NotFound { method, url, message })
                    }
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    /// A snapshot of the counters shared by every clone of this client.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base)
    }

    /// GETs `url` with `query` and parses the answer as JSON, pacing every try and retrying transient
    /// failures.
    async fn get_json(&self, url: &str, query: &[(&str, &str)]) -> Result<Value, ClientError> {
        self.request_json(Method::GET, url, query, None).await
    }

    /// Sends `method` to `url` with `query` and, when given, `body` as JSON, and parses the answer as
    /// JSON, pacing every try. Transient failures are retried, except where repeating a POST could
    /// do twice what it does: then only when Twenty certainly did not act (a rate-limit refusal, a
    /// connection that was never made).
    async fn request_json(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let inner = &*self.inner;
        let max_attempts = inner.retry.max_attempts.max(1);
        let idempotent = method != Method::POST;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let waited = inner.pacer.acquire().await;
            if !waited.is_zero() {
                self.update_stats(|stats| stats.rate_limit_wait += waited);
            }
            let cause = match self.try_once(&method, url, query, body).await {
                Ok(body) => return Ok(body),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Transient(cause)) => cause,
            };
            if cause.is_rate_limited() {
                // Twenty's bucket is empty: ours must be too, for this caller and every other one.
                inner.pacer.drain();
            }
            let unsent = matches!(cause, TransientCause::RateLimited { .. } | TransientCause::Connection(_));
            if !idempotent && !unsent {
                return Err(ClientError::NotRetried { method, url: url.to_owned(), cause });
            }
            if attempt >= max_attempts {
                return Err(ClientError::Exhausted { method, url: url.to_owned(), attempts: attempt, cause });
            }
            let delay = if cause.is_rate_limited() {
                // Without limits of our own, the server's refill interval is unknown: wait at least
                // a second, Twenty's shortest window, rather than retrying at once.
                let unknown_refill =
                    if inner.pacer.limits().is_empty() { UNKNOWN_REFILL } else { Duration::ZERO };
                let floor = inner.pacer.refill_interval().max(inner.retry.base_delay).max(unknown_refill);
                inner.retry.rate_limited_delay(attempt, floor, jitter())
            } else {
                inner.retry.backoff(attempt, jitter())
            };
            tracing::warn!(
                %method,
                url,
                attempt,
                max_attempts,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                cause = %cause,
                "a request to Twenty failed; retrying"
            );
            self.update_stats(|stats| {
                stats.retries += 1;
                stats.retry_wait += delay;
            });
            tokio::time::sleep(delay).await;
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
        let inner = &*self.inner;
        let mut request = inner
            .http
            .request(method.clone(), url)
            .header(AUTHORIZATION, inner.authorization.clone())
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
        let answer = match response.bytes().await {
            Ok(answer) => answer,
            Err(error) => return Err(self.transport_failure(method, url, error)),
        };
        self.update_stats(|stats| *stats.requests.entry(status.as_str().to_owned()).or_default() += 1);
        tracing::debug!(%method, url, status = status.as_u16(), bytes = answer.len(), "Twenty answered");

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
        let mut message = error_message(&answer, inner.api_key.expose_secret());
        // A validation message could quote what we sent; a subscription's secret must not be echoed.
        if let Some(secret) = body.and_then(|b| b.get("secret")).and_then(Value::as_str)
            && !secret.is_empty()
        {
            message = message.replace(secret, "[redacted]");
        }
        let code = status.as_u16();
        Err(match classify(status, &message) {
            Verdict::RateLimited => Failure::Transient(TransientCause::RateLimited { status: code, message }),
            Verdict::Retry => Failure::Transient(TransientCause::Server { status: code, message }),
            Verdict::Success | Verdict::Fail => Failure::Fatal(refusal(method, code, url, message)),
        })
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
            TransientCause::Timeout { after: self.inner.timeout }
        } else if error.is_connect() {
            TransientCause::Connection(error_chain(&error))
        } else {
            TransientCause::Transport(error_chain(&error))
        };
        Failure::Transient(cause)
    }

    fn update_stats(&self, update: impl FnOnce(&mut ClientStats)) {
        update(&mut self.inner.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// Maps a status that no retry can fix to the error that says what to do.
fn refusal(method: &Method, status: u16, url: &str, message: String) -> ClientError {
    let (method, url) = (method.clone(), url.to_owned());
    match status {
        401 => ClientError::Unauthorized { method, url, message },
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
fn unexpected(url: &str, reason: String) -> ClientError {
    unexpected_answer(Method::GET, url, 200, reason)
}

fn unexpected_answer(method: Method, url: &str, status: u16, reason: String) -> ClientError {
    ClientError::UnexpectedResponse { method, url: url.to_owned(), status, reason }
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

/// The human part of an error answer: Twenty's `messages`, or NestJS's `message`, or the `error`
/// name, or the body's text; with the API key scrubbed and at most `MAX_MESSAGE_CHARS` long.
fn error_message(body: &[u8], api_key: &str) -> String {
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

#[derive(Debug, Clone, PartialEq, Eq)]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

fn parse_page_info(value: &Value) -> Result<PageInfo, String> {
    let has_next_page = value
        .get("hasNextPage")
        .and_then(Value::as_bool)
        .ok_or_else(|| "pageInfo.hasNextPage is missing or not a boolean".to_owned())?;
    let end_cursor = value.get("endCursor").and_then(Value::as_str).map(str::to_owned);
    Ok(PageInfo { has_next_page, end_cursor })
}

/// Reads `{"data": {"<namePlural>": […]}, "totalCount": n, "pageInfo": {…}}`. A missing `pageInfo` is
/// an error rather than a last page: a sweep that stopped early would look like destroyed records.
fn parse_page(name_plural: &str, body: Value) -> Result<Page, String> {
    let Value::Object(mut root) = body else {
        return Err(format!("the body is {} instead of an object", kind(&body)));
    };
    let records = match root.get_mut("data") {
        Some(Value::Object(data)) => match data.remove(name_plural) {
            Some(Value::Array(records)) => records,
            Some(other) => return Err(format!("data.{name_plural} is {} instead of a list", kind(&other))),
            None => {
                let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                return Err(format!("data has no {name_plural:?} list (it has {keys:?})"));
            }
        },
        Some(other) => return Err(format!("data is {} instead of an object", kind(other))),
        None => return Err("the body has no data".to_owned()),
    };
    let page_info = parse_page_info(root.get("pageInfo").ok_or("the body has no pageInfo")?)?;
    if page_info.has_next_page && page_info.end_cursor.is_none() {
        return Err("pageInfo has a next page but no endCursor".to_owned());
    }
    Ok(Page {
        records,
        has_next_page: page_info.has_next_page,
        end_cursor: page_info.end_cursor,
        total_count: root.get("totalCount").and_then(Value::as_u64),
    })
}

/// Reads the metadata objects list in either shape, `{"data": {"objects": […]}}` or `{"data": […]}`
/// (and a bare list), with its `pageInfo` when there is one.
fn parse_objects(body: Value) -> Result<(Vec<ObjectMetadata>, Option<PageInfo>), String> {
    let (list, page_info) = match body {
        Value::Array(list) => (list, None),
        Value::Object(mut root) => {
            let page_info = root.get("pageInfo").map(parse_page_info).transpose()?;
            let list = match root.remove("data") {
                Some(Value::Array(list)) => list,
                Some(Value::Object(mut data)) => match data.remove("objects") {
                    Some(Value::Array(list)) => list,
                    _ => return Err("data has no objects list".to_owned()),
                },
                Some(other) => return Err(format!("data is {} instead of a list", kind(&other))),
                None => return Err("the body has no data".to_owned()),
            };
            (list, page_info)
        }
        other => return Err(format!("the body is {} instead of an object", kind(&other))),
    };
    let objects = list
        .into_iter()
        .enumerate()
        .map(|(index, object)| {
            let name = object.get("nameSingular").and_then(Value::as_str).unwrap_or("?").to_owned();
            serde_json::from_value(object).map_err(|e| format!("object #{index} ({name}): {e}"))
        })
        .collect::<Result<Vec<ObjectMetadata>, String>>()?;
    Ok((objects, page_info))
}

/// Reads a subscription list: a bare list, `{"data": […], "pageInfo", "totalCount"}`, or the older
/// records shape `{"data": {"webhooks": […]}, …}`; with its `pageInfo` when there is one.
fn parse_subscriptions(body: Value) -> Result<(Vec<Subscription>, Option<PageInfo>), String> {
    let (list, page_info) = match body {
        Value::Array(list) => (list, None),
        Value::Object(mut root) => {
            // Only a next page matters here; a pageInfo without one reads as the last page.
            let page_info = root.get("pageInfo").map(|info| PageInfo {
                has_next_page: info.get("hasNextPage").and_then(Value::as_bool).unwrap_or(false),
                end_cursor: info.get("endCursor").and_then(Value::as_str).map(str::to_owned),
            });
            let list = match root.remove("data") {
                Some(Value::Array(list)) => list,
                Some(Value::Object(mut data)) => match data.remove("webhooks") {
                    Some(Value::Array(list)) => list,
                    _ => return Err("data has no webhooks list".to_owned()),
                },
                Some(other) => return Err(format!("data is {} instead of a list", kind(&other))),
                None => return Err("the body has no data".to_owned()),
            };
            (list, page_info)
        }
        other => return Err(format!("the body is {} instead of a list", kind(&other))),
    };
    let subscriptions = list
        .into_iter()
        .enumerate()
        .map(|(index, item)| subscription_from(item).map_err(|e| format!("subscription #{index}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((subscriptions, page_info))
}

/// Reads the subscription that a create or an update answers with: the object itself, or wrapped
/// in `{"data": …}` or, from older releases, `{"data": {"createWebhook": …}}`.
fn parse_subscription(body: Value) -> Result<Subscription, String> {
    let is_subscription = |v: &Value| v.get("id").is_some() && v.get("targetUrl").is_some();
    let found = if is_subscription(&body) {
        body
    } else {
        match body {
            Value::Object(mut root) => match root.remove("data") {
                Some(data) if is_subscription(&data) => data,
                Some(Value::Object(data)) if data.len() == 1 => {
                    data.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null)
                }
                _ => return Err("the body is not a webhook subscription".to_owned()),
            },
            other => return Err(format!("the body is {} instead of an object", kind(&other))),
        }
    };
    subscription_from(found)
}

fn subscription_from(value: Value) -> Result<Subscription, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        id: String,
        target_url: String,
        #[serde(default)]
        operations: Option<Vec<String>>,
        /// Releases before `operations` had one operation a subscription.
        #[serde(default)]
        operation: Option<String>,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        secret: Option<String>,
    }
    let wire: Wire = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok(Subscription {
        id: wire.id,
        target_url: wire.target_url,
        operations: wire.operations.or_else(|| wire.operation.map(|op| vec![op])).unwrap_or_default(),
        description: wire.description,
        secret: wire.secret.filter(|s| !s.is_empty()).map(SecretString::from),
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "test-key-s3cr3t";

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn a_records_page_is_read_with_every_key_kept() {
        let body = json!({
            "data": {"people": [
                {"id": "a", "name": {"firstName": "Ada"}, "customScore": 7, "companyId": null},
                {"id": "b"}
            ]},
            "totalCount": 1234,
            "pageInfo": {"hasNextPage": true, "hasPreviousPage": false, "startCursor": "s", "endCursor": "e"}
        });
        let page = parse_page("people", body).unwrap();
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.records[0]["customScore"], 7);
        assert_eq!(page.records[0]["name"]["firstName"], "Ada");
        assert!(page.has_next_page);
        assert_eq!(page.end_cursor.as_deref(), Some("e"));
        assert_eq!(page.total_count, Some(1234));

        let last = json!({"data": {"people": []}, "pageInfo": {"hasNextPage": false, "endCursor": null}});
        let page = parse_page("people", last).unwrap();
        assert!(page.records.is_empty() && !page.has_next_page && page.end_cursor.is_none());
        assert_eq!(page.total_count, None);
    }

    #[test]
    fn a_page_that_cannot_be_followed_is_refused() {
        for (body, needle) in [
            (json!({"data": {"people": []}}), "pageInfo"),
            (json!({"data": {"people": []}, "pageInfo": {}}), "hasNextPage"),
            (json!({"data": {"people": []}, "pageInfo": {"hasNextPage": true}}), "endCursor"),
            (json!({"data": {"person": {}}, "pageInfo": {"hasNextPage": false}}), "\"person\""),
            (json!({"data": {"people": {}}, "pageInfo": {"hasNextPage": false}}), "instead of a list"),
            (json!({"pageInfo": {"hasNextPage": false}}), "no data"),
            (json!([]), "instead of an object"),
        ] {
            let error = parse_page("people", body.clone()).expect_err(&body.to_string());
            assert!(error.contains(needle), "{error} should mention {needle}");
        }
    }

    fn object(name: &str) -> Value {
        json!({
            "id": format!("id-{name}"), "nameSingular": name, "namePlural": format!("{name}s"),
            "labelSingular": "L", "labelPlural": "Ls", "isCustom": true, "isActive": true,
            "isSystem": false, "fields": [{"id": "f", "name": "x", "type": "TEXT"}], "icon": "IconX"
        })
    }

    #[test]
    fn both_metadata_shapes_are_read() {
        let nested = json!({
            "data": {"objects": [object("pet")]},
            "pageInfo": {"hasNextPage": false},
            "totalCount": 1
        });
        let flat = json!({
            "data": [object("pet")],
            "pageInfo": {"hasNextPage": true, "endCursor": "c"},
            "totalCount": 2
        });
        let (a, info_a) = parse_objects(nested).unwrap();
        let (b, info_b) = parse_objects(flat).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].name_plural, "pets");
        assert!(a[0].is_custom && a[0].is_mirrored_by_default());
        assert_eq!(a[0].fields[0]["type"], "TEXT");
        assert_eq!(info_a, Some(PageInfo { has_next_page: false, end_cursor: None }));
        assert_eq!(info_b, Some(PageInfo { has_next_page: true, end_cursor: Some("c".to_owned()) }));

        let (bare, info) = parse_objects(json!([object("pet")])).unwrap();
        assert_eq!(bare, a);
        assert_eq!(info, None);

        let minimal = json!({"data": [{"id": "1", "nameSingular": "person", "namePlural": "people"}]});
        let (objects, _) = parse_objects(minimal).unwrap();
        assert!(objects[0].is_active && !objects[0].is_system && !objects[0].is_custom);
        assert_eq!(objects[0].fields, json!([]));

        let broken = json!({"data": [{"id": "1", "nameSingular": "person"}]});
        let error = parse_objects(broken).unwrap_err();
        assert!(error.contains("person") && error.contains("namePlural"), "{error}");
        assert!(parse_objects(json!({"data": {"items": []}})).is_err());
    }

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
    fn backoff_grows_exponentially_within_its_bounds() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.ceiling(1), ms(500));
        assert_eq!(policy.ceiling(2), ms(1_000));
        assert_eq!(policy.ceiling(4), ms(4_000));
        assert_eq!(policy.ceiling(7), Duration::from_secs(30));
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(30));
        assert_eq!(policy.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(policy.backoff(3, 0.5), ms(1_000));
        assert!(policy.backoff(3, 0.999_999) <= ms(2_000));
        assert_eq!(policy.rate_limited_delay(1, ms(600), 0.0), ms(600));
        assert_eq!(policy.rate_limited_delay(2, ms(600), 0.5), ms(1_100));
        for _ in 0..1_000 {
            let f = jitter();
            assert!((0.0..1.0).contains(&f), "{f}");
        }
        assert_ne!(jitter(), jitter());
    }

    #[test]
    fn settings_are_checked_and_the_key_stays_secret() {
        let settings = |url: &str, key: &str| ClientSettings::new(url, SecretString::from(key.to_owned()));
        let client = TwentyClient::new(settings("https://api.twenty.com/", KEY)).unwrap();
        assert_eq!(client.base_url(), "https://api.twenty.com");
        let prefixed = TwentyClient::new(settings("http://crm.local:3000/twenty/", KEY)).unwrap();
        assert_eq!(prefixed.base_url(), "http://crm.local:3000/twenty");
        let debug = format!("{client:?} {:?}", settings("https://api.twenty.com", KEY));
        assert!(!debug.contains(KEY), "{debug}");

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
    }

    #[tokio::test]
    async fn object_names_cannot_escape_the_rest_path() {
        let client =
            TwentyClient::new(ClientSettings::new("http://127.0.0.1:9", SecretString::from(KEY))).unwrap();
        for name in ["", "../metadata", "people?x=1", "peo ple", "people/1"] {
            let error = client.list_page(name, None, None, None).await.expect_err(name);
            assert!(matches!(error, ClientError::InvalidObjectName(_)), "{error}");
        }
        assert_eq!(client.stats().total_requests(), 0);
    }

    /// A throwaway Twenty that answers each request with the next scripted response.
    mod fake {
        use std::collections::VecDeque;
        use std::sync::Mutex;
        use std::time::Duration;

        use actix_web::dev::ServerHandle;
        use actix_web::http::StatusCode;
        use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

        pub struct Reply {
            pub status: u16,
            pub body: String,
            pub delay: Duration,
        }

        pub fn reply(status: u16, body: impl ToString) -> Reply {
            Reply { status, body: body.to_string(), delay: Duration::ZERO }
        }

        #[derive(Debug, Clone)]
        pub struct Seen {
            pub path: String,
            pub query: Vec<(String, String)>,
            pub raw_query: String,
            pub authorization: Option<String>,
        }

        struct Script {
            replies: Mutex<VecDeque<Reply>>,
            seen: Mutex<Vec<Seen>>,
        }

        pub struct FakeTwenty {
            pub url: String,
            script: web::Data<Script>,
            handle: ServerHandle,
        }

        async fn answer(request: HttpRequest, script: web::Data<Script>) -> HttpResponse {
            let query = web::Query::<Vec<(String, String)>>::from_query(request.query_string())
                .map(|q| q.into_inner())
                .unwrap_or_default();
            script.seen.lock().unwrap().push(Seen {
                path: request.path().to_owned(),
                query,
                raw_query: request.query_string().to_owned(),
                authorization: request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            });
            let next = script.replies.lock().unwrap().pop_front();
            let Some(reply) = next else {
                return HttpResponse::InternalServerError().body("the script is exhausted");
            };
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            HttpResponse::build(StatusCode::from_u16(reply.status).unwrap())
                .content_type("application/json")
                .body(reply.body)
        }

        impl FakeTwenty {
            pub async fn start(replies: Vec<Reply>) -> Self {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let port = listener.local_addr().unwrap().port();
                let script = web::Data::new(Script {
                    replies: Mutex::new(replies.into()),
                    seen: Mutex::new(Vec::new()),
                });
                let data = script.clone();
                let server = HttpServer::new(move || {
                    App::new().app_data(data.clone()).default_service(web::to(answer))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                let handle = server.handle();
                tokio::spawn(server);
                FakeTwenty { url: format!("http://127.0.0.1:{port}"), script, handle }
            }

            pub fn seen(&self) -> Vec<Seen> {
                self.script.seen.lock().unwrap().clone()
            }

            pub async fn stop(self) {
                self.handle.stop(false).await;
            }
        }
    }

    use fake::{FakeTwenty, reply};

    fn fast_settings(base_url: &str) -> ClientSettings {
        ClientSettings {
            base_url: base_url.to_owned(),
            api_key: SecretString::from(KEY),
            rate_limits: Vec::new(),
            timeout: Duration::from_secs(2),
            retry: RetryPolicy { max_attempts: 4, base_delay: ms(1), max_delay: ms(5) },
        }
    }

    fn people_page(has_next_page: bool) -> Value {
        json!({
            "data": {"people": [{"id": "p1", "updatedAt": "2026-09-21T10:20:02.640Z", "extra": true}]},
            "totalCount": 1,
            "pageInfo": {
                "hasNextPage": has_next_page, "hasPreviousPage": false, "startCursor": "p1", "endCursor": "p1"
            }
        })
    }

    fn error_body(status: u16, error: &str, message: &str) -> Value {
        json!({"statusCode": status, "error": error, "messages": [message]})
    }

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[tokio::test]
    async fn server_errors_are_retried_and_parameters_are_encoded() {
        let twenty = FakeTwenty::start(vec![
            reply(500, error_body(500, "InternalServerError", "boom")),
            reply(503, "<html>unavailable</html>"),
            reply(200, people_page(true)),
        ])
        .await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        let filter =
            r#"or(updatedAt[gte]:"2026-09-21T10:00:00.000Z",deletedAt[gte]:"2026-09-21T10:00:00.000Z")"#;
        let page = client
            .list_page("people", Some(filter), Some("updatedAt[AscNullsFirst]"), Some("cursor+/=="))
            .await
            .unwrap();
        assert_eq!(page.records[0]["extra"], true);
        assert!(page.has_next_page);

        let stats = client.stats();
        assert_eq!(stats.requests, counts(&[("200", 1), ("500", 1), ("503", 1)]));
        assert_eq!(stats.retries, 2);

        let seen = twenty.seen();
        assert_eq!(seen.len(), 3);
        let first = &seen[0];
        assert_eq!(first.path, "/rest/people");
        assert_eq!(first.authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
        let param = |name: &str| first.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(param("limit"), Some("200"));
        assert_eq!(param("depth"), Some("0"));
        assert_eq!(param("filter"), Some(filter));
        assert_eq!(param("order_by"), Some("updatedAt[AscNullsFirst]"));
        assert_eq!(param("starting_after"), Some("cursor+/=="));
        assert!(!first.raw_query.contains(['"', '[', ' ']), "{}", first.raw_query);
        twenty.stop().await;
    }

    #[tokio::test]
    async fn a_429_drains_our_budget_and_waits_a_refill_interval() {
        let twenty = FakeTwenty::start(vec![
            reply(429, error_body(429, "ThrottlerException", "Too Many Requests")),
            reply(200, people_page(false)),
        ])
        .await;
        let mut settings = fast_settings(&twenty.url);
        // One token every 20 ms: the retry may not go out sooner.
        settings.rate_limits = vec![RateLimit::new(5, ms(100))];
        let client = TwentyClient::new(settings).unwrap();
        let started = std::time::Instant::now();
        client.list_page("people", None, None, None).await.unwrap();
        assert!(started.elapsed() >= ms(20), "{:?}", started.elapsed());
        let stats = client.stats();
        assert_eq!(stats.requests, counts(&[("200", 1), ("429", 1)]));
        assert_eq!(stats.retries, 1);
        assert!(stats.retry_wait >= ms(20), "{stats:?}");
        twenty.stop().await;
    }

    #[tokio::test]
    async fn an_old_limit_reached_400_is_a_rate_limit() {
        let twenty = FakeTwenty::start(vec![
            reply(400, error_body(400, "BadRequestException", "Limit reached (100 tokens per 60000 ms)")),
            reply(200, people_page(false)),
        ])
        .await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        client.list_page("people", None, None, None).await.unwrap();
        assert_eq!(client.stats().requests, counts(&[("200", 1), ("400", 1)]));
        assert_eq!(client.stats().retries, 1);
        twenty.stop().await;
    }

    #[tokio::test]
    async fn a_refused_key_fails_at_once_and_says_so() {
        let twenty = FakeTwenty::start(vec![
            reply(401, error_body(401, "UNAUTHENTICATED", &format!("Token {KEY} invalid"))),
            reply(200, people_page(false)),
        ])
        .await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        let error = client.list_page("people", None, None, None).await.unwrap_err();
        assert!(matches!(error, ClientError::Unauthorized { .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("TWENTY_API_KEY") && text.contains("[redacted]"), "{text}");
        assert!(!text.contains(KEY) && !format!("{error:?}").contains(KEY), "{text}");
        assert_eq!(client.stats().requests, counts(&[("401", 1)]));
        assert_eq!(client.stats().retries, 0);
        twenty.stop().await;
    }

    #[tokio::test]
    async fn other_client_errors_fail_at_once_with_their_message() {
        let twenty = FakeTwenty::start(vec![
            reply(404, error_body(404, "NotFoundException", "Object peoples not found")),
            reply(403, error_body(403, "Forbidden", "No read permission")),
            reply(400, error_body(400, "BadRequestException", "Invalid filter")),
        ])
        .await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        let not_found = client.list_page("peoples", None, None, None).await.unwrap_err();
        assert!(matches!(not_found, ClientError::NotFound { .. }));
        assert!(not_found.to_string().contains(&format!("{}/rest/peoples", twenty.url)), "{not_found}");
        let forbidden = client.list_page("people", None, None, None).await.unwrap_err();
        assert!(matches!(forbidden, ClientError::Forbidden { .. }), "{forbidden}");
        let rejected = client.list_page("people", Some("x"), None, None).await.unwrap_err();
        assert_eq!(rejected.status(), Some(400));
        assert!(rejected.to_string().contains("Invalid filter"), "{rejected}");
        assert_eq!(client.stats().retries, 0);
        twenty.stop().await;
    }

    #[tokio::test]
    async fn exhausted_retries_name_the_last_cause_and_the_attempts() {
        let twenty =
            FakeTwenty::start((0..4).map(|_| reply(503, json!({"messages": ["down"]}))).collect()).await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        let error = client.list_page("people", None, None, None).await.unwrap_err();
        match &error {
            ClientError::Exhausted {
                attempts: 4,
                cause: TransientCause::Server { status: 503, message },
                ..
            } => {
                assert_eq!(message, "down")
            }
            other => panic!("{other:?}"),
        }
        assert!(error.is_transient() && error.to_string().contains("4 times"), "{error}");
        assert_eq!(client.stats().requests, counts(&[("503", 4)]));
        assert_eq!(client.stats().retries, 3);
        twenty.stop().await;
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_and_is_retried() {
        let mut slow = reply(200, people_page(false));
        slow.delay = ms(1_000);
        let twenty = FakeTwenty::start(vec![slow, reply(200, people_page(false))]).await;
        let mut settings = fast_settings(&twenty.url);
        settings.timeout = ms(150);
        let client = TwentyClient::new(settings).unwrap();
        client.list_page("people", None, None, None).await.unwrap();
        assert_eq!(client.stats().requests, counts(&[("200", 1), ("error", 1)]));
        assert_eq!(client.stats().retries, 1);
        twenty.stop().await;
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_then_reported() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut settings = fast_settings(&format!("http://127.0.0.1:{port}"));
        settings.retry.max_attempts = 3;
        let client = TwentyClient::new(settings).unwrap();
        let error = client.objects().await.unwrap_err();
        assert!(
            matches!(error, ClientError::Exhausted { attempts: 3, cause: TransientCause::Connection(_), .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("cannot connect"), "{error}");
        assert_eq!(client.stats().requests, counts(&[("error", 3)]));
    }

    #[tokio::test]
    async fn objects_follow_the_metadata_pages() {
        let twenty = FakeTwenty::start(vec![
            reply(
                200,
                json!({"data": [object("pet")], "pageInfo": {"hasNextPage": true, "endCursor": "id-pet"}}),
            ),
            reply(
                200,
                json!({"data": [object("toy")], "pageInfo": {"hasNextPage": false, "endCursor": "id-toy"}}),
            ),
        ])
        .await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        let objects = client.objects().await.unwrap();
        let names: Vec<&str> = objects.iter().map(|o| o.name_plural.as_str()).collect();
        assert_eq!(names, ["pets", "toys"]);
        let seen = twenty.seen();
        assert_eq!(seen[0].path, "/rest/metadata/objects");
        assert!(!seen[0].query.iter().any(|(k, _)| k == "starting_after"));
        assert!(seen[1].query.contains(&("starting_after".to_owned(), "id-pet".to_owned())));
        twenty.stop().await;
    }

    fn subscription_json(id: &str) -> Value {
        json!({"id": id, "targetUrl": "https://m.example/webhooks/twenty", "operations": ["*.*"],
               "description": null, "secret": "hush-hush", "createdAt": "2026-09-21T10:00:00.000Z"})
    }

    fn fields() -> SubscriptionFields {
        SubscriptionFields {
            target_url: "https://m.example/webhooks/twenty".into(),
            operations: vec!["*.*".into()],
            description: Some("twenty-mirror".into()),
            secret: Some(SecretString::from("hush-hush")),
        }
    }

    #[test]
    fn subscription_lists_and_answers_are_read_in_every_shape() {
        let one = subscription_json("w1");
        for body in [
            json!([one]),
            json!({"data": [one], "pageInfo": {"hasNextPage": false}, "totalCount": 1}),
            json!({"data": {"webhooks": [one]}, "pageInfo": {"hasNextPage": false}, "totalCount": 1}),
        ] {
            let (list, _) = parse_subscriptions(body.clone()).unwrap();
            assert_eq!(list.len(), 1, "{body}");
            assert_eq!(list[0].id, "w1");
            assert_eq!(list[0].operations, ["*.*"]);
            assert_eq!(list[0].secret.as_ref().map(|s| s.expose_secret()), Some("hush-hush"));
            assert!(!format!("{list:?}").contains("hush-hush"));
        }
        for body in [one.clone(), json!({"data": one}), json!({"data": {"createWebhook": one}})] {
            assert_eq!(parse_subscription(body.clone()).unwrap().id, "w1", "{body}");
        }
        let old = json!({"id": "w2", "targetUrl": "https://x", "operation": "person.created", "secret": ""});
        let old = parse_subscription(old).unwrap();
        assert_eq!(old.operations, ["person.created"]);
        assert!(old.secret.is_none(), "an empty secret is no secret");
        assert!(parse_subscriptions(json!({"data": {"people": []}})).is_err());
        assert!(parse_subscription(json!({"data": {"a": 1, "b": 2}})).is_err());
        assert!(!format!("{:?}", fields()).contains("hush-hush"));
    }

    #[tokio::test]
    async fn subscription_pages_are_followed() {
        let twenty = FakeTwenty::start(vec![
            reply(200, json!({"data": [subscription_json("w1")], "pageInfo": {"hasNextPage": true, "endCursor": "c1"}})),
            reply(200, json!({"data": [subscription_json("w2")], "pageInfo": {"hasNextPage": false}})),
        ])
        .await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        let ids: Vec<String> = client.subscriptions().await.unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["w1", "w2"]);
        let seen = twenty.seen();
        assert_eq!(seen[1].path, "/rest/metadata/webhooks");
        assert!(seen[1].query.contains(&("starting_after".to_owned(), "c1".to_owned())));
        twenty.stop().await;
    }

    #[tokio::test]
    async fn a_create_is_not_repeated_once_twenty_may_have_acted() {
        let twenty = FakeTwenty::start(vec![
            reply(429, error_body(429, "ThrottlerException", "Too Many Requests")),
            reply(500, error_body(500, "InternalServerError", "secret hush-hush rejected")),
            reply(201, subscription_json("w1")),
        ])
        .await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        let error = client.create_subscription(&fields()).await.unwrap_err();
        assert!(matches!(error, ClientError::NotRetried { .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.starts_with("POST ") && text.contains("not retried"), "{text}");
        assert!(!text.contains("hush-hush") && text.contains("[redacted]"), "the secret is scrubbed: {text}");
        assert_eq!(client.stats().requests, counts(&[("429", 1), ("500", 1)]), "the 429 alone was retried");
        assert!(error.is_transient());
        twenty.stop().await;
    }

    #[tokio::test]
    async fn an_update_is_retried_like_a_read() {
        let twenty = FakeTwenty::start(vec![
            reply(200, json!([subscription_json("w1")])),
            reply(503, "<html>unavailable</html>"),
            reply(200, subscription_json("w1")),
        ])
        .await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        let updated = client.update_subscription("w1", &fields()).await.unwrap();
        assert_eq!(updated.id, "w1");
        assert_eq!(client.webhooks_path(), Some(METADATA_WEBHOOKS_PATH));
        let paths: Vec<String> = twenty.seen().into_iter().map(|s| s.path).collect();
        assert_eq!(
            paths,
            ["/rest/metadata/webhooks", "/rest/metadata/webhooks/w1", "/rest/metadata/webhooks/w1"]
        );
        assert_eq!(client.stats().retries, 1);
        twenty.stop().await;
    }

    #[tokio::test]
    async fn neither_webhooks_path_says_so_and_a_403_names_the_permission() {
        let twenty = FakeTwenty::start(vec![
            reply(404, error_body(404, "NotFoundException", "Cannot GET /rest/metadata/webhooks")),
            reply(404, error_body(404, "NotFoundException", "Object webhooks not found")),
            reply(403, error_body(403, "Forbidden", "Missing permission")),
        ])
        .await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        let error = client.subscriptions().await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("/rest/webhooks") && text.contains("/rest/metadata/webhooks answered 404"),
            "{text}"
        );
        assert_eq!(client.webhooks_path(), None, "nothing was found, nothing is kept");
        let forbidden = client.create_subscription(&fields()).await.unwrap_err();
        assert!(forbidden.to_string().contains("manage API keys and webhooks"), "{forbidden}");
        twenty.stop().await;
    }

    #[tokio::test]
    async fn a_body_that_is_not_twentys_is_reported() {
        let twenty = FakeTwenty::start(vec![
            reply(200, "<!doctype html><title>Twenty</title>"),
            reply(200, json!({"data": {"companies": []}, "pageInfo": {"hasNextPage": false}})),
        ])
        .await;
        let client = TwentyClient::new(fast_settings(&twenty.url)).unwrap();
        let html = client.list_page("people", None, None, None).await.unwrap_err();
        assert!(matches!(html, ClientError::UnexpectedResponse { status: 200, .. }), "{html:?}");
        assert!(html.to_string().contains("TWENTY_API_URL"), "{html}");
        let wrong = client.list_page("people", None, None, None).await.unwrap_err();
        assert!(wrong.to_string().contains("companies"), "{wrong}");
        assert_eq!(client.stats().retries, 0);
        twenty.stop().await;
    }
}
