//! Which changes reach the service: Twenty sends no webhook for a change made outside its ORM (an
//! import, a script on its database), and loses some of those it sends (a timeout, a crash of its
//! worker, the per-workspace cap). Both are picked evenly rather than at random, so that every run
//! of the playground loses deliveries from its first seconds, and a short test sees the losses it
//! waits for.

/// Of the changes the workspace makes, the share that sends no webhook.
pub const NO_EVENT_SHARE: f64 = 0.1;
/// Of the webhooks Twenty sends, the share lost on purpose.
pub const DROPPED_SHARE: f64 = 0.3;

/// What becomes of a change's webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Send,
    Drop,
    /// Twenty sends nothing for this change.
    NoEvent,
}

/// The plan of each change in turn: [`NO_EVENT_SHARE`] of them send nothing, and
/// [`DROPPED_SHARE`] of the others are dropped.
#[derive(Debug, Clone)]
pub struct Losses {
    no_event: Share,
    dropped: Share,
}

impl Default for Losses {
    fn default() -> Self {
        Losses { no_event: Share::new(NO_EVENT_SHARE), dropped: Share::new(DROPPED_SHARE) }
    }
}

impl Losses {
    pub fn plan(&mut self) -> Plan {
        if self.no_event.take() {
            Plan::NoEvent
        } else if self.dropped.take() {
            Plan::Drop
        } else {
            Plan::Send
        }
    }
}

/// Picks events so that after `n` of them exactly `round(n × share)` were picked.
#[derive(Debug, Clone)]
pub struct Share {
    share: f64,
    seen: u64,
    picked: u64,
}

impl Share {
    /// `share` between 0 (never) and 1 (always); a value outside is brought to the nearer end.
    pub fn new(share: f64) -> Self {
        Share { share: share.clamp(0.0, 1.0), seen: 0, picked: 0 }
    }

    /// Whether the next event is one of the share.
    pub fn take(&mut self) -> bool {
        self.seen += 1;
        // At most one more is due per event, since the share is at most 1.
        let due = (self.seen as f64 * self.share).round() as u64;
        let picked = due > self.picked;
        if picked {
            self.picked += 1;
        }
        picked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(share: f64, events: usize) -> Vec<bool> {
        let mut picker = Share::new(share);
        (0..events).map(|_| picker.take()).collect()
    }

    #[test]
    fn exactly_the_share_is_picked_after_any_number_of_events() {
        for share in [0.0, 0.1, 0.3, 0.5, 0.75, 1.0] {
            let taken = picks(share, 1_000);
            for n in 1..=taken.len() {
                let picked = taken[..n].iter().filter(|&&p| p).count();
                assert_eq!(picked, (n as f64 * share).round() as usize, "share {share} after {n}");
            }
        }
    }

    #[test]
    fn picks_are_spread_evenly_and_start_early() {
        let taken = picks(0.3, 100);
        assert_eq!(taken.iter().position(|&p| p), Some(1), "the second event is the first picked");
        let positions: Vec<usize> = taken.iter().enumerate().filter(|(_, p)| **p).map(|(i, _)| i).collect();
        for gap in positions.windows(2).map(|pair| pair[1] - pair[0]) {
            assert!((3..=4).contains(&gap), "a pick every 3 or 4 events, not {gap}");
        }
    }

    #[test]
    fn of_a_hundred_changes_ten_send_nothing_and_27_of_the_90_others_are_dropped() {
        let mut losses = Losses::default();
        let plans: Vec<Plan> = (0..100).map(|_| losses.plan()).collect();
        let count = |wanted: Plan| plans.iter().filter(|&&plan| plan == wanted).count();
        assert_eq!((count(Plan::NoEvent), count(Plan::Drop), count(Plan::Send)), (10, 27, 63));
        assert_eq!(plans[1], Plan::Drop, "the second change is already lost");
    }

    #[test]
    fn a_share_outside_zero_to_one_is_clamped() {
        assert!(picks(-0.5, 20).iter().all(|&p| !p));
        assert!(picks(7.0, 20).iter().all(|&p| p));
    }
}
