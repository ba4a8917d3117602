//! The `reconcile` command's progress on stderr. On a terminal: a bar per object with the records
//! read out of Twenty's `totalCount`, the rate and the time left. Elsewhere (a pipe, a log file,
//! CI): a log line per page, in the log's format, so that JSON logs stay JSON.

use std::io::{self, IsTerminal as _};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressState, ProgressStyle};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::sync::reconciler::{Progress, ProgressFn};

/// A bar for a pass whose total Twenty told.
const COUNTED: &str = "{prefix:<24} [{bar:30}] {human_pos}/{human_len} records, {rate}, ETA {eta}, {msg}";
/// A pass without a total: no bar, no time left.
const UNCOUNTED: &str = "{prefix:<24} {human_pos} records, {rate}, {msg}";

/// Where a command shows its progress.
#[derive(Clone)]
pub struct Console {
    bars: Option<Bars>,
}

impl Console {
    /// Bars when stderr is a terminal, log lines otherwise.
    pub fn for_stderr() -> Self {
        if io::stderr().is_terminal() { Console { bars: Some(Bars::default()) } } else { Console::plain() }
    }

    /// Log lines only.
    pub fn plain() -> Self {
        Console { bars: None }
    }

    /// Where log lines go: stderr, with the bars lifted for each line so that it does not tear one.
    pub fn log_writer(&self) -> BoxMakeWriter {
        match &self.bars {
            Some(bars) => {
                let multi = bars.multi.clone();
                BoxMakeWriter::new(move || AroundBars(multi.clone()))
            }
            None => BoxMakeWriter::new(io::stderr),
        }
    }

    /// The reconciler's report of each page it applied.
    pub fn progress(&self) -> ProgressFn {
        match &self.bars {
            Some(bars) => {
                let bars = bars.clone();
                Arc::new(move |progress: &Progress<'_>| bars.show(progress))
            }
            None => {
                let lines = PageLines::default();
                Arc::new(move |progress: &Progress<'_>| lines.log(progress))
            }
        }
    }

    /// A line for the operator, such as what a signal is about to do.
    pub fn notice(&self, text: &str) {
        match &self.bars {
            Some(bars) => bars.multi.suspend(|| eprintln!("{text}")),
            None => tracing::info!("{text}"),
        }
    }

    /// Leaves every bar as it stands, above what the command prints next.
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            for (_, bar) in bars.passes.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                bar.abandon();
            }
        }
    }
}

/// One bar per object, in the order the run reaches them; the newest is the pass going on.
#[derive(Clone, Default)]
struct Bars {
    multi: MultiProgress,
    passes: Arc<Mutex<Vec<(String, ProgressBar)>>>,
}

impl Bars {
    fn show(&self, progress: &Progress<'_>) {
        // A poisoned lock only means a report panicked mid-update; the bars are still usable.
        let mut passes = self.passes.lock().unwrap_or_else(PoisonError::into_inner);
        let fetched = u64::try_from(progress.fetched).unwrap_or_default();
        let bar = match passes.last() {
            Some((object, bar)) if object == progress.object => bar.clone(),
            previous => {
                if let Some((_, bar)) = previous {
                    bar.abandon(); // its pass is over: passes run one object after another
                }
                let bar = self.multi.add(
                    ProgressBar::no_length()
                        .with_style(style(progress.total.is_some()))
                        .with_prefix(format!("{} ({})", progress.object, progress.mode.as_str())),
                );
                bar.set_position(fetched);
                // The first page arrived before the bar existed: the rate starts from the next one.
                bar.reset_eta();
                passes.push((progress.object.to_owned(), bar.clone()));
                bar
            }
        };
        if let Some(total) = progress.total {
            bar.set_length(total);
        }
        bar.set_position(fetched);
        bar.set_message(format!("{} requests", progress.requests));
    }
}

fn style(counted: bool) -> ProgressStyle {
    let template = if counted { COUNTED } else { UNCOUNTED };
    // The templates are constants, checked by a test; the default bar is only a safety net.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |state: &ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = write!(out, "{:.0}/s", state.per_sec());
        })
        .progress_chars("=> ")
}

/// Writes a log line with the bars lifted, so that they are drawn again below it.
struct AroundBars(MultiProgress);

impl io::Write for AroundBars {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.suspend(|| io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.suspend(|| io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// A log line per page, with the rate since the pass's first page and the time left at that rate.
#[derive(Default)]
struct PageLines {
    pass: Mutex<Option<PassStart>>,
}

/// Where the rate of a pass is measured from: its first page.
struct PassStart {
    object: String,
    at: Instant,
    fetched: i64,
}

impl PageLines {
    fn log(&self, progress: &Progress<'_>) {
        let (rate, seconds_left) = self.rate(progress, Instant::now());
        tracing::info!(
            object = progress.object,
            mode = progress.mode.as_str(),
            fetched = progress.fetched,
            total = progress.total,
            rate,
            seconds_left,
            requests = progress.requests,
            "reconcile progress"
        );
    }

    /// Records a second since the pass's first page, and seconds until `total` at that rate;
    /// neither before a second page.
    fn rate(&self, progress: &Progress<'_>, now: Instant) -> (Option<u64>, Option<u64>) {
        let mut pass = self.pass.lock().unwrap_or_else(PoisonError::into_inner);
        let start = match pass.as_ref() {
            Some(start) if start.object == progress.object => start,
            _ => {
                *pass = Some(PassStart {
                    object: progress.object.to_owned(),
                    at: now,
                    fetched: progress.fetched,
                });
                return (None, None);
            }
        };
        let elapsed = now.duration_since(start.at).as_secs_f64();
        let read = progress.fetched.saturating_sub(start.fetched);
        if elapsed <= 0.0 || read <= 0 {
            return (None, None);
        }
        let per_second = read as f64 / elapsed;
        let left = progress.total.map(|total| {
            let remaining = total.saturating_sub(u64::try_from(progress.fetched).unwrap_or_default());
            (remaining as f64 / per_second).ceil() as u64
        });
        (Some(per_second.round() as u64), left)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::mirror::Mode;

    fn page(object: &str, fetched: i64, total: Option<u64>) -> Progress<'_> {
        Progress { object, mode: Mode::Full, fetched, total, requests: 3 }
    }

    #[test]
    fn the_templates_parse() {
        for template in [COUNTED, UNCOUNTED] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn the_rate_runs_from_the_first_page_of_each_pass() {
        let lines = PageLines::default();
        let start = Instant::now();
        assert_eq!(lines.rate(&page("person", 200, Some(1_000)), start), (None, None));
        let later = start + Duration::from_secs(2);
        assert_eq!(lines.rate(&page("person", 600, Some(1_000)), later), (Some(200), Some(2)));
        assert_eq!(lines.rate(&page("person", 800, None), later), (Some(300), None));
        // The next object starts its own measure.
        assert_eq!(lines.rate(&page("company", 200, Some(400)), later), (None, None));
        let after = later + Duration::from_secs(1);
        assert_eq!(lines.rate(&page("company", 400, Some(400)), after), (Some(200), Some(0)));
    }

    #[test]
    fn a_bar_per_object_in_the_order_of_the_run() {
        let bars = Bars::default();
        bars.multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        bars.show(&page("person", 200, Some(500)));
        bars.show(&page("person", 400, Some(500)));
        bars.show(&page("company", 0, None));
        let passes = bars.passes.lock().unwrap();
        let shown: Vec<_> =
            passes.iter().map(|(object, bar)| (object.as_str(), bar.position(), bar.length())).collect();
        assert_eq!(shown, [("person", 400, Some(500)), ("company", 0, None)]);
        assert!(passes[0].1.is_finished(), "the pass before is over");
        assert!(!passes[1].1.is_finished());
    }
}
