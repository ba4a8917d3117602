//! Transitional: the benchmark `reconcile_load` includes the fake Twenty server from this path. The
//! fake lives in `tests/api/helpers/fake_twenty/`; once the benchmark's `#[path]` points there, this
//! file and its folder go.

#[path = "../api/helpers/fake_twenty/mod.rs"]
mod fake;

pub use fake::*;
