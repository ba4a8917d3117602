//! `webhook register` and `webhook check`: the subscription in Twenty that feeds this service.

use secrecy::SecretString;

use crate::app::twenty_client;
use crate::cli::Exit;
use crate::config::Settings;
use crate::subscription;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Subscribe URL to every record event and print the secret to set as TWENTY_WEBHOOK_SECRET.
    ///
    /// The subscription gets the five record events (*.created, *.updated, *.deleted, *.restored,
    /// *.destroyed) and a fresh secret, printed once. A subscription that already points at URL is
    /// updated (its secret replaced) rather than duplicated.
    Register {
        /// The service's webhook URL, https://HOST/webhooks/twenty; a base URL (https://HOST) gets
        /// /webhooks/twenty appended, any other path is kept.
        #[arg(long, value_name = "URL", env = "PUBLIC_URL")]
        url: String,
        /// Sign with this secret (e.g. the one already in TWENTY_WEBHOOK_SECRET) instead of 32
        /// random bytes from the operating system, hex-encoded.
        #[arg(long, value_name = "SECRET")]
        secret: Option<String>,
    },
    /// Verify the subscription for URL; exit 1 when it is missing, unsigned or misses events.
    ///
    /// Passes when a subscription points at URL, has a secret (one of TWENTY_WEBHOOK_SECRET, when
    /// that is set) and sends every record event.
    Check {
        /// The service's webhook URL, as for register.
        #[arg(long, value_name = "URL", env = "PUBLIC_URL")]
        url: String,
    },
}

pub async fn run(settings: Settings, command: Command) -> anyhow::Result<Exit> {
    let Some(api) = &settings.twenty_api else {
        eprintln!(
            "twenty-mirror: `webhook` needs TWENTY_API_URL and TWENTY_API_KEY (a key from Twenty's \
             Settings → APIs & Webhooks)"
        );
        return Ok(Exit::Settings);
    };
    let client = twenty_client(api)?;
    match command {
        Command::Register { url, secret } => {
            let registered = subscription::register(&client, &url, secret.map(SecretString::from)).await?;
            print!("{}", registered.to_text());
            Ok(Exit::Success)
        }
        Command::Check { url } => {
            let mut report = subscription::check(&client, &url).await?;
            report.compare_secrets(&settings.webhook.secrets);
            print!("{report}");
            Ok(Exit::from_success(report.passed()))
        }
    }
}
