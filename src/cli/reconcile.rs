//! `reconcile`: one run in the foreground, progress on stderr, a summary table on stdout.

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::app::{build_reconciler, open_store};
use crate::cli::{Console, Exit};
use crate::config::Settings;
use crate::mirror::{Mode, RunStatus, Trigger};
use crate::shutdown::cancel_on_signal;
use crate::sync::reconciler::{ReconcileError, RunOutcome, RunRequest};

#[derive(clap::Args)]
pub struct Args {
    /// Only this object (singular name, e.g. person); repeat for several.
    #[arg(long = "object", value_name = "NAME")]
    objects: Vec<String>,
    /// Read every record and infer what was destroyed, instead of what changed since the last run.
    #[arg(long)]
    full: bool,
    /// Report what would change without writing anything.
    #[arg(long)]
    dry_run: bool,
    /// Let a full pass mark more than RECONCILE_MAX_DESTROY_SHARE of an object destroyed.
    #[arg(long)]
    force: bool,
}

impl Args {
    fn request(self) -> RunRequest {
        let mode = if self.full { Mode::Full } else { Mode::Delta };
        RunRequest {
            objects: self.objects,
            dry_run: self.dry_run,
            force: self.force,
            ..RunRequest::new(Trigger::Operator, mode)
        }
    }
}

/// Runs once; SIGTERM or SIGINT stops the run after the pages in flight have committed.
pub async fn run(settings: Settings, args: Args, console: Console) -> anyhow::Result<Exit> {
    let api =
        settings.twenty_api.as_ref().context("the reconciler needs TWENTY_API_URL and TWENTY_API_KEY")?;
    let store = open_store(&settings.database_url).await?;
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn({
        let (shutdown, console) = (shutdown.clone(), console.clone());
        async move {
            if cancel_on_signal(shutdown).await.is_some() {
                console.notice("stopping after the current page…");
            }
        }
    });
    let reconciler =
        build_reconciler(&store, api, &settings.reconcile, shutdown)?.with_progress(console.progress());
    let request = args.request();
    let dry_run = request.dry_run;
    let outcome = reconciler.reconcile_once(request).await;
    // The run is over: a signal from now on has nothing left to stop.
    signals.abort();
    console.finish();
    store.close().await;
    match outcome {
        Ok(outcome) => {
            print!("{}", summary(&outcome, dry_run));
            Ok(Exit::from_success(outcome.status == RunStatus::Succeeded))
        }
        Err(error @ ReconcileError::AlreadyRunning(_)) => {
            eprintln!("twenty-mirror: {error}");
            Ok(Exit::AlreadyRunning)
        }
        Err(error) => Err(error.into()),
    }
}

/// The table printed at the end: a line per object, the total, and how the run ended. A dry run's
/// DESTROYED column counts the rows a full pass found missing, since it marks none.
fn summary(outcome: &RunOutcome, dry_run: bool) -> String {
    let mut out = format!(
        "{:<24} {:<6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "OBJECT", "MODE", "FETCHED", "INSERTED", "UPDATED", "DELETED", "DESTROYED", "UNCHANGED", "REPAIRED"
    );
    for report in &outcome.objects {
        let c = report.counts;
        out += &format!(
            "{:<24} {:<6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            report.object,
            report.mode.as_str(),
            c.fetched,
            c.inserted,
            c.updated,
            c.deleted,
            if dry_run { report.missing as i64 } else { c.destroyed },
            c.unchanged,
            c.repaired
        );
    }
    let c = outcome.counts;
    out += &format!(
        "{:<24} {:<6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "total", "", c.fetched, c.inserted, c.updated, c.deleted, c.destroyed, c.unchanged, c.repaired
    );
    let run =
        outcome.run_id.map(|id| format!("run {id}")).unwrap_or_else(|| "dry run (nothing written)".into());
    out += &format!("{run}: {}, {} requests to Twenty", outcome.status.as_str(), outcome.requests);
    if let Some(error) = &outcome.error {
        out += &format!("\nerror: {error}");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::Counts;
    use crate::sync::reconciler::ObjectReport;

    fn outcome(run_id: Option<i64>, error: Option<&str>) -> RunOutcome {
        let counts = Counts { fetched: 5, inserted: 4, unchanged: 1, repaired: 4, ..Counts::default() };
        RunOutcome {
            run_id,
            status: if error.is_some() { RunStatus::Failed } else { RunStatus::Succeeded },
            error: error.map(str::to_owned),
            counts,
            objects: vec![ObjectReport { object: "person".into(), mode: Mode::Full, counts, missing: 2 }],
            requests: 7,
            quota_exhausted: None,
        }
    }

    #[test]
    fn the_summary_has_a_line_per_object_a_total_and_the_end_of_the_run() {
        let text = summary(&outcome(Some(12), None), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("OBJECT") && lines[0].ends_with("REPAIRED"), "{text}");
        let person: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(person, ["person", "full", "5", "4", "0", "0", "0", "1", "4"]);
        assert!(lines[2].starts_with("total"), "{text}");
        assert_eq!(lines[3], "run 12: succeeded, 7 requests to Twenty");
    }

    #[test]
    fn a_dry_run_counts_the_missing_rows_as_destroyed_and_a_failure_says_why() {
        let dry = summary(&outcome(None, None), true);
        let person: Vec<&str> = dry.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(person[6], "2", "{dry}");
        assert!(dry.contains("dry run (nothing written): succeeded"), "{dry}");
        let failed = summary(&outcome(Some(3), Some("the API key is wrong")), false);
        assert!(
            failed.ends_with("run 3: failed, 7 requests to Twenty\nerror: the API key is wrong\n"),
            "{failed}"
        );
    }
}
