//! The driver: a change in the workspace at a steady pace, each sent to the service as a signed
//! delivery or lost on purpose, until shutdown.

use std::fmt;
use std::time::Duration;

use fastrand::Rng;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::delivery::{Answer, Sender};
use super::losses::{Losses, Plan};
use super::workspace::Workspace;

/// What became of the changes, for the summary at exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub changes: u64,
    /// Sent and answered 2xx.
    pub delivered: u64,
    /// Lost on purpose.
    pub dropped: u64,
    /// Made where Twenty sends no webhook.
    pub no_event: u64,
    /// Sent, and refused or not answered.
    pub failed: u64,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} changes: {} delivered, {} dropped on purpose, {} sent no webhook, {} not accepted",
            self.changes, self.delivered, self.dropped, self.no_event, self.failed
        )
    }
}

pub struct Driver {
    workspace: Workspace,
    sender: Sender,
    losses: Losses,
    /// For the nonces.
    rng: Rng,
    tally: Tally,
}

impl Driver {
    pub fn new(workspace: Workspace, sender: Sender, rng: Rng) -> Self {
        Driver { workspace, sender, losses: Losses::default(), rng, tally: Tally::default() }
    }

    /// Makes a change every `every` until `shutdown`; answers the workspace (whose server stops
    /// when it is dropped) and the tally.
    pub async fn run(mut self, every: Duration, shutdown: CancellationToken) -> (Workspace, Tally) {
        let mut ticks = tokio::time::interval(every);
        // A slow answer delays the next change rather than bunching the ones after it.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.step().await,
                () = shutdown.cancelled() => return (self.workspace, self.tally),
            }
        }
    }

    async fn step(&mut self) {
        let change = self.workspace.change();
        let event = change.event_name();
        let record_id = change.record_id().to_owned();
        self.tally.changes += 1;
        match self.losses.plan() {
            Plan::NoEvent => {
                self.tally.no_event += 1;
                tracing::info!(%event, %record_id, "{event}: no webhook (changed outside Twenty's ORM)");
            }
            Plan::Drop => {
                self.tally.dropped += 1;
                tracing::info!(%event, %record_id, "{event}: webhook dropped on purpose");
            }
            Plan::Send => {
                let mut nonce = [0u8; 16];
                self.rng.fill(&mut nonce);
                match self.sender.send(&change, nonce).await {
                    Answer::Accepted(outcome) => {
                        self.tally.delivered += 1;
                        tracing::info!(%event, %record_id, %outcome, "{event}: delivered, {outcome}");
                    }
                    Answer::Refused(status) => {
                        self.tally.failed += 1;
                        tracing::warn!(%event, %record_id, status, "{event}: the service answered {status}");
                    }
                    Answer::Unanswered(error) => {
                        self.tally.failed += 1;
                        tracing::warn!(%event, %record_id, %error, "{event}: the service did not answer");
                    }
                }
            }
        }
    }
}
