//! Who used the machine's CPU over a run's measured window: the server, PostgreSQL, the bench,
//! and everyone else.

use std::fs;

use tokio::time::Instant;

use crate::support::machine::{TICKS_PER_SECOND, cpu_ticks, machine_busy_ticks};
use crate::window::Window;

/// Cores used by others above which a run is flagged. An idle machine shows a few hundredths
/// before a run, and the kernel's threads a tenth or so during one.
pub const DISTURBING_LOAD: f64 = 0.25;

/// CPU time, in clock ticks, at one instant, by whose it is.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at: Instant,
    server: u64,
    postgres: u64,
    bench: u64,
    /// Every CPU's busy time, whoever used it.
    machine: u64,
}

/// Average CPU use over a window, in cores.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// The server process (nothing in the naive runs, where the bench plays the server).
    pub server: f64,
    /// PostgreSQL: the backends serving this bench's databases, the WAL writer, the checkpointer.
    pub postgres: f64,
    pub bench: f64,
    /// The rest of the machine's busy time: the kernel's own threads (journal commits, writeback),
    /// processes that ended during the run, and anyone else's work, other databases' included.
    pub other: f64,
    /// The machine's load just before the run, while nothing of ours was working.
    pub background: f64,
}

impl CpuUse {
    pub fn describe(&self) -> String {
        format!(
            "cores: server {:.2} postgres {:.2} bench {:.2} other {:.2} (before: {:.2})",
            self.server, self.postgres, self.bench, self.other, self.background
        )
    }

    /// Whether another process was busy before or during the run: on two cores, a build or a test
    /// run next to the bench takes a large share of what the server and the database need.
    pub fn disturbed(&self) -> bool {
        self.background > DISTURBING_LOAD || self.other > DISTURBING_LOAD
    }
}

/// Reads every process's CPU time from `/proc`. A process that exits between the two samples of a
/// window drops out of its category, and its time shows as `other`.
fn sample_cpu(server: Option<u32>, database: Option<&str>) -> CpuSample {
    let (server, me) = (server.map(|pid| pid.to_string()), std::process::id().to_string());
    let mut sample =
        CpuSample { at: Instant::now(), server: 0, postgres: 0, bench: 0, machine: machine_busy_ticks() };
    let processes = fs::read_dir("/proc").expect("listing /proc");
    for entry in processes.filter_map(Result::ok) {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some((name, ticks)) = cpu_ticks(&format!("/proc/{pid}/stat")) else { continue };
        if Some(&pid) == server.as_ref() {
            sample.server += ticks;
        } else if pid == me {
            sample.bench += ticks;
        } else if name == "postgres" && !serves_another_database(&pid, database) {
            sample.postgres += ticks;
        }
    }
    sample
}

/// Whether a PostgreSQL process serves a client of a database other than the run's (`database`,
/// `None` on SQLite): someone else's work on a shared server. Client backends title themselves
/// `postgres: CLUSTER: USER DATABASE HOST(PORT) STATE`; the shared background processes (WAL
/// writer, checkpointer) do not name a host and count as the bench's.
fn serves_another_database(pid: &str, database: Option<&str>) -> bool {
    let Ok(title) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let title = String::from_utf8_lossy(&title);
    let client = title.contains('(') || title.contains("[local]");
    client && !database.is_some_and(|name| title.contains(name))
}

/// Samples CPU time at both ends of the window.
pub async fn cpu_use_over(
    window: Window,
    server: Option<u32>,
    database: Option<String>,
    background: f64,
) -> CpuUse {
    tokio::time::sleep_until(window.start).await;
    let first = sample_cpu(server, database.as_deref());
    tokio::time::sleep_until(window.end).await;
    let last = sample_cpu(server, database.as_deref());
    let seconds = last.at.duration_since(first.at).as_secs_f64();
    let cores = |from: u64, to: u64| to.saturating_sub(from) as f64 / TICKS_PER_SECOND / seconds;
    let (server, postgres, bench) = (
        cores(first.server, last.server),
        cores(first.postgres, last.postgres),
        cores(first.bench, last.bench),
    );
    let machine = cores(first.machine, last.machine);
    CpuUse { server, postgres, bench, other: (machine - server - postgres - bench).max(0.0), background }
}
