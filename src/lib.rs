//! twenty-mirror keeps a Twenty CRM workspace mirrored in your own database.
//!
//! Data flows one way: bytes → verified (`twenty::signature`) → parsed change (`twenty::webhook`)
//! → the apply rule (`mirror`) → outcome, committed by the group-commit writer before the answer.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod metrics;
pub mod mirror;
pub mod replay;
pub mod shutdown;
pub mod subscription;
pub mod sync;
pub mod telemetry;
pub mod twenty;

pub use app::Application;
