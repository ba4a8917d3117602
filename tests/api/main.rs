//! The integration suite, in one test binary: one compile and one link for every area, and the
//! helpers (the application on a random port over a fresh database, the fake Twenty server) shared.
//! Each module is one area seen from outside; the tests run in parallel and share nothing but the
//! PostgreSQL server, on which each creates a database of its own.
//!
//! `tests/postgres_restart.rs` is the one test in a binary of its own: it restarts that server.

mod helpers;

mod apply_rule;
mod cli;
mod console;
mod console_browser;
mod deployment;
mod fake_twenty_selftest;
mod faults;
mod hostile_input;
mod kept_counts;
mod logs;
mod operators;
mod paged_metadata;
mod playground;
mod postgres_functions;
mod read_api;
mod reconcile;
mod resilience;
mod twenty_client;
mod twenty_quirks;
mod views;
mod webhook_health;
mod webhook_route;
mod webhook_subscription;
