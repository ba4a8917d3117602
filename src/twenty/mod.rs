//! Twenty's language: how its webhooks are signed and what they carry.

pub mod signature;
pub mod webhook;
