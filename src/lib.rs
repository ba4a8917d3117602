//! twenty-mirror keeps a Twenty CRM workspace mirrored in your own database.
//!
//! Data flows one way: bytes → verified (`twenty::signature`) → parsed change (`twenty::webhook`)
//! → the apply rule (`mirror`) → outcome, committed by the group-commit writer before the answer.
#![forbid(unsafe_code)]

pub mod app;
pub mod clock;
pub mod config;
pub mod http;
pub mod metrics;
pub mod mirror;
pub mod query;
pub mod replay;
pub mod subscription;
pub mod sync;
pub mod telemetry;
pub mod twenty;

pub use app::Application;
