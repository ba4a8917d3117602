//! The machine's load and a process's CPU time and memory, from `/proc` (Linux). The benches run
//! on a machine that others share, so each run first waits for it to be idle and is flagged if it
//! was not.

use std::fs;
use std::time::{Duration, Instant};

/// Clock ticks per second in `/proc/*/stat` (USER_HZ, `getconf CLK_TCK`): 100 on Linux builds for
/// every mainstream architecture.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// How long a run waits for another process's load to pass before it starts anyway (flagged).
const QUIET_WAIT: Duration = Duration::from_secs(5);

/// Waits, up to [`QUIET_WAIT`], for the machine's load to fall to `disturbing` cores or below;
/// returns the load it last saw.
pub fn wait_for_quiet(disturbing: f64) -> f64 {
    let deadline = Instant::now() + QUIET_WAIT;
    loop {
        let load = background_load();
        if load <= disturbing || Instant::now() >= deadline {
            return load;
        }
        println!("  waiting for the machine to quiet down: {load:.2} cores busy");
    }
}

/// Cores busy over half a second while nothing of ours is working.
pub fn background_load() -> f64 {
    let (started, first) = (Instant::now(), machine_busy_ticks());
    std::thread::sleep(Duration::from_millis(500));
    machine_busy_ticks().saturating_sub(first) as f64 / TICKS_PER_SECOND / started.elapsed().as_secs_f64()
}

/// Busy time of every CPU: the first line of `/proc/stat` less idle and iowait.
pub fn machine_busy_ticks() -> u64 {
    let stat = fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    let line = stat.lines().next().unwrap_or_default();
    // user nice system idle iowait irq softirq steal; guest time is already inside user.
    let ticks: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|f| f.parse().ok()).collect();
    assert_eq!(ticks.len(), 8, "unexpected /proc/stat: {line}");
    ticks.iter().sum::<u64>() - ticks[3] - ticks[4]
}

/// The command name and the user and system time (fields 2, 14 and 15) of a process or a thread,
/// from its `stat` file (`/proc/PID/stat`, `/proc/self/task/TID/stat`); `None` once it has exited.
pub fn cpu_ticks(stat_path: &str) -> Option<(String, u64)> {
    let stat = fs::read_to_string(stat_path).ok()?;
    // The command name is in parentheses and may hold spaces; the fields after it start at field 3.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let mut times = rest.split_whitespace().skip(11).take(2).map(|f| f.parse::<u64>().ok());
    Some((name, times.next()?? + times.next()??))
}

/// A field of a process's `status` (`VmRSS:`, `VmHWM:`), in KiB; `process` is a pid or `self`.
pub fn status_kib(process: &str, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let value = status.lines().find_map(|line| line.strip_prefix(field))?;
    value.trim().trim_end_matches("kB").trim().parse().ok()
}
