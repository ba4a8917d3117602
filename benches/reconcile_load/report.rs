//! The report: the figures of each pass against their targets, and what disturbed them.

use std::fmt::Write as _;
use std::time::Duration;

use twenty_mirror::mirror::RunStatus;
use twenty_mirror::twenty::pacer::RateLimit;

use crate::machine::DISTURBING_BACKGROUND;
use crate::passes::{Measured, PAGE_SIZE, Paced, RawPass};
use crate::people::{MAX_RECORD_BYTES, MIN_RECORD_BYTES, SOFT_DELETED_PERCENT, UPDATED_STEP_MS};
use crate::{OVERLAP, Sizes};

// Targets.
const TARGET_RATE: f64 = 20_000.0;
const TARGET_MEMORY_MIB: f64 = 100.0;
const TARGET_PACED_RATIO: f64 = 1.05;

pub struct Report {
    sizes: Sizes,
    pub average_bytes: usize,
    pub raw: Option<RawPass>,
    pub full: Vec<(&'static str, &'static str, Measured)>,
    pub delta: Vec<(&'static str, Measured)>,
    pub paced: Option<Paced>,
    pub notes: Vec<String>,
    pub total: Duration,
}

impl Report {
    pub fn new(sizes: Sizes) -> Self {
        Report {
            sizes,
            average_bytes: 0,
            raw: None,
            full: Vec::new(),
            delta: Vec::new(),
            paced: None,
            notes: Vec::new(),
            total: Duration::ZERO,
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A pass that began while something else kept the machine busy is flagged.
fn disturbed_note(backend: &str, pass: &str, background: f64) -> String {
    format!(
        "{backend} {pass}: {background:.2} cores were busy before the pass (another process); its figures \
         are disturbed"
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "**MISSED**" }
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut missed = Vec::new();
        let mut disturbed = Vec::new();
        self.header(&mut out);
        self.full_passes(&mut out, &mut missed);
        self.cpu(&mut out, &mut disturbed);
        self.wal(&mut out);
        self.fetch(&mut out);
        self.delta_passes(&mut out, &mut missed);
        self.paced_pass(&mut out, &mut missed);
        self.summary(&mut out);
        if !missed.is_empty() {
            let _ = writeln!(out, "\nMissed:");
            for line in &missed {
                let _ = writeln!(out, "- {line}");
            }
        }
        if !disturbed.is_empty() {
            let _ = writeln!(out, "\nDisturbed:");
            for line in &disturbed {
                let _ = writeln!(out, "- {line}");
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(out, "\nNotes:");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }

    /// What was measured, on what.
    fn header(&self, out: &mut String) {
        let _ = writeln!(out, "# Reconciler load\n");
        let _ = writeln!(
            out,
            "{} `person` records, {} B on average serialised ({MIN_RECORD_BYTES}–{MAX_RECORD_BYTES} B), \
             {SOFT_DELETED_PERCENT}% soft-deleted, served by the fake Twenty in this process. Pages of \
             {PAGE_SIZE}. Total bench time {:.0} s.\n",
            self.sizes.full_records,
            self.average_bytes,
            self.total.as_secs_f64()
        );
    }

    /// Section 1: the full passes, their rate and memory.
    fn full_passes(&self, out: &mut String, missed: &mut Vec<String>) {
        let _ = writeln!(out, "## 1. Full pass, no rate limit\n");
        let _ = writeln!(
            out,
            "Records/s = fetched / wall time of `reconcile_once`. Memory: resident set growth over the \
             VmRSS just before the pass (the fake's records already loaded), sampled every 10 ms, and \
             VmHWM (reset before the pass) minus the same baseline; VmHWM is the process's own, the \
             fake's records included.\n"
        );
        let _ = writeln!(
            out,
            "| backend | pass | status | fetched | inserted | unchanged | requests | wall | records/s | \
             rate ≥ {TARGET_RATE:.0}/s | RSS before | peak growth (sampled) | VmHWM growth | VmHWM | \
             memory < {TARGET_MEMORY_MIB:.0} MiB |"
        );
        let _ = writeln!(out, "|---|---|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|---|");
        for (backend, pass, m) in &self.full {
            let succeeded = m.status == RunStatus::Succeeded;
            let rate_ok = succeeded && m.rate() >= TARGET_RATE;
            let memory_ok = m.memory.growth_mib() < TARGET_MEMORY_MIB;
            if !rate_ok {
                missed.push(format!(
                    "{backend} {pass} full pass: {:.0} records/s < {TARGET_RATE:.0}",
                    m.rate()
                ));
            }
            if !memory_ok {
                missed.push(format!(
                    "{backend} {pass} full pass: memory growth {:.1} MiB ≥ {TARGET_MEMORY_MIB:.0}",
                    m.memory.growth_mib()
                ));
            }
            if let Some(error) = &m.error {
                missed.push(format!("{backend} {pass} full pass failed: {error}"));
            }
            if m.rate_limited > 0 {
                missed.push(format!("{backend} {pass} full pass: {} answers were 429", m.rate_limited));
            }
            let _ = writeln!(
                out,
                "| {backend} | {pass} | {:?} | {} | {} | {} | {} | {:.2} s | {:.0} | {} | {:.0} MiB | \
                 {:.1} MiB | {} | {:.0} MiB | {} |",
                m.status,
                m.counts.fetched,
                m.counts.inserted,
                m.counts.unchanged,
                m.requests,
                m.wall.as_secs_f64(),
                m.rate(),
                verdict(rate_ok),
                mib(m.memory.baseline),
                m.memory.sampled_growth_mib(),
                m.memory.hwm_growth_mib().map_or("n/a".to_owned(), |g| format!("{g:.1} MiB")),
                mib(m.memory.hwm),
                verdict(memory_ok),
            );
        }
    }

    /// Who used the CPU over each pass.
    fn cpu(&self, out: &mut String, disturbed: &mut Vec<String>) {
        let _ = writeln!(
            out,
            "\nCPU over each pass, in CPU-seconds: this process's threads, split into the reconciler's \
             (its async code, the HTTP client, JSON, the PostgreSQL driver), sqlx's SQLite worker threads \
             (SQLite itself) and the fake's; the PostgreSQL backends serving the bench's database. Their \
             sum is about the least wall time a pass can take on one idle core (waits for fsync come on \
             top; the reconciler fetches the next page while it writes the ones before, so on more cores \
             it can take less): \"bound\" is fetched / that sum. \"Machine\" is every process's CPU on \
             average over the pass, in cores (this machine has {}); \"before\" the same over the half second before it, when nothing of ours ran. \"I/O \
             stall\" is the time in which some task of the machine waited for I/O (`/proc/pressure/io`).\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let _ = writeln!(
            out,
            "| backend | pass | wall | reconciler | SQLite worker | fake | PostgreSQL | sum | bound | \
             machine | I/O stall | before |"
        );
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for (backend, pass, m) in self
            .full
            .iter()
            .map(|(b, p, m)| (b, *p, m))
            .chain(self.delta.iter().map(|(b, m)| (b, "delta", m)))
        {
            let c = &m.cpu;
            let wall = m.wall.as_secs_f64();
            if c.background > DISTURBING_BACKGROUND {
                disturbed.push(disturbed_note(backend, pass, c.background));
            }
            let _ = writeln!(
                out,
                "| {backend} | {pass} | {wall:.2} s | {:.2} s | {:.2} s | {:.2} s | {} | {:.2} s | {:.0}/s | \
                 {:.2} cores | {} | {:.2} cores |",
                c.reconciler,
                c.sqlite_worker,
                c.fake,
                c.postgres.map_or("–".to_owned(), |p| format!("{p:.2} s")),
                c.sequential(),
                m.counts.fetched as f64 / c.sequential().max(0.01),
                c.machine / wall.max(1e-9),
                c.io_stall.map_or("n/a".to_owned(), |s| format!("{s:.2} s")),
                c.background
            );
        }
    }

    /// PostgreSQL's WAL over each pass, when there is one.
    fn wal(&self, out: &mut String) {
        let wal_rows: Vec<_> = self
            .full
            .iter()
            .map(|(b, p, m)| (b, *p, m))
            .chain(self.delta.iter().map(|(b, m)| (b, "delta", m)))
            .filter_map(|(backend, pass, m)| m.wal.map(|wal| (backend, pass, m, wal)))
            .collect();
        if !wal_rows.is_empty() {
            let _ = writeln!(
                out,
                "\nPostgreSQL's WAL over each pass (`pg_stat_wal`, cluster-wide; the times count the bench's \
                 sessions only): a page commits in its own transaction, and each commit waits for its WAL \
                 to be flushed.\n"
            );
            let _ =
                writeln!(out, "| backend | pass | wall | WAL written | WAL syncs | write time | sync time |");
            let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|");
            for (backend, pass, m, wal) in wal_rows {
                let _ = writeln!(
                    out,
                    "| {backend} | {pass} | {:.2} s | {:.0} MB | {} | {:.2} s | {:.2} s |",
                    m.wall.as_secs_f64(),
                    wal.bytes / 1e6,
                    wal.syncs,
                    wal.write_ms / 1000.0,
                    wal.sync_ms / 1000.0
                );
            }
        }
    }

    /// Section 2: a fetch on its own.
    fn fetch(&self, out: &mut String) {
        let _ = writeln!(out, "\n## 2. Where the time of a full pass goes\n");
        let _ = writeln!(
            out,
            "The reconciler fetches and converts the next page while it writes the ones before, so the \
             bench does not time those parts apart; the CPU table of section 1 says who worked."
        );
        if let Some(raw) = &self.raw {
            let total = raw.http + raw.parse;
            let _ = writeln!(
                out,
                "\nA fetch on its own (plain HTTP, then `serde_json::from_slice` to a `Value`, {} pages, \
                 {} records, {:.1} MB): serving + transfer {:.0} ms, parsing {:.0} ms, {:.0} records/s.",
                raw.pages,
                raw.records,
                raw.bytes as f64 / 1e6,
                ms(raw.http),
                ms(raw.parse),
                raw.records as f64 / total.as_secs_f64().max(1e-9)
            );
        }
    }

    /// Section 3: the delta passes.
    fn delta_passes(&self, out: &mut String, missed: &mut Vec<String>) {
        let _ = writeln!(out, "\n## 3. Delta pass, nothing changed\n");
        let _ = writeln!(
            out,
            "After the two full passes; the fake's request log counted over the pass. The δ window (5 min \
             before the watermark) holds about {} records.\n",
            OVERLAP.as_millis() as i64 / UPDATED_STEP_MS
        );
        let _ = writeln!(
            out,
            "| backend | status | objects | requests | requests/object | fetched | wall | target: 1 |"
        );
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|---|");
        for (backend, m) in &self.delta {
            let per_object = m.requests as f64 / m.objects.max(1) as f64;
            let ok = m.status == RunStatus::Succeeded && m.objects > 0 && m.requests == m.objects;
            if !ok {
                missed.push(format!(
                    "{backend} delta pass: {} requests for {} objects{}",
                    m.requests,
                    m.objects,
                    m.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
                ));
            }
            let _ = writeln!(
                out,
                "| {backend} | {:?} | {} | {} | {per_object:.2} | {} | {:.0} ms | {} |",
                m.status,
                m.objects,
                m.requests,
                m.counts.fetched,
                ms(m.wall),
                verdict(ok)
            );
        }
    }

    /// Section 4: the rate-limited pass.
    fn paced_pass(&self, out: &mut String, missed: &mut Vec<String>) {
        let _ = writeln!(out, "\n## 4. Rate-limited full pass\n");
        if let Some(p) = &self.paced {
            let _ = writeln!(
                out,
                "{} records, the client's default pacing ({}) against the fake enforcing 100/min \
                 and 100/s, SQLite. Minimum = (requests − 100) × 0.6 s.\n",
                self.sizes.paced_records,
                RateLimit::twenty_defaults().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
            let _ = writeln!(
                out,
                "| status | fetched | requests | 429s | wall | minimum | ratio | 429s = 0 | ratio ≤ {TARGET_PACED_RATIO} |"
            );
            let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|---|---|");
            let no_429 = p.rate_limited == 0;
            let ratio_ok = p.status == RunStatus::Succeeded && p.ratio() <= TARGET_PACED_RATIO;
            if !no_429 {
                missed.push(format!("rate-limited pass: {} answers were 429", p.rate_limited));
            }
            if !ratio_ok {
                missed.push(format!(
                    "rate-limited pass: ratio {:.3} > {TARGET_PACED_RATIO}{}",
                    p.ratio(),
                    p.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
                ));
            }
            let _ = writeln!(
                out,
                "| {:?} | {} | {} | {} | {:.2} s | {:.2} s | {:.3} | {} | {} |",
                p.status,
                p.records,
                p.requests,
                p.rate_limited,
                p.wall.as_secs_f64(),
                p.minimum().as_secs_f64(),
                p.ratio(),
                verdict(no_429),
                verdict(ratio_ok)
            );
        }
    }

    /// Every figure against its target.
    fn summary(&self, out: &mut String) {
        let _ = writeln!(out, "\n## Summary\n");
        let _ = writeln!(out, "| measure | value | target | |");
        let _ = writeln!(out, "|---|--:|---|---|");
        for (backend, pass, m) in &self.full {
            let _ = writeln!(
                out,
                "| {backend} full pass, {pass} | {:.0} records/s | ≥ {TARGET_RATE:.0} | {} |",
                m.rate(),
                verdict(m.status == RunStatus::Succeeded && m.rate() >= TARGET_RATE)
            );
            let _ = writeln!(
                out,
                "| {backend} full pass, {pass}: memory growth | {:.1} MiB | < {TARGET_MEMORY_MIB:.0} MiB | {} |",
                m.memory.growth_mib(),
                verdict(m.memory.growth_mib() < TARGET_MEMORY_MIB)
            );
        }
        for (backend, m) in &self.delta {
            let _ = writeln!(
                out,
                "| {backend} delta pass, nothing changed | {} requests / {} object(s) | 1 per object | {} |",
                m.requests,
                m.objects,
                verdict(m.status == RunStatus::Succeeded && m.objects > 0 && m.requests == m.objects)
            );
        }
        if let Some(p) = &self.paced {
            let _ = writeln!(
                out,
                "| rate-limited pass: 429s | {} | 0 | {} |",
                p.rate_limited,
                verdict(p.rate_limited == 0)
            );
            let _ = writeln!(
                out,
                "| rate-limited pass: wall / minimum | {:.2} s / {:.2} s = {:.3} | ≤ {TARGET_PACED_RATIO} | {} |",
                p.wall.as_secs_f64(),
                p.minimum().as_secs_f64(),
                p.ratio(),
                verdict(p.status == RunStatus::Succeeded && p.ratio() <= TARGET_PACED_RATIO)
            );
        }
    }
}
