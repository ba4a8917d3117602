//! The webhook subscription in Twenty that feeds this service: [`register`] creates it, or updates the
//! one that already points here, and [`check`] verifies it (the `webhook` commands, and `serve` at
//! start when `PUBLIC_URL` is set).
//!
//! The URL is the service's webhook URL, `https://mirror.example.com/webhooks/twenty`, or its base
//! URL, which gets the webhook path appended: [`PublicUrl`] says how.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::{InvalidPublicUrl, PublicUrl};
use crate::twenty::client::{ClientError, Subscription, SubscriptionFields, TwentyClient};

/// The record events the mirror needs: every change Twenty can make to a record.
pub const OPERATIONS: [&str; 5] = ["*.created", "*.updated", "*.deleted", "*.restored", "*.destroyed"];

/// The description of a subscription that `register` makes, as Twenty's settings page shows it.
pub const DESCRIPTION: &str = "twenty-mirror";

/// Random bytes in a generated secret: 256 bits, as much as the HMAC-SHA256 key can use.
const SECRET_BYTES: usize = 32;

/// Target URLs of other subscriptions named when none points at the URL: enough to spot a typo.
const MAX_OTHERS_SHOWN: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error("the webhook URL {0}")]
    InvalidUrl(InvalidPublicUrl),
    #[error("the secret {0}")]
    InvalidSecret(&'static str),
    #[error("cannot generate a secret: the operating system's random number generator failed ({0})")]
    Random(String),
    #[error("listing Twenty's webhook subscriptions failed: {0}")]
    List(ClientError),
    #[error("creating the webhook subscription failed: {cause}{}", retry_advice(.cause))]
    Create { cause: ClientError },
    /// Boxed: with the id beside it, the error would make every `Result` of this module large.
    #[error("updating webhook subscription {id} failed: {cause}")]
    Update { id: String, cause: Box<ClientError> },
}

fn retry_advice(error: &ClientError) -> &'static str {
    if matches!(error, ClientError::NotRetried { .. }) {
        ". Running register again is safe: it updates a subscription that points at the URL instead of \
         adding a second one"
    } else {
        ""
    }
}

/// The webhook URL for `given`, a public URL as [`PublicUrl`] reads it.
fn target_url(given: &str) -> Result<String, SubscriptionError> {
    PublicUrl::parse(given).map(|url| url.webhook_url()).map_err(SubscriptionError::InvalidUrl)
}

/// Whether a subscription's `targetUrl` is `url`: compared as URLs (host case, default port) after
/// dropping a trailing slash.
fn same_target(target: &str, url: &str) -> bool {
    let canonical = |value: &str| {
        let value = value.trim();
        Url::parse(value).map(|u| u.as_str().trim_end_matches('/').to_owned()).unwrap_or_else(|_| {
            // Not a URL we can read: compare the text.
            value.trim_end_matches('/').to_owned()
        })
    };
    canonical(target) == canonical(url)
}

/// 32 bytes from the operating system's random number generator, hex-encoded (64 characters).
pub fn generate_secret() -> Result<SecretString, SubscriptionError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| SubscriptionError::Random(e.to_string()))?;
    let secret = SecretString::from(hex::encode(bytes));
    bytes.fill(0);
    Ok(secret)
}

/// A secret the service can be given: `TWENTY_WEBHOOK_SECRET` is trimmed and split on commas, and an
/// empty secret makes Twenty send unsigned deliveries.
fn validate_secret(secret: &SecretString) -> Result<(), SubscriptionError> {
    let value = secret.expose_secret();
    if value.trim().is_empty() {
        return Err(SubscriptionError::InvalidSecret(
            "is empty: Twenty would send unsigned deliveries; leave --secret out to have one generated",
        ));
    }
    if value.trim() != value {
        return Err(SubscriptionError::InvalidSecret(
            "starts or ends with whitespace, which TWENTY_WEBHOOK_SECRET would drop",
        ));
    }
    if value.contains(',') {
        return Err(SubscriptionError::InvalidSecret(
            "contains a comma, which TWENTY_WEBHOOK_SECRET reads as a separator between secrets",
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
}

/// What [`register`] did.
#[derive(Debug)]
pub struct Registered {
    pub action: Action,
    /// The subscription as Twenty answered.
    pub subscription: Subscription,
    /// The URL it points at.
    pub target_url: String,
    /// The secret it signs with: the service needs it as `TWENTY_WEBHOOK_SECRET`.
    pub secret: SecretString,
    /// Whether the secret was generated (rather than given).
    pub generated_secret: bool,
    /// Further subscriptions that point at the same URL, left as they were.
    pub duplicates: Vec<String>,
}

impl Registered {
    /// What the `webhook register` command prints, the secret included: show it once, to the
    /// operator, and nowhere else.
    pub fn to_text(&self) -> String {
        let verb = match self.action {
            Action::Created => "created",
            Action::Updated => "updated",
        };
        let mut out = format!("{verb} webhook subscription {} in Twenty\n", self.subscription.id);
        out += &format!("  target URL: {}\n", self.target_url);
        out += &format!("  events:     {}\n", self.subscription.operations.join(", "));
        if !self.duplicates.is_empty() {
            out += &format!(
                "note: {} more subscription(s) point at this URL ({}) and were left as they are; Twenty \
                 sends each event once per subscription, so delete the extra ones in Twenty under \
                 Settings → APIs & Webhooks\n",
                self.duplicates.len(),
                self.duplicates.join(", ")
            );
        }
        if self.action == Action::Updated && self.generated_secret {
            out += "note: the subscription now signs with a new secret; until the service has it, it \
                    refuses deliveries with 401 (TWENTY_WEBHOOK_SECRET takes several comma-separated \
                    secrets, OLD,NEW, for the switch; the reconciler repairs what is missed)\n";
        }
        let shown = if self.generated_secret {
            "the secret is shown only this once: store it now"
        } else {
            "the secret you gave"
        };
        out += &format!(
            "\nSet this on the service ({shown}):\nTWENTY_WEBHOOK_SECRET={}\n",
            self.secret.expose_secret()
        );
        out
    }
}

/// Points a subscription at `url` for the record events the mirror needs ([`OPERATIONS`]), signed
/// with `secret` or, without one, with a fresh secret from [`generate_secret`]. A subscription that
/// already points at the URL is updated instead of adding a second one; when several do, the first
/// is updated and the others are named in [`Registered::duplicates`].
pub async fn register(
    client: &TwentyClient,
    url: &str,
    secret: Option<SecretString>,
) -> Result<Registered, SubscriptionError> {
    let target_url = target_url(url)?;
    let (secret, generated_secret) = match secret {
        Some(secret) => {
            validate_secret(&secret)?;
            (secret, false)
        }
        None => (generate_secret()?, true),
    };
    let existing = client.subscriptions().await.map_err(SubscriptionError::List)?;
    let mut matching = existing.into_iter().filter(|s| same_target(&s.target_url, &target_url));
    let first = matching.next();
    let duplicates: Vec<String> = matching.map(|s| s.id).collect();
    let fields = SubscriptionFields {
        target_url: target_url.clone(),
        operations: OPERATIONS.iter().map(|op| (*op).to_owned()).collect(),
        description: Some(DESCRIPTION.to_owned()),
        secret: Some(secret.clone()),
    };
    let (action, subscription) = match first {
        Some(found) => {
            let updated = client.update_subscription(&found.id, &fields).await.map_err(|cause| {
                SubscriptionError::Update { id: found.id.clone(), cause: Box::new(cause) }
            })?;
            (Action::Updated, updated)
        }
        None => (
            Action::Created,
            client.create_subscription(&fields).await.map_err(|cause| SubscriptionError::Create { cause })?,
        ),
    };
    tracing::info!(
        id = %subscription.id,
        target_url = %target_url,
        action = ?action,
        duplicates = duplicates.len(),
        "registered the webhook subscription"
    );
    Ok(Registered { action, subscription, target_url, secret, generated_secret, duplicates })
}

/// An event of [`OPERATIONS`] that a subscription sends only for the objects named.
pub type ScopedOperation = (&'static str, Vec<String>);

/// What [`check`] found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The webhook URL checked.
    pub target_url: String,
    /// The (first) subscription that points at the URL.
    pub subscription: Option<Subscription>,
    /// Further subscriptions that point at it.
    pub duplicates: Vec<String>,
    /// Where the other subscriptions point, when none points at the URL (at most a few).
    pub other_targets: Vec<String>,
    /// Whether the subscription has a non-empty secret.
    pub has_secret: bool,
    /// Events of [`OPERATIONS`] that none of the subscription's operations sends.
    pub missing_operations: Vec<&'static str>,
    /// Events sent only for some objects (`person.*`, `person.created`), with those objects.
    pub scoped_operations: Vec<ScopedOperation>,
    /// Whether the subscription's secret is one of the service's; `None` when not compared.
    pub secret_matches: Option<bool>,
}

impl CheckReport {
    pub fn found(&self) -> bool {
        self.subscription.is_some()
    }

    /// A subscription points at the URL, signs its deliveries, sends every event the mirror needs,
    /// and (when compared) with a secret the service knows.
    pub fn passed(&self) -> bool {
        self.problems().is_empty()
    }

    /// What is wrong, one sentence each; empty when the check passed.
    pub fn problems(&self) -> Vec<String> {
        let Some(subscription) = &self.subscription else {
            let elsewhere = if self.other_targets.is_empty() {
                "the workspace has no subscription".to_owned()
            } else {
                format!("the workspace's subscriptions point at {}", self.other_targets.join(", "))
            };
            return vec![format!("no webhook subscription points at {} ({elsewhere})", self.target_url)];
        };
        let id = &subscription.id;
        let mut problems = Vec::new();
        if !self.has_secret {
            problems.push(format!(
                "subscription {id} has no secret: Twenty sends its deliveries unsigned, and the service \
                 refuses them unless TWENTY_WEBHOOK_ALLOW_UNSIGNED=true"
            ));
        }
        if !self.missing_operations.is_empty() {
            problems.push(format!(
                "subscription {id} does not send {}: the mirror misses those changes until the \
                 reconciler finds them",
                self.missing_operations.join(", ")
            ));
        }
        if self.secret_matches == Some(false) {
            problems.push(format!(
                "subscription {id} signs with a secret that is not in TWENTY_WEBHOOK_SECRET: every \
                 delivery is refused with 401"
            ));
        }
        problems
    }

    /// Compares the subscription's secret with the service's (`TWENTY_WEBHOOK_SECRET`, any of them
    /// during a rotation); nothing is compared when either side has none.
    pub fn compare_secrets(&mut self, configured: &[SecretString]) {
        let Some(secret) = self.subscription.as_ref().and_then(|s| s.secret.as_ref()) else { return };
        if configured.is_empty() {
            return;
        }
        let matches = configured.iter().any(|c| c.expose_secret() == secret.expose_secret());
        self.secret_matches = Some(matches);
    }
}

impl fmt::Display for CheckReport {
    /// The report the `webhook check` command prints; never a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "webhook URL: {}", self.target_url)?;
        if let Some(subscription) = &self.subscription {
            writeln!(f, "subscription: {}", subscription.id)?;
            writeln!(f, "  secret:     {}", if self.has_secret { "set" } else { "none" })?;
            match self.secret_matches {
                Some(true) => writeln!(f, "  secret is one of TWENTY_WEBHOOK_SECRET")?,
                Some(false) => writeln!(f, "  secret is not in TWENTY_WEBHOOK_SECRET")?,
                None => {}
            }
            writeln!(f, "  operations: {}", subscription.operations.join(", "))?;
            for (event, objects) in &self.scoped_operations {
                writeln!(f, "  note: {event} is sent only for {}", objects.join(", "))?;
            }
            if !self.duplicates.is_empty() {
                writeln!(
                    f,
                    "  note: {} more subscription(s) point at this URL ({}); Twenty sends each event once \
                     per subscription",
                    self.duplicates.len(),
                    self.duplicates.join(", ")
                )?;
            }
        }
        let problems = self.problems();
        if problems.is_empty() {
            writeln!(f, "OK: the subscription is signed and sends every event the mirror needs")
        } else {
            for problem in problems {
                writeln!(f, "FAIL: {problem}")?;
            }
            writeln!(f, "fix it with: twenty-mirror webhook register --url {}", self.target_url)
        }
    }
}

/// Which of [`OPERATIONS`] `operations` sends: `*.*` and `*.<action>` send an event for every
/// object, `<object>.*` and `<object>.<action>` only for that object. Returns the events sent for
/// no object, and those sent for some objects only.
fn coverage(operations: &[String]) -> (Vec<&'static str>, Vec<ScopedOperation>) {
    let mut missing = Vec::new();
    let mut scoped = Vec::new();
    for event in OPERATIONS {
        let action = event.trim_start_matches("*.");
        let mut objects = Vec::new();
        let mut everywhere = false;
        for operation in operations {
            let Some((object, op_action)) = operation.trim().split_once('.') else { continue };
            if op_action != "*" && op_action != action {
                continue;
            }
            if object == "*" {
                everywhere = true;
            } else if !objects.iter().any(|o| o == object) {
                objects.push(object.to_owned());
            }
        }
        if everywhere {
            continue;
        }
        if objects.is_empty() {
            missing.push(event);
        } else {
            scoped.push((event, objects));
        }
    }
    (missing, scoped)
}

/// Finds the subscription that points at `url` and reports what is wrong with it.
pub async fn check(client: &TwentyClient, url: &str) -> Result<CheckReport, SubscriptionError> {
    let target_url = target_url(url)?;
    let subscriptions = client.subscriptions().await.map_err(SubscriptionError::List)?;
    let (matching, others): (Vec<Subscription>, Vec<Subscription>) =
        subscriptions.into_iter().partition(|s| same_target(&s.target_url, &target_url));
    let mut matching = matching.into_iter();
    let subscription = matching.next();
    let duplicates = matching.map(|s| s.id).collect();
    let other_targets = if subscription.is_none() {
        let mut targets: Vec<String> = Vec::new();
        for other in others {
            if targets.len() < MAX_OTHERS_SHOWN && !targets.contains(&other.target_url) {
                targets.push(other.target_url);
            }
        }
        targets
    } else {
        Vec::new()
    };
    let (has_secret, missing_operations, scoped_operations) = match &subscription {
        Some(s) => {
            let (missing, scoped) = coverage(&s.operations);
            let has_secret = s.secret.as_ref().is_some_and(|secret| !secret.expose_secret().is_empty());
            (has_secret, missing, scoped)
        }
        None => (false, Vec::new(), Vec::new()),
    };
    Ok(CheckReport {
        target_url,
        subscription,
        duplicates,
        other_targets,
        has_secret,
        missing_operations,
        scoped_operations,
        secret_matches: None,
    })
}

/// The check `serve` runs in the background at start when `PUBLIC_URL` and the Twenty API are
/// configured: a warning naming each problem, or an info line when the subscription is right.
/// Gives up quietly at shutdown; returns the report when the check ran.
pub async fn check_at_start(
    client: TwentyClient,
    public_url: String,
    secrets: Vec<SecretString>,
    shutdown: CancellationToken,
) -> Option<CheckReport> {
    let checked = tokio::select! {
        checked = check(&client, &public_url) => checked,
        _ = shutdown.cancelled() => return None,
    };
    let mut report = match checked {
        Ok(report) => report,
        Err(error) => {
            tracing::warn!(error = %error, "cannot check the webhook subscription in Twenty (PUBLIC_URL)");
            return None;
        }
    };
    report.compare_secrets(&secrets);
    let problems = report.problems();
    if problems.is_empty() {
        tracing::info!(
            url = %report.target_url,
            subscription = report.subscription.as_ref().map(|s| s.id.as_str()).unwrap_or_default(),
            "the webhook subscription in Twenty points here, is signed and sends every event the mirror needs"
        );
    } else {
        tracing::warn!(
            url = %report.target_url,
            "the webhook subscription in Twenty is not right: {}; fix it with `twenty-mirror webhook \
             register --url {}`",
            problems.join("; "),
            report.target_url
        );
    }
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_base_url_gets_the_webhook_path_and_a_bad_one_names_the_webhook_url() {
        assert_eq!(
            target_url("https://mirror.example.com").unwrap(),
            "https://mirror.example.com/webhooks/twenty"
        );
        for bad in ["mirror.example.com", "https://u:p@x/", ""] {
            let error = target_url(bad).expect_err(bad);
            assert!(error.to_string().starts_with("the webhook URL "), "{error}");
        }
    }

    #[test]
    fn targets_compare_as_urls_without_a_trailing_slash() {
        let url = "https://mirror.example.com/webhooks/twenty";
        assert!(same_target("https://mirror.example.com/webhooks/twenty/", url));
        assert!(same_target("https://MIRROR.example.com:443/webhooks/twenty", url));
        assert!(!same_target("https://mirror.example.com/webhooks/twenty/x", url));
        assert!(!same_target("http://mirror.example.com/webhooks/twenty", url));
        assert!(same_target("not a url/", "not a url"));
    }

    #[test]
    fn generated_secrets_are_64_hex_characters_and_differ() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_eq!(a.expose_secret().len(), 64);
        assert!(a.expose_secret().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn secrets_the_service_cannot_take_are_refused() {
        for bad in ["", "  ", " padded", "old,new"] {
            assert!(validate_secret(&SecretString::from(bad)).is_err(), "{bad:?}");
        }
        assert!(validate_secret(&SecretString::from("s3cr3t")).is_ok());
    }

    #[test]
    fn operations_cover_events_in_every_form() {
        assert_eq!(coverage(&ops(&["*.*"])), (vec![], vec![]));
        assert_eq!(coverage(&ops(&OPERATIONS)), (vec![], vec![]));
        let (missing, scoped) = coverage(&ops(&["*.created", "*.updated", "*.deleted"]));
        assert_eq!(missing, ["*.restored", "*.destroyed"]);
        assert!(scoped.is_empty());
        let (missing, scoped) = coverage(&ops(&["person.*", "company.*", "*.created", "note.destroyed"]));
        assert!(missing.is_empty());
        assert_eq!(scoped.len(), 4);
        assert_eq!(scoped[0], ("*.updated", vec!["person".to_owned(), "company".to_owned()]));
        assert_eq!(scoped[3].1, ["person", "company", "note"]);
        let (missing, _) = coverage(&[]);
        assert_eq!(missing, OPERATIONS);
    }

    fn report(subscription: Option<Subscription>) -> CheckReport {
        let (missing, scoped) = subscription.as_ref().map(|s| coverage(&s.operations)).unwrap_or_default();
        CheckReport {
            target_url: "https://m.example/webhooks/twenty".into(),
            has_secret: subscription.as_ref().is_some_and(|s| s.secret.is_some()),
            subscription,
            duplicates: vec![],
            other_targets: vec!["https://elsewhere.example/hook".into()],
            missing_operations: missing,
            scoped_operations: scoped,
            secret_matches: None,
        }
    }

    #[test]
    fn the_report_names_each_problem_and_never_the_secret() {
        let good = Subscription {
            id: "w1".into(),
            target_url: "https://m.example/webhooks/twenty".into(),
            operations: ops(&OPERATIONS),
            description: None,
            secret: Some(SecretString::from("topsecret")),
        };
        let mut ok = report(Some(good.clone()));
        assert!(ok.passed(), "{ok}");
        ok.compare_secrets(&[SecretString::from("old"), SecretString::from("topsecret")]);
        assert_eq!(ok.secret_matches, Some(true));
        let text = ok.to_string();
        assert!(text.contains("OK") && !text.contains("topsecret"), "{text}");
        assert!(!format!("{ok:?}").contains("topsecret"));

        ok.compare_secrets(&[SecretString::from("other")]);
        assert!(!ok.passed() && ok.problems()[0].contains("TWENTY_WEBHOOK_SECRET"), "{ok}");

        let missing = report(None);
        assert!(!missing.passed());
        assert!(missing.problems()[0].contains("elsewhere.example"), "{missing}");

        let unsigned = report(Some(Subscription { secret: None, ..good.clone() }));
        assert!(unsigned.problems()[0].contains("no secret"), "{unsigned}");

        let partial = report(Some(Subscription { operations: ops(&["*.created"]), ..good }));
        let text = partial.to_string();
        assert!(text.contains("FAIL") && text.contains("*.destroyed") && text.contains("register"), "{text}");
    }
}
