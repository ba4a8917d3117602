//! twenty-mirror keeps a Twenty CRM workspace mirrored in your own database.
//!
//! Data flows one way: bytes → verified (`twenty::signature`) → parsed (`twenty::webhook`, into
//! Twenty's own types) → a [`change::Change`] → the apply rule (`mirror`) → outcome, committed by the
//! group-commit writer before the answer. `change` is the ground that `twenty` and `mirror` both
//! stand on; neither of those two imports the other. `playground` is the simulated Twenty
//! workspace of the `playground` command, which alone imports it.

pub mod app;
pub mod change;
pub mod cli;
pub mod clock;
pub mod config;
pub mod fields;
pub mod http;
pub mod metrics;
pub mod mirror;
pub mod playground;
pub mod query;
pub mod shutdown;
pub mod subscription;
pub mod sync;
pub mod telemetry;
pub mod twenty;

pub use app::Application;
