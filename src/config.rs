//! Typed settings, read from the environment once at start and validated there.
//!
//! Every parse error names the variable, so a bad deployment stops with a message an operator can
//! act on instead of misbehaving later.

use std::net::IpAddr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::twenty::pacer::{RateLimit, parse_rate_limits};

/// The database used when `DATABASE_URL` is unset: a file next to the process, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://twenty-mirror.db";

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    pub host: IpAddr,
    pub port: u16,
    pub webhook: WebhookSettings,
    /// How long raw deliveries stay in `webhook_events`.
    pub event_retention: Duration,
    pub log: LogSettings,
    /// Twenty's REST API; the reconciler is off without it.
    pub twenty_api: Option<TwentyApiSettings>,
    pub reconcile: ReconcileSettings,
    /// Bearer token for `/admin/*`; those routes answer 403 without it.
    pub admin_token: Option<SecretString>,
    /// `READ_API_TOKENS`: the bearer tokens the read API accepts; empty, it answers 403.
    pub read_api_tokens: Vec<SecretString>,
    /// `PUBLIC_URL`: where Twenty reaches the service, for checking the webhook subscription in
    /// Twenty at start.
    pub public_url: Option<PublicUrl>,
    /// `STALE_AFTER`: an object whose last complete pass is older is `stale` on the console; twice
    /// as old, `alert`.
    pub stale_after: Duration,
}

#[derive(Debug, Clone)]
pub struct TwentyApiSettings {
    pub base_url: String,
    pub api_key: SecretString,
    /// Our own budget of requests, under Twenty's limits.
    pub rate_limits: Vec<RateLimit>,
}

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// Delta pass cadence; `None` is `off`.
    pub delta_every: Option<Duration>,
    /// Full pass cadence; `None` is `off`.
    pub full_every: Option<Duration>,
    /// How far before the watermark a delta pass starts reading.
    pub overlap: Duration,
    /// The share of an object's rows a full pass may mark destroyed unless forced.
    pub max_destroy_share: f64,
    /// `TWENTY_OBJECTS`: the singular names to mirror; all discovered objects when `None`.
    pub objects: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Every secret a delivery may be signed with; several during a rotation.
    pub secrets: Vec<SecretString>,
    pub allow_unsigned: bool,
    pub max_body_bytes: usize,
    /// Accepted distance between the signature timestamp and our clock, in both directions.
    pub tolerance: Duration,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The connection string, kept secret because it usually carries a password.
#[derive(Debug, Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    pub fn expose(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.0)
    }
}

/// The service's webhook route, appended to a public URL without a path.
pub const WEBHOOK_PATH: &str = "/webhooks/twenty";

/// The service's public base URL (`https://mirror.example.com`) or its full webhook URL, for a proxy
/// that routes another path to the service: `PUBLIC_URL`, and the `--url` of the `webhook` commands.
/// Only `http(s)://host…` without a user, a password or a fragment is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(Url);

#[derive(Debug, thiserror::Error)]
#[error("{given:?} {reason}")]
pub struct InvalidPublicUrl {
    given: String,
    reason: String,
}

impl PublicUrl {
    pub fn parse(given: &str) -> Result<Self, InvalidPublicUrl> {
        let given = given.trim();
        let invalid = |reason: String| InvalidPublicUrl { given: given.to_owned(), reason };
        let url = Url::parse(given).map_err(|e| invalid(format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("must be https://HOST… (or http://)".to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not carry a user name or password".to_owned()));
        }
        if url.fragment().is_some() {
            return Err(invalid("must not have a fragment".to_owned()));
        }
        Ok(PublicUrl(url))
    }

    /// Where Twenty sends deliveries: a base URL (its path empty or `/`) gets [`WEBHOOK_PATH`]
    /// appended, any other path is kept; a trailing slash is dropped.
    pub fn webhook_url(&self) -> String {
        let mut url = self.0.clone();
        if url.path() == "/" || url.path().is_empty() {
            url.set_path(WEBHOOK_PATH);
        }
        url.as_str().trim_end_matches('/').to_owned()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl ConfigError {
    fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self { variable, reason: reason.into() }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of mutating the process
    /// environment. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "expected sqlite://PATH or postgres://USER@HOST/DB",
            ));
        }

        let host = match get("HOST") {
            Some(v) => {
                v.parse().map_err(|_| ConfigError::new("HOST", format!("{v:?} is not an IP address")))?
            }
            None => IpAddr::from([0, 0, 0, 0]),
        };
        let port = match get("PORT") {
            Some(v) => {
                v.parse().map_err(|_| ConfigError::new("PORT", format!("{v:?} is not a port number")))?
            }
            None => 8080,
        };

        let secrets = get("TWENTY_WEBHOOK_SECRET")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| SecretString::from(s.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let allow_unsigned = match get("TWENTY_WEBHOOK_ALLOW_UNSIGNED") {
            Some(v) => parse_bool(&v).map_err(|r| ConfigError::new("TWENTY_WEBHOOK_ALLOW_UNSIGNED", r))?,
            None => false,
        };
        let max_body_bytes = match get("WEBHOOK_MAX_BODY") {
            Some(v) => parse_size(&v).map_err(|r| ConfigError::new("WEBHOOK_MAX_BODY", r))?,
            None => 2 * 1024 * 1024,
        };
        let tolerance = duration_or("WEBHOOK_TOLERANCE", get("WEBHOOK_TOLERANCE"), 5 * 60)?;
        let event_retention = duration_or("EVENT_RETENTION", get("EVENT_RETENTION"), 7 * 24 * 3600)?;

        let format = match get("LOG_FORMAT").as_deref() {
            None => {
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    LogFormat::Pretty
                } else {
                    LogFormat::Json
                }
            }
            Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new("LOG_FORMAT", format!("{other:?}: expected pretty or json")));
            }
        };
        let filter = get("RUST_LOG").unwrap_or_else(|| "info".to_owned());
        tracing_subscriber::EnvFilter::try_new(&filter)
            .map_err(|e| ConfigError::new("RUST_LOG", e.to_string()))?;

        let api_key = get("TWENTY_API_KEY").map(SecretString::from);
        let base_url = get("TWENTY_API_URL").map(|url| url.trim_end_matches('/').to_owned());
        if let Some(url) = &base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::new("TWENTY_API_URL", format!("{url:?}: expected https://HOST")));
        }
        let rate_limits = match get("TWENTY_RATE_LIMIT") {
            Some(v) => parse_rate_limits(&v).map_err(|r| ConfigError::new("TWENTY_RATE_LIMIT", r))?,
            None => RateLimit::twenty_defaults(),
        };
        let twenty_api = match (api_key, base_url) {
            (Some(api_key), Some(base_url)) => Some(TwentyApiSettings { base_url, api_key, rate_limits }),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "TWENTY_API_URL",
                    "must be set with TWENTY_API_KEY: the workspace's base URL, e.g. https://api.twenty.com",
                ));
            }
            (None, _) => None,
        };
        let reconcile = ReconcileSettings {
            delta_every: cadence("RECONCILE_INTERVAL", get("RECONCILE_INTERVAL"), 5 * 60)?,
            full_every: cadence("FULL_SWEEP_INTERVAL", get("FULL_SWEEP_INTERVAL"), 24 * 3600)?,
            overlap: duration_or("RECONCILE_OVERLAP", get("RECONCILE_OVERLAP"), 5 * 60)?,
            max_destroy_share: match get("RECONCILE_MAX_DESTROY_SHARE") {
                Some(v) => parse_share(&v).map_err(|r| ConfigError::new("RECONCILE_MAX_DESTROY_SHARE", r))?,
                None => 0.10,
            },
            objects: get("TWENTY_OBJECTS")
                .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()),
        };

        let public_url = get("PUBLIC_URL").map(|url| PublicUrl::parse(&url)).transpose().map_err(|e| {
            ConfigError::new("PUBLIC_URL", format!("{e}; expected the service's base URL, https://HOST"))
        })?;

        let stale_after = match duration_or("STALE_AFTER", get("STALE_AFTER"), 3600)? {
            d if d.is_zero() => return Err(ConfigError::new("STALE_AFTER", "must be longer than zero")),
            d => d,
        };

        let read_api_tokens = match get("READ_API_TOKENS") {
            Some(v) => parse_token_list(&v).map_err(|r| ConfigError::new("READ_API_TOKENS", r))?,
            None => Vec::new(),
        };

        Ok(Settings {
            database_url: DatabaseUrl::new(database_url),
            host,
            port,
            webhook: WebhookSettings { secrets, allow_unsigned, max_body_bytes, tolerance },
            event_retention,
            log: LogSettings { filter, format },
            twenty_api,
            reconcile,
            admin_token: get("ADMIN_TOKEN").map(SecretString::from),
            read_api_tokens,
            public_url,
            stale_after,
        })
    }
}

/// Comma-separated tokens, each trimmed. An empty entry (`a,,b`, a trailing comma) is refused: it
/// is a typo more often than a wish, and silently dropping it would hide a token cut short.
fn parse_token_list(value: &str) -> Result<Vec<SecretString>, String> {
    value
        .split(',')
        .enumerate()
        .map(|(i, token)| match token.trim() {
            "" => Err(format!("entry {} of the comma-separated list is empty", i + 1)),
            token => Ok(SecretString::from(token.to_owned())),
        })
        .collect()
}

fn duration_or(
    variable: &'static str,
    value: Option<String>,
    default_secs: u64,
) -> Result<Duration, ConfigError> {
    match value {
        Some(v) => parse_duration(&v).map_err(|r| ConfigError::new(variable, r)),
        None => Ok(Duration::from_secs(default_secs)),
    }
}

/// A cadence: a duration, or `off`.
fn cadence(
    variable: &'static str,
    value: Option<String>,
    default_secs: u64,
) -> Result<Option<Duration>, ConfigError> {
    match value.as_deref() {
        Some("off") => Ok(None),
        Some(v) => match parse_duration(v) {
            Ok(d) if d.is_zero() => Err(ConfigError::new(variable, "must be longer than zero, or off")),
            Ok(d) => Ok(Some(d)),
            Err(r) => Err(ConfigError::new(variable, r)),
        },
        None => Ok(Some(Duration::from_secs(default_secs))),
    }
}

/// `10%` or `0.1`, between 0 and 1.
pub fn parse_share(value: &str) -> Result<f64, String> {
    let share = match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => value.parse::<f64>(),
    }
    .map_err(|_| format!("{value:?}: expected a share such as 10% or 0.1"))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!("{value:?} is not between 0% and 100%"))
    }
}

pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{value:?}: expected true or false")),
    }
}

/// `500ms`, `30s`, `5m`, `24h`, `7d`; a bare number is seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let amount: u64 = digits
        .parse()
        .map_err(|_| format!("{value:?}: expected a number with a unit such as 30s, 5m, 24h or 7d"))?;
    let millis_per_unit = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{value:?}: unknown unit {unit:?}; use ms, s, m, h or d")),
    };
    amount
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{value:?} is too large"))
}

/// `2MiB`, `512KiB`, `1MB`, `4096`; a bare number is bytes.
pub fn parse_size(value: &str) -> Result<usize, String> {
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let amount: usize =
        digits.parse().map_err(|_| format!("{value:?}: expected a size such as 2MiB or 512KiB"))?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        _ => return Err(format!("{value:?}: unknown unit {unit:?}; use B, KiB, MiB, KB or MB")),
    };
    match amount.checked_mul(multiplier) {
        Some(0) => Err("must be larger than zero".to_owned()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{value:?} is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_need_no_configuration() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(s.port, 8080);
        assert_eq!(s.webhook.max_body_bytes, 2 * 1024 * 1024);
        assert_eq!(s.webhook.tolerance, Duration::from_secs(300));
        assert_eq!(s.event_retention, Duration::from_secs(7 * 86_400));
        assert!(s.webhook.secrets.is_empty());
        assert!(!s.webhook.allow_unsigned);
    }

    #[test]
    fn stale_after_defaults_to_an_hour() {
        assert_eq!(settings(&[]).unwrap().stale_after, Duration::from_secs(3600));
        assert_eq!(settings(&[("STALE_AFTER", "30m")]).unwrap().stale_after, Duration::from_secs(1800));
        assert_eq!(settings(&[("STALE_AFTER", "2h")]).unwrap().stale_after, Duration::from_secs(7200));
    }

    #[test]
    fn read_api_tokens_are_comma_separated_and_trimmed_without_empty_entries() {
        let s = settings(&[("READ_API_TOKENS", " first ,second")]).unwrap();
        let exposed: Vec<_> =
            s.read_api_tokens.iter().map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned()).collect();
        assert_eq!(exposed, ["first", "second"]);
        assert!(settings(&[]).unwrap().read_api_tokens.is_empty());
        for bad in ["a,,b", "a,", ",a", " , "] {
            let error = settings(&[("READ_API_TOKENS", bad)]).unwrap_err();
            assert_eq!(error.variable, "READ_API_TOKENS", "{bad:?}");
            assert!(error.reason.contains("is empty"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn secrets_are_comma_separated() {
        let s = settings(&[("TWENTY_WEBHOOK_SECRET", "old, new,")]).unwrap();
        let exposed: Vec<_> =
            s.webhook.secrets.iter().map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned()).collect();
        assert_eq!(exposed, ["old", "new"]);
    }

    #[test]
    fn every_malformed_value_names_its_variable() {
        for (variable, value) in [
            ("DATABASE_URL", "mysql://x"),
            ("HOST", "localhost:80"),
            ("PORT", "http"),
            ("PORT", "70000"),
            ("TWENTY_WEBHOOK_ALLOW_UNSIGNED", "maybe"),
            ("WEBHOOK_MAX_BODY", "2 parsecs"),
            ("WEBHOOK_MAX_BODY", "0"),
            ("WEBHOOK_TOLERANCE", "five minutes"),
            ("EVENT_RETENTION", "7w"),
            ("LOG_FORMAT", "xml"),
            ("RUST_LOG", "info,[[["),
            ("TWENTY_API_URL", "api.twenty.com"),
            ("TWENTY_RATE_LIMIT", "lots"),
            ("RECONCILE_INTERVAL", "0s"),
            ("FULL_SWEEP_INTERVAL", "daily"),
            ("RECONCILE_OVERLAP", "-5m"),
            ("RECONCILE_MAX_DESTROY_SHARE", "150%"),
            ("STALE_AFTER", "an hour"),
            ("STALE_AFTER", "0m"),
        ] {
            let err = settings(&[(variable, value)]).expect_err(variable);
            assert_eq!(err.variable, variable);
            assert!(err.to_string().contains(variable), "{err}");
        }
    }

    #[test]
    fn an_api_key_needs_the_api_url() {
        let err = settings(&[("TWENTY_API_KEY", "k")]).unwrap_err();
        assert_eq!(err.variable, "TWENTY_API_URL");
        let s = settings(&[("TWENTY_API_KEY", "k"), ("TWENTY_API_URL", "https://api.twenty.com/")]).unwrap();
        assert_eq!(s.twenty_api.unwrap().base_url, "https://api.twenty.com");
        assert!(settings(&[]).unwrap().twenty_api.is_none(), "the reconciler is off without a key");
    }

    #[test]
    fn reconcile_settings_have_defaults_and_can_be_turned_off() {
        let s = settings(&[]).unwrap().reconcile;
        assert_eq!(s.delta_every, Some(Duration::from_secs(300)));
        assert_eq!(s.full_every, Some(Duration::from_secs(86_400)));
        assert_eq!(s.overlap, Duration::from_secs(300));
        assert!((s.max_destroy_share - 0.10).abs() < 1e-9);
        assert_eq!(s.objects, None);
        let off = settings(&[
            ("RECONCILE_INTERVAL", "off"),
            ("FULL_SWEEP_INTERVAL", "off"),
            ("RECONCILE_MAX_DESTROY_SHARE", "0.25"),
            ("TWENTY_OBJECTS", "person, company"),
        ])
        .unwrap()
        .reconcile;
        assert_eq!((off.delta_every, off.full_every), (None, None));
        assert!((off.max_destroy_share - 0.25).abs() < 1e-9);
        assert_eq!(off.objects, Some(vec!["person".to_owned(), "company".to_owned()]));
    }

    #[test]
    fn durations_and_sizes_parse_their_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_size("2MiB").unwrap(), 2_097_152);
        assert_eq!(parse_size("512KiB").unwrap(), 524_288);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
    }

    #[test]
    fn public_url_is_optional_and_must_be_http() {
        assert_eq!(settings(&[]).unwrap().public_url, None);
        let s = settings(&[("PUBLIC_URL", " https://mirror.example.com ")]).unwrap();
        let url = s.public_url.expect("a public URL");
        assert_eq!(url.webhook_url(), "https://mirror.example.com/webhooks/twenty");
        for bad in
            ["mirror.example.com", "ftp://mirror.example.com", "https://", "https://u:p@x/", "https://x/#f"]
        {
            let err = settings(&[("PUBLIC_URL", bad)]).expect_err(bad);
            assert_eq!(err.variable, "PUBLIC_URL");
            assert!(err.to_string().contains("PUBLIC_URL"), "{err}");
        }
    }

    #[test]
    fn a_base_url_gets_the_webhook_path() {
        for (given, expected) in [
            ("https://mirror.example.com", "https://mirror.example.com/webhooks/twenty"),
            ("https://mirror.example.com/", "https://mirror.example.com/webhooks/twenty"),
            (" https://Mirror.Example.com:443 ", "https://mirror.example.com/webhooks/twenty"),
            ("https://mirror.example.com/webhooks/twenty/", "https://mirror.example.com/webhooks/twenty"),
            ("http://10.0.0.2:8080/hooks/crm", "http://10.0.0.2:8080/hooks/crm"),
        ] {
            assert_eq!(PublicUrl::parse(given).unwrap().webhook_url(), expected, "{given}");
        }
        for bad in ["mirror.example.com", "ftp://x/y", "https://u:p@x/", "https://x/#f", "", "https://"] {
            let error = PublicUrl::parse(bad).expect_err(bad);
            assert!(error.to_string().starts_with(&format!("{:?} ", bad.trim())), "{error}");
        }
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let s =
            settings(&[("DATABASE_URL", "postgres://u:hunter2@db/x"), ("TWENTY_WEBHOOK_SECRET", "s3cr3t")])
                .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("s3cr3t"), "{debug}");
    }
}
