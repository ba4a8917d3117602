//! The time source for checking signature timestamps, injectable so that tests can verify deliveries
//! signed in the past (the shared fixtures) without widening the tolerance.

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, Default)]
pub enum Clock {
    #[default]
    System,
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(at) => *at,
        }
    }
}
