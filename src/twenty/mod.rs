//! Twenty's language: how its webhooks are signed and what they carry, and the REST client (records,
//! metadata, webhook subscriptions) with the pacer that keeps it under Twenty's rate limits.

pub mod client;
pub mod pacer;
pub mod signature;
pub mod webhook;
