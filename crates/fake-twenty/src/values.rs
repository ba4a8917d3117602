//! How the fake reads and writes timestamps, and the ids it makes.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use sha2::{Digest, Sha256};

pub(super) fn parse_timestamp(text: &str) -> Option<i64> {
    // Cheap pre-check: RFC 3339 timestamps start with `dddd-dd-ddT`.
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || !(bytes[10] == b'T' || bytes[10] == b't' || bytes[10] == b' ')
    {
        return None;
    }
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

pub(super) fn format_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .expect("a representable timestamp")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A uuid-v4-shaped id derived from `seed`: deterministic, in no particular order.
pub(super) fn uuid_from(seed: &[u8]) -> String {
    let digest = Sha256::digest(seed);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
