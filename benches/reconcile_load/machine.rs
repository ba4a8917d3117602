//! This process's memory around a pass, and its CPU split by thread: the reconciler's, SQLite's,
//! the fake's.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::support::machine::{TICKS_PER_SECOND, cpu_ticks, machine_busy_ticks, status_kib};

/// Resets VmHWM to the current VmRSS (Linux ≥ 4.0).
pub fn reset_hwm() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Resident memory around a pass, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub baseline: u64,
    sampled_peak: u64,
    pub hwm: u64,
    hwm_was_reset: bool,
}

impl Memory {
    pub fn sampled_growth_mib(&self) -> f64 {
        self.sampled_peak.saturating_sub(self.baseline) as f64 / 1024.0
    }

    pub fn hwm_growth_mib(&self) -> Option<f64> {
        self.hwm_was_reset.then(|| self.hwm.saturating_sub(self.baseline) as f64 / 1024.0)
    }

    /// The larger of the two measures of growth.
    pub fn growth_mib(&self) -> f64 {
        self.sampled_growth_mib().max(self.hwm_growth_mib().unwrap_or(0.0))
    }
}

/// Samples VmRSS every 10 ms on a thread of its own until `finish`.
pub struct MemoryWatch {
    baseline: u64,
    hwm_was_reset: bool,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    sampler: std::thread::JoinHandle<()>,
}

impl MemoryWatch {
    pub fn start() -> MemoryWatch {
        let hwm_was_reset = reset_hwm();
        let baseline = status_kib("self", "VmRSS:").unwrap_or(0);
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(baseline));
        let sampler = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = status_kib("self", "VmRSS:") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        MemoryWatch { baseline, hwm_was_reset, stop, peak, sampler }
    }

    pub fn finish(self) -> Memory {
        if let Some(rss) = status_kib("self", "VmRSS:") {
            self.peak.fetch_max(rss, Ordering::Relaxed);
        }
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.sampler.join();
        Memory {
            baseline: self.baseline,
            sampled_peak: self.peak.load(Ordering::Relaxed),
            hwm: status_kib("self", "VmHWM:").unwrap_or(0),
            hwm_was_reset: self.hwm_was_reset,
        }
    }
}

/// Cores busy before a pass above which the pass is flagged: something else was running.
pub const DISTURBING_BACKGROUND: f64 = 0.2;

/// CPU time, in ticks, at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    /// This whole process, exited threads included.
    process: u64,
    /// The threads of sqlx's SQLite connections, which run SQLite itself.
    sqlite_worker: u64,
    /// The fake Twenty's threads.
    fake: u64,
    /// Every CPU's busy time.
    machine: u64,
    /// Microseconds in which some task of the machine stalled on I/O (`/proc/pressure/io`).
    io_stall_us: u64,
}

/// CPU used over a pass, in seconds, and the machine's load just before it, in cores.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// This process less the SQLite workers and the fake: the reconciler's async code, the HTTP
    /// client, JSON parsing, sqlx's PostgreSQL driver.
    pub reconciler: f64,
    pub sqlite_worker: f64,
    pub fake: f64,
    /// The PostgreSQL backends serving the bench's database (not the server's background processes,
    /// nor anyone else's connections); `None` on SQLite.
    pub postgres: Option<f64>,
    pub machine: f64,
    /// Seconds in which some task of the machine waited for I/O (pressure stall information).
    pub io_stall: Option<f64>,
    pub background: f64,
}

impl CpuUse {
    pub fn between(before: &CpuSample, after: &CpuSample, postgres: Option<u64>, background: f64) -> CpuUse {
        let seconds = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_SECOND;
        let process = seconds(before.process, after.process);
        let sqlite_worker = seconds(before.sqlite_worker, after.sqlite_worker);
        let fake = seconds(before.fake, after.fake);
        CpuUse {
            reconciler: (process - sqlite_worker - fake).max(0.0),
            sqlite_worker,
            fake,
            postgres: postgres.map(|ticks| ticks as f64 / TICKS_PER_SECOND),
            machine: seconds(before.machine, after.machine),
            io_stall: (after.io_stall_us > 0)
                .then(|| after.io_stall_us.saturating_sub(before.io_stall_us) as f64 / 1e6),
            background,
        }
    }

    /// CPU of everything a pass ran: about the least wall time it can take on one idle core. The
    /// reconciler fetches the next page while it writes the ones before, so on more cores it can
    /// take less.
    pub fn sequential(&self) -> f64 {
        self.reconciler + self.sqlite_worker + self.fake + self.postgres.unwrap_or(0.0)
    }
}

pub fn sample_cpu() -> CpuSample {
    let mut sample = CpuSample::default();
    if let Some((_, own)) = cpu_ticks("/proc/self/stat") {
        sample.process = own;
    }
    for task in fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let Some((comm, ticks)) = cpu_ticks(&task.path().join("stat").to_string_lossy()) else { continue };
        if comm.starts_with("sqlx-sqlite") {
            sample.sqlite_worker += ticks;
        } else if comm.starts_with("actix") || comm.starts_with("fake-twenty") {
            sample.fake += ticks;
        }
    }
    sample.machine = machine_busy_ticks();
    sample.io_stall_us = io_stall_us().unwrap_or(0);
    sample
}

/// The `some … total=` of `/proc/pressure/io`, in microseconds.
fn io_stall_us() -> Option<u64> {
    let pressure = fs::read_to_string("/proc/pressure/io").ok()?;
    let some = pressure.lines().find(|line| line.starts_with("some"))?;
    some.split_whitespace().find_map(|field| field.strip_prefix("total="))?.parse().ok()
}
