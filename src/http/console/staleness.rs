//! The console's staleness badge: how long ago the mirror last checked an object against Twenty.

use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    Fresh,
    /// The last complete pass is older than `STALE_AFTER`.
    Stale,
    /// Older than twice `STALE_AFTER`, or never reconciled.
    Alert,
}

impl Staleness {
    /// `fresh` up to and including `STALE_AFTER` since the last pass that completed (delta or
    /// full), `stale` past it, `alert` past twice it. An object never reconciled is `alert`: only
    /// webhooks, which Twenty sends at most once, have written it, and nothing has checked it.
    pub fn of(
        last_delta_at: Option<DateTime<Utc>>,
        last_full_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        stale_after: Duration,
    ) -> Staleness {
        let Some(last_pass) = last_delta_at.max(last_full_at) else { return Staleness::Alert };
        // A pass dated after `now` (another instance's clock ahead of ours) is as fresh as can be.
        let age = (now - last_pass).to_std().unwrap_or(Duration::ZERO);
        if age > stale_after * 2 {
            Staleness::Alert
        } else if age > stale_after {
            Staleness::Stale
        } else {
            Staleness::Fresh
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Staleness::Fresh => "fresh",
            Staleness::Stale => "stale",
            Staleness::Alert => "alert",
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn ago(seconds: i64) -> Option<DateTime<Utc>> {
        Some(now() - TimeDelta::seconds(seconds))
    }

    #[test]
    fn the_boundaries() {
        for (age, expected) in [
            (0, Staleness::Fresh),
            (3600, Staleness::Fresh),
            (3601, Staleness::Stale),
            (7200, Staleness::Stale),
            (7201, Staleness::Alert),
            (86_400 * 30, Staleness::Alert),
        ] {
            assert_eq!(Staleness::of(ago(age), None, now(), HOUR), expected, "{age}s after a delta");
            assert_eq!(Staleness::of(None, ago(age), now(), HOUR), expected, "{age}s after a full pass");
        }
    }

    #[test]
    fn the_newer_pass_counts() {
        assert_eq!(Staleness::of(ago(10), ago(90_000), now(), HOUR), Staleness::Fresh);
        assert_eq!(Staleness::of(ago(90_000), ago(4000), now(), HOUR), Staleness::Stale);
    }

    #[test]
    fn never_reconciled_is_an_alert() {
        assert_eq!(Staleness::of(None, None, now(), HOUR), Staleness::Alert);
    }

    #[test]
    fn a_pass_from_the_future_is_fresh() {
        assert_eq!(Staleness::of(ago(-60), None, now(), HOUR), Staleness::Fresh);
    }

    #[test]
    fn the_setting_scales_the_rule() {
        let half_hour = Duration::from_secs(1800);
        assert_eq!(Staleness::of(ago(1801), None, now(), half_hour), Staleness::Stale);
        assert_eq!(Staleness::of(ago(3601), None, now(), half_hour), Staleness::Alert);
    }
}
