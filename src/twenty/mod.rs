//! Twenty's language: how its webhooks are signed and what they carry, and the REST client that reads
//! its records.

pub mod client;
pub mod pacer;
pub mod signature;
pub mod webhook;
