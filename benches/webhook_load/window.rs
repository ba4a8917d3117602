//! The measured part of a run, shared by the load generators and the CPU accounting.

use std::time::Duration;

use tokio::time::Instant;

/// The measured part of a run. What starts (or is scheduled) inside it is counted; the warm-up
/// before it only counts failures.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn after(warm_up: Duration, measured: Duration) -> Self {
        let start = Instant::now() + warm_up;
        Window { start, end: start + measured }
    }

    pub fn contains(&self, at: Instant) -> bool {
        self.start <= at && at < self.end
    }
}
