//! The console's two pictures, drawn on the server as SVG: deliveries per hour by outcome over the
//! last day, and what each run of the last week repaired. The data is shaped first (pure, tested),
//! then drawn.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use maud::{Markup, html};

use crate::mirror::{EventOutcome, HourlyDeliveries, RunRow};

/// The deliveries chart covers the current hour and the 23 before it.
pub const HOURS: usize = 24;
/// The repaired chart covers a week.
pub const REPAIRED_WINDOW: TimeDelta = TimeDelta::days(7);

/// One hour's deliveries, by outcome in the order of [`EventOutcome::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourBucket {
    pub hour: DateTime<Utc>,
    pub counts: [i64; EventOutcome::ALL.len()],
}

impl HourBucket {
    pub fn total(&self) -> i64 {
        self.counts.iter().sum()
    }
}

/// The start of the first hour the deliveries chart shows: what to ask the store from.
pub fn first_hour(now: DateTime<Utc>) -> DateTime<Utc> {
    let this_hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
    this_hour - TimeDelta::hours(HOURS as i64 - 1)
}

/// Every hour of the chart, oldest first, with the counts the store gave (zero where none);
/// rows outside the chart's hours are left out.
pub fn deliveries_by_hour(now: DateTime<Utc>, rows: &[HourlyDeliveries]) -> Vec<HourBucket> {
    let first = first_hour(now);
    let mut buckets: Vec<HourBucket> = (0..HOURS)
        .map(|i| HourBucket {
            hour: first + TimeDelta::hours(i as i64),
            counts: [0; EventOutcome::ALL.len()],
        })
        .collect();
    for row in rows {
        let bucket = buckets.iter_mut().find(|b| b.hour == row.hour);
        let series = EventOutcome::ALL.iter().position(|o| *o == row.outcome);
        if let (Some(bucket), Some(series)) = (bucket, series) {
            bucket.counts[series] += row.deliveries;
        }
    }
    buckets
}

/// What one run repaired, when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairedPoint {
    pub run_id: i64,
    pub started_at: DateTime<Utc>,
    pub repaired: i64,
}

/// The runs of the last week, oldest first.
pub fn repaired_per_run(now: DateTime<Utc>, runs: &[RunRow]) -> Vec<RepairedPoint> {
    let since = now - REPAIRED_WINDOW;
    let mut points: Vec<RepairedPoint> = runs
        .iter()
        .filter(|run| run.started_at >= since && run.started_at <= now)
        .map(|run| RepairedPoint {
            run_id: run.id,
            started_at: run.started_at,
            repaired: run.counts.repaired,
        })
        .collect();
    points.sort_by_key(|p| (p.started_at, p.run_id));
    points
}

// The drawing area, in SVG user units; the SVG scales to the page's width.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 40.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 20.0;
const PLOT_WIDTH: f64 = WIDTH - LEFT - 10.0;
const PLOT_HEIGHT: f64 = HEIGHT - TOP - BOTTOM;

fn frame(label: &str, max: i64, body: Markup) -> Markup {
    let view_box = format!("0 0 {WIDTH} {HEIGHT}");
    html! {
        svg.chart viewBox=(view_box) role="img" aria-label=(label) {
            line.axis x1=(LEFT) y1=(TOP + PLOT_HEIGHT) x2=(LEFT + PLOT_WIDTH) y2=(TOP + PLOT_HEIGHT) {}
            text.tick x=(LEFT - 4.0) y=(TOP + 8.0) text-anchor="end" { (max) }
            text.tick x=(LEFT - 4.0) y=(TOP + PLOT_HEIGHT) text-anchor="end" { "0" }
            (body)
        }
    }
}

/// Stacked bars, one an hour, a colour an outcome (the page's CSS names them `o-applied`, …).
pub fn deliveries_svg(buckets: &[HourBucket]) -> Markup {
    let max = buckets.iter().map(HourBucket::total).max().unwrap_or(0);
    let scale = PLOT_HEIGHT / max.max(1) as f64;
    let slot = PLOT_WIDTH / buckets.len().max(1) as f64;
    frame(
        "deliveries per hour by outcome, last 24 hours",
        max,
        html! {
            @if max == 0 {
                text.empty x=(LEFT + PLOT_WIDTH / 2.0) y=(TOP + PLOT_HEIGHT / 2.0) text-anchor="middle" {
                    "no deliveries in the last 24 hours"
                }
            }
            @for (i, bucket) in buckets.iter().enumerate() {
                @let x = LEFT + i as f64 * slot + 1.0;
                g {
                    title { (hour_summary(bucket)) }
                    @for (outcome, y, height) in stack(bucket, scale) {
                        @let class = format!("o-{}", outcome.as_str());
                        rect class=(class) x=(x) y=(y) width=(slot - 2.0) height=(height) {}
                    }
                }
                @if i % 6 == 0 {
                    text.tick x=(x) y=(HEIGHT - 6.0) { (bucket.hour.format("%H:00")) }
                }
            }
        },
    )
}

/// The segments of an hour's bar, bottom up: each outcome with deliveries, its top and height.
fn stack(bucket: &HourBucket, scale: f64) -> Vec<(EventOutcome, f64, f64)> {
    let mut top = TOP + PLOT_HEIGHT;
    let mut segments = Vec::new();
    for (outcome, count) in EventOutcome::ALL.into_iter().zip(bucket.counts) {
        if count > 0 {
            let height = count as f64 * scale;
            top -= height;
            segments.push((outcome, top, height));
        }
    }
    segments
}

fn hour_summary(bucket: &HourBucket) -> String {
    let counts: Vec<String> = EventOutcome::ALL
        .iter()
        .zip(bucket.counts)
        .filter(|(_, count)| *count > 0)
        .map(|(outcome, count)| format!("{count} {}", outcome.as_str()))
        .collect();
    let counts = if counts.is_empty() { "none".to_owned() } else { counts.join(", ") };
    format!("{} UTC: {counts}", bucket.hour.format("%Y-%m-%d %H:00"))
}

/// A bar a run, placed at its start in the week.
pub fn repaired_svg(now: DateTime<Utc>, points: &[RepairedPoint]) -> Markup {
    let since = now - REPAIRED_WINDOW;
    let max = points.iter().map(|p| p.repaired).max().unwrap_or(0);
    let scale = PLOT_HEIGHT / max.max(1) as f64;
    let window = REPAIRED_WINDOW.num_seconds() as f64;
    let x_of = |at: DateTime<Utc>| LEFT + (at - since).num_seconds() as f64 / window * (PLOT_WIDTH - 3.0);
    frame(
        "records repaired per run, last 7 days",
        max,
        html! {
            @if points.is_empty() {
                text.empty x=(LEFT + PLOT_WIDTH / 2.0) y=(TOP + PLOT_HEIGHT / 2.0) text-anchor="middle" {
                    "no runs in the last 7 days"
                }
            }
            @for day in 0..7 {
                @let at = since + TimeDelta::days(day);
                text.tick x=(x_of(at)) y=(HEIGHT - 6.0) { (at.format("%a %d")) }
            }
            @for point in points {
                @let height = (point.repaired as f64 * scale).max(1.0);
                @let x = x_of(point.started_at);
                rect.repaired x=(x) y=(TOP + PLOT_HEIGHT - height) width="3" height=(height) {
                    title {
                        "run " (point.run_id) ", " (point.started_at.format("%Y-%m-%d %H:%M UTC")) ": "
                        (point.repaired) " repaired"
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::{Counts, Mode, RunStatus, Trigger};

    fn at(text: &str) -> DateTime<Utc> {
        crate::change::parse_timestamp(text).unwrap()
    }

    fn row(hour: &str, outcome: EventOutcome, deliveries: i64) -> HourlyDeliveries {
        HourlyDeliveries { hour: at(hour), outcome, deliveries }
    }

    #[test]
    fn the_day_ends_with_the_current_hour() {
        let now = at("2026-09-21T10:15:30Z");
        assert_eq!(first_hour(now), at("2026-09-20T11:00:00Z"));
        let buckets = deliveries_by_hour(now, &[]);
        assert_eq!(buckets.len(), 24);
        assert_eq!(buckets[0].hour, at("2026-09-20T11:00:00Z"));
        assert_eq!(buckets[23].hour, at("2026-09-21T10:00:00Z"));
        assert!(buckets.windows(2).all(|w| w[1].hour - w[0].hour == TimeDelta::hours(1)));
        assert!(buckets.iter().all(|b| b.total() == 0), "empty hours are zero");
        assert_eq!(first_hour(at("2026-09-21T10:00:00Z")), at("2026-09-20T11:00:00Z"));
    }

    #[test]
    fn outcomes_fill_their_series_in_their_hour() {
        let now = at("2026-09-21T10:15:30Z");
        let buckets = deliveries_by_hour(
            now,
            &[
                row("2026-09-20T11:00:00Z", EventOutcome::Applied, 5),
                row("2026-09-20T11:00:00Z", EventOutcome::Failed, 1),
                row("2026-09-21T10:00:00Z", EventOutcome::Duplicate, 2),
                row("2026-09-21T10:00:00Z", EventOutcome::Applied, 3),
                // Outside the chart: before its first hour, and later than now.
                row("2026-09-20T10:00:00Z", EventOutcome::Applied, 100),
                row("2026-09-21T11:00:00Z", EventOutcome::Applied, 100),
            ],
        );
        assert_eq!(buckets[0].counts, [5, 0, 0, 0, 1]);
        assert_eq!(buckets[23].counts, [3, 0, 2, 0, 0]);
        assert_eq!(buckets.iter().map(HourBucket::total).sum::<i64>(), 11);
        assert!(buckets[1..23].iter().all(|b| b.total() == 0));
    }

    #[test]
    fn the_svg_draws_each_outcome_and_says_when_empty() {
        let now = at("2026-09-21T10:15:30Z");
        let empty = deliveries_svg(&deliveries_by_hour(now, &[])).into_string();
        assert!(empty.contains("no deliveries in the last 24 hours"), "{empty}");
        assert!(!empty.contains("<rect"));
        let drawn = deliveries_svg(&deliveries_by_hour(
            now,
            &[
                row("2026-09-21T09:00:00Z", EventOutcome::Applied, 4),
                row("2026-09-21T09:00:00Z", EventOutcome::Stale, 2),
            ],
        ))
        .into_string();
        assert_eq!(drawn.matches("<rect").count(), 2, "{drawn}");
        assert!(drawn.contains(r#"class="o-applied""#) && drawn.contains(r#"class="o-stale""#));
        assert!(drawn.contains("2026-09-21 09:00 UTC: 4 applied, 2 stale"), "{drawn}");
        // The tallest bar fills the plot: 4 + 2 = 6 is the maximum.
        assert!(drawn.contains(&format!(r#"height="{}""#, PLOT_HEIGHT * 4.0 / 6.0)), "{drawn}");
    }

    fn run(id: i64, started_at: &str, repaired: i64) -> RunRow {
        RunRow {
            id,
            trigger: Trigger::Schedule,
            mode: Mode::Delta,
            objects: vec![],
            started_at: at(started_at),
            ended_at: None,
            status: RunStatus::Succeeded,
            error: None,
            counts: Counts { repaired, ..Counts::default() },
        }
    }

    #[test]
    fn repaired_covers_the_week_oldest_first() {
        let now = at("2026-09-21T10:00:00Z");
        let points = repaired_per_run(
            now,
            &[
                run(9, "2026-09-21T09:00:00Z", 3),
                run(8, "2026-09-14T10:00:00Z", 1),
                run(7, "2026-09-14T09:59:59Z", 50),
            ],
        );
        let ids: Vec<i64> = points.iter().map(|p| p.run_id).collect();
        assert_eq!(ids, [8, 9], "the run older than a week is left out");
        assert_eq!(points[1].repaired, 3);
        let svg = repaired_svg(now, &points).into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("run 9, 2026-09-21 09:00 UTC: 3 repaired"), "{svg}");
        assert!(repaired_svg(now, &[]).into_string().contains("no runs in the last 7 days"));
    }
}
