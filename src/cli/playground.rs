//! `playground`: the service, started as `serve` starts it, on a temporary SQLite database against
//! a simulated Twenty workspace in this process (`crate::playground`), every socket on 127.0.0.1:
//! a first look without a Twenty account.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};

use crate::Application;
use crate::cli::Exit;
use crate::config::{
    DatabaseUrl, ReconcileSettings, Settings, TwentyApiSettings, WEBHOOK_PATH, WebhookSettings,
    parse_duration,
};
use crate::playground::{DROPPED_SHARE, Driver, NO_EVENT_SHARE, Sender, Workspace};
use crate::subscription::generate_secret;

#[derive(clap::Args)]
pub struct Args {
    /// The port of the service and its console, on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8088)]
    port: u16,
    /// How often the reconciler runs a delta pass (30s, 2m…); a full pass runs every third time.
    #[arg(long, default_value = "20s", value_parser = parse_interval)]
    interval: Duration,
}

/// How often the simulated team changes a record.
const CHANGE_EVERY: Duration = Duration::from_secs(1);

/// A full pass, which finds the destroys whose webhook was lost, every this many delta intervals.
const FULL_PASS_EVERY: u32 = 3;

/// The reconciler's overlap: the simulated workspace has no replica lag and no late commits, and
/// the full pass only infers destroys for rows written more than this before it began, so a short
/// one lets the first minute show them.
const OVERLAP: Duration = Duration::from_secs(2);

/// The full pass's circuit breaker. The simulated workspace destroys records on purpose and is
/// small, so that two lost destroys can be a tenth of an object; its API never breaks, which is
/// what the breaker guards against.
const MAX_DESTROY_SHARE: f64 = 0.5;

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<Exit> {
    // Removed when dropped, on every way out of this function.
    let directory = tempfile::Builder::new()
        .prefix("twenty-mirror-playground-")
        .tempdir()
        .context("creating the playground's temporary directory")?;
    let database = directory.path().join("mirror.db");
    let mut rng = fastrand::Rng::new();
    let workspace = Workspace::start(rng.fork()).await;
    let webhook_secret = generate_secret().context("generating the webhook secret")?;
    let admin_token = generate_secret().context("generating the admin token")?;
    let simulated = Simulated {
        database: &database,
        port: args.port,
        interval: args.interval,
        api_url: workspace.api_url(),
        api_key: workspace.api_key(),
        webhook_secret: &webhook_secret,
        admin_token: &admin_token,
    };
    let app = Application::build(simulated.settings(settings)).await.with_context(|| {
        format!("starting the service on 127.0.0.1:{} (--port 0 picks a free one)", args.port)
    })?;
    let base_url = format!("http://127.0.0.1:{}", app.port());
    let sender = Sender::new(format!("{base_url}{WEBHOOK_PATH}"), webhook_secret)?;
    print!("{}", banner(&base_url, admin_token.expose_secret(), &database, args.interval));

    let driver = tokio::spawn(Driver::new(workspace, sender, rng).run(CHANGE_EVERY, app.shutdown_token()));
    // Stops on SIGINT or SIGTERM, and cancels the token the driver watches.
    let served = app.run_until_stopped().await;
    let (workspace, tally) = driver.await.context("joining the playground's driver")?;
    // Stops the simulated Twenty server.
    drop(workspace);
    served?;
    directory.close().context("removing the playground's temporary directory")?;
    println!("The simulated workspace made {tally}. Its mirror went with the temporary directory.");
    Ok(Exit::Success)
}

fn parse_interval(value: &str) -> Result<Duration, String> {
    match parse_duration(value)? {
        interval if interval.is_zero() => Err("must be longer than zero".to_owned()),
        interval => Ok(interval),
    }
}

/// What the playground puts in place of a deployment's settings.
struct Simulated<'a> {
    database: &'a Path,
    port: u16,
    interval: Duration,
    api_url: &'a str,
    api_key: &'a str,
    webhook_secret: &'a SecretString,
    admin_token: &'a SecretString,
}

impl Simulated<'_> {
    /// `base` (from the environment) with everything that could reach a real database, a real
    /// Twenty or another network interface replaced; the rest, logging included, is kept.
    fn settings(&self, base: Settings) -> Settings {
        Settings {
            database_url: DatabaseUrl::new(format!("sqlite://{}", self.database.display())),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: self.port,
            webhook: WebhookSettings {
                secrets: vec![self.webhook_secret.clone()],
                allow_unsigned: false,
                ..base.webhook
            },
            twenty_api: Some(TwentyApiSettings {
                base_url: self.api_url.to_owned(),
                api_key: SecretString::from(self.api_key),
                // The simulated workspace sets no rate limit: no pacing.
                rate_limits: Vec::new(),
            }),
            reconcile: ReconcileSettings {
                delta_every: Some(self.interval),
                full_every: Some(self.interval * FULL_PASS_EVERY),
                overlap: OVERLAP,
                max_destroy_share: MAX_DESTROY_SHARE,
                objects: None,
            },
            admin_token: Some(self.admin_token.clone()),
            // Twenty's subscription is not checked: the workspace sends to the service directly.
            public_url: None,
            ..base
        }
    }
}

fn banner(base_url: &str, token: &str, database: &Path, interval: Duration) -> String {
    let percent = |share: f64| (share * 100.0).round();
    format!(
        "
twenty-mirror playground
========================
NOT CONNECTED TO A REAL TWENTY. The workspace is simulated in this process: sample people,
companies and opportunities change every second, and each change is sent as a webhook signed as
Twenty signs it, but {no_event}% of the changes send none and {dropped}% of the webhooks are
dropped on purpose. The reconciler repairs what they missed: a delta pass every {interval:?},
a full pass every {full:?}.

  console   {base_url}/
  token     {token}
  database  {database} (SQLite, removed at exit)

The token is this run's ADMIN_TOKEN: sign in to the console with it, or
  curl -H 'Authorization: Bearer {token}' {base_url}/admin/status

Everything listens on 127.0.0.1 only. Ctrl-C stops it.

",
        dropped = percent(DROPPED_SHARE),
        no_event = percent(NO_EVENT_SHARE),
        full = interval * FULL_PASS_EVERY,
        database = database.display(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn what_could_reach_a_real_deployment_is_replaced_and_the_rest_kept() {
        let environment = HashMap::from([
            ("DATABASE_URL", "postgres://mirror:hunter2@db.internal/mirror"),
            ("HOST", "0.0.0.0"),
            ("PORT", "8080"),
            ("TWENTY_API_URL", "https://api.twenty.com"),
            ("TWENTY_API_KEY", "a-real-key"),
            ("TWENTY_WEBHOOK_SECRET", "a-real-secret"),
            ("TWENTY_WEBHOOK_ALLOW_UNSIGNED", "true"),
            ("TWENTY_OBJECTS", "person"),
            ("ADMIN_TOKEN", "the-real-admin-token"),
            ("PUBLIC_URL", "https://mirror.example.com"),
            ("WEBHOOK_MAX_BODY", "1MiB"),
            ("RUST_LOG", "debug"),
        ]);
        let base =
            Settings::from_lookup(|name| environment.get(name).map(|v| v.to_string())).expect("settings");
        let (webhook_secret, admin_token) =
            (SecretString::from("generated-1"), SecretString::from("generated-2"));
        let simulated = Simulated {
            database: Path::new("/tmp/playground-x/mirror.db"),
            port: 0,
            interval: Duration::from_secs(3),
            api_url: "http://127.0.0.1:41000",
            api_key: "fake-key",
            webhook_secret: &webhook_secret,
            admin_token: &admin_token,
        };
        let settings = simulated.settings(base);

        assert_eq!(settings.database_url.expose(), "sqlite:///tmp/playground-x/mirror.db");
        assert_eq!((settings.host, settings.port), (IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        let api = settings.twenty_api.expect("the simulated workspace's API");
        assert_eq!(
            (api.base_url.as_str(), api.api_key.expose_secret()),
            ("http://127.0.0.1:41000", "fake-key")
        );
        let secrets: Vec<&str> = settings.webhook.secrets.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(secrets, ["generated-1"]);
        assert!(!settings.webhook.allow_unsigned, "deliveries are verified");
        assert_eq!(settings.admin_token.as_ref().map(|t| t.expose_secret()), Some("generated-2"));
        assert_eq!(settings.public_url, None);
        let reconcile = settings.reconcile;
        assert_eq!(reconcile.delta_every, Some(Duration::from_secs(3)));
        assert_eq!(reconcile.full_every, Some(Duration::from_secs(9)));
        assert_eq!(reconcile.objects, None, "every object of the simulated workspace");
        assert_eq!(settings.webhook.max_body_bytes, 1 << 20, "kept");
        assert_eq!(settings.log.filter, "debug", "kept");
    }

    #[test]
    fn the_interval_is_a_duration_longer_than_zero() {
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn the_banner_says_it_is_not_twenty_and_gives_the_url_and_the_token() {
        let banner =
            banner("http://127.0.0.1:8088", "t0k3n", Path::new("/tmp/p/mirror.db"), Duration::from_secs(20));
        assert!(banner.contains("NOT CONNECTED TO A REAL TWENTY"));
        assert!(banner.contains("\n  console   http://127.0.0.1:8088/\n"));
        assert!(banner.contains("\n  token     t0k3n\n"));
        assert!(banner.contains("30% of the webhooks are\ndropped on purpose"), "{banner}");
        assert!(banner.contains("a full pass every 60s"), "{banner}");
    }
}
