//! What a run measured, and the report: one row per backend and concurrency, the paced runs, and
//! whatever disturbed them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::Utc;

use crate::cpu::CpuUse;
use crate::server::LogSummary;
use crate::workload::{COMPANY_IDS, MAX_BODY_BYTES, MIN_BODY_BYTES, PERSON_IDS};
use crate::{PACED_CONNECTIONS, PACED_RATE, Sizes, WARM_UP};

#[derive(Debug)]
pub struct LoadSummary {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub failures: BTreeMap<String, u64>,
    pub ran_out: bool,
}

impl LoadSummary {
    fn failure_count(&self) -> u64 {
        self.failures.values().sum()
    }

    pub fn describe(&self) -> String {
        let mut text = format!(
            "{:>7.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
            self.per_second, self.p50_ms, self.p99_ms, self.max_ms
        );
        for (kind, count) in &self.failures {
            let _ = write!(text, "  [{count} × {kind}]");
        }
        if self.ran_out {
            text.push_str("  [ran out of deliveries]");
        }
        text
    }
}

pub struct ServiceResult {
    pub load: LoadSummary,
    pub peak_rss_mib: f64,
    pub cpu: CpuUse,
    pub log: LogSummary,
}

impl ServiceResult {
    pub fn describe(&self) -> String {
        let mut text =
            format!("{}  RSS {:.1} MiB  {}", self.load.describe(), self.peak_rss_mib, self.cpu.describe());
        if !self.log.is_quiet() {
            let _ = write!(
                text,
                "\n    server log {}: {} errors, {} warnings, clean exit {}; first line: {}",
                self.log.path.display(),
                self.log.errors,
                self.log.warnings,
                self.log.exited_cleanly,
                self.log.first.as_deref().unwrap_or("")
            );
        }
        text
    }
}

pub struct NaiveResult {
    pub load: LoadSummary,
    pub cpu: CpuUse,
}

impl NaiveResult {
    pub fn describe(&self) -> String {
        format!("{}  {}", self.load.describe(), self.cpu.describe())
    }
}

pub struct Row {
    pub backend: &'static str,
    pub concurrency: usize,
    pub service: ServiceResult,
    pub naive: NaiveResult,
}

pub struct Report {
    pub sizes: Sizes,
    pub rows: Vec<Row>,
    pub paced: Vec<(&'static str, ServiceResult)>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# webhook_load, {}\n", Utc::now().format("%Y-%m-%d %H:%M UTC"));
        let _ = writeln!(
            out,
            "{} cores; {} signed deliveries of {}–{} bytes over {} people and {} companies; \
             {} s measured after {} s of warm-up; fresh database per run.\n",
            std::thread::available_parallelism().map_or(0, usize::from),
            self.sizes.deliveries,
            MIN_BODY_BYTES,
            MAX_BODY_BYTES,
            PERSON_IDS,
            COMPANY_IDS,
            self.sizes.measured.as_secs(),
            WARM_UP.as_secs()
        );
        let _ = writeln!(
            out,
            "| backend | conc | service req/s | p50 ms | p99 ms | peak RSS MiB | non-200 | \
             CPU server / pg / bench / other | naive rows/s | naive p99 ms | ratio |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.rows {
            let (service, naive) = (&row.service, &row.naive);
            let _ = writeln!(
                out,
                "| {} | {}{} | {:.0}{} | {:.2} | {:.2} | {:.1} | {} | {:.2} / {:.2} / {:.2} / {:.2} | {:.0}{} | {:.2} | {:.2} |",
                row.backend,
                row.concurrency,
                if service.cpu.disturbed() || naive.cpu.disturbed() { " *" } else { "" },
                service.load.per_second,
                if service.load.ran_out { " (ran out)" } else { "" },
                service.load.p50_ms,
                service.load.p99_ms,
                service.peak_rss_mib,
                service.load.failure_count(),
                service.cpu.server,
                service.cpu.postgres,
                service.cpu.bench,
                service.cpu.other,
                naive.load.per_second,
                if naive.load.ran_out { " (ran out)" } else { "" },
                naive.load.p99_ms,
                service.load.per_second / naive.load.per_second,
            );
        }
        let _ = writeln!(
            out,
            "\nLatencies are per delivery, client side. CPU in cores over the measured time; other = \
             the rest of the machine. ratio = service deliveries/s ÷ naive rows/s. * = other processes \
             were busy (see below).\n"
        );
        for (backend, paced) in &self.paced {
            let _ = writeln!(
                out,
                "- paced {backend}: {PACED_RATE}/s for {} s over {PACED_CONNECTIONS} connections → \
                 {:.0}/s answered, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} non-200, \
                 peak RSS {:.1} MiB; {}",
                self.sizes.paced_measured.as_secs(),
                paced.load.per_second,
                paced.load.p50_ms,
                paced.load.p99_ms,
                paced.load.max_ms,
                paced.load.failure_count(),
                paced.peak_rss_mib,
                paced.cpu.describe(),
            );
        }
        for (run, load, cpu) in self.runs() {
            for (kind, count) in &load.failures {
                let _ = writeln!(out, "- {run}: {count} × {kind}");
            }
            if cpu.disturbed() {
                let _ = writeln!(
                    out,
                    "- {run} (*): other processes used {:.2} cores before it and {:.2} during it; \
                     its numbers are skewed",
                    cpu.background, cpu.other
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        out
    }
}

impl Report {
    /// Every run, named, with its load and CPU use.
    fn runs(&self) -> Vec<(String, &LoadSummary, &CpuUse)> {
        let mut runs = Vec::new();
        for row in &self.rows {
            let name = format!("{} c={}", row.backend, row.concurrency);
            runs.push((format!("{name} service"), &row.service.load, &row.service.cpu));
            runs.push((format!("{name} naive"), &row.naive.load, &row.naive.cpu));
        }
        for (backend, paced) in &self.paced {
            runs.push((format!("{backend} paced"), &paced.load, &paced.cpu));
        }
        runs
    }
}
