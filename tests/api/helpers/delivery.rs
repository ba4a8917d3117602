//! A webhook delivery as Twenty writes it, and the secret the test service verifies it with.
//!
//! `tests/postgres_restart.rs` includes this file as a module of its own binary: everything here is
//! used there too.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The `TWENTY_WEBHOOK_SECRET` of the service under test.
pub const SECRET: &str = "test-secret-0123456789";

/// `2026-09-21T10:00:00.000Z` plus `ms` milliseconds.
pub fn at(ms: i64) -> String {
    let base = DateTime::<Utc>::from_str("2026-09-21T10:00:00Z").expect("a base time");
    (base + chrono::Duration::milliseconds(ms)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A delivery body as Twenty writes it, for `object.action` of record `id` at version `updated_ms`.
pub fn delivery(event: &str, id: &str, updated_ms: i64, fields: Value) -> Value {
    let (object, action) = event.split_once('.').expect("object.action");
    let mut record = json!({
        "id": id,
        "createdAt": at(0),
        "updatedAt": at(updated_ms),
        "deletedAt": null,
    });
    if action == "deleted" {
        record["deletedAt"] = json!(at(updated_ms));
    }
    if let (Some(record), Some(fields)) = (record.as_object_mut(), fields.as_object()) {
        record.extend(fields.clone());
    }
    json!({
        "targetUrl": "https://mirror.example.com/webhooks/twenty",
        "eventName": event,
        "objectMetadata": {"id": "3f1c2a7e-5b2d-4c1e-9a57-0c6d1e2f3a4b", "nameSingular": object},
        "workspaceId": "872cfcf1-c79f-42bc-877d-5829f06eb3f9",
        "webhookId": "90056586-1228-4e03-a507-70140aa85c05",
        "eventDate": at(updated_ms + 10),
        "record": record,
    })
}
