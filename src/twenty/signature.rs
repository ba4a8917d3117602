//! Verification of Twenty's webhook signatures: a pure function of the secrets, the headers, the raw
//! body and the clock, so that every case is unit-tested without a server.
//!
//! Twenty signs `"<X-Twenty-Webhook-Timestamp>:<body>"` with HMAC-SHA256, keyed with the secret's
//! UTF-8 bytes, and sends the lowercase hex digest. The timestamp is milliseconds since the epoch.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

pub const TIMESTAMP_HEADER: &str = "X-Twenty-Webhook-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Twenty-Webhook-Signature";

/// What the operator configured: which secrets sign deliveries and how much clock skew is accepted.
#[derive(Debug, Clone)]
pub struct SignaturePolicy {
    pub secrets: Vec<SecretString>,
    pub allow_unsigned: bool,
    pub tolerance: Duration,
}

/// The two signature headers of a delivery, as sent (absent when the subscription has no secret).
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Why a delivery is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// Signed with one of the configured secrets, inside the tolerance.
    Signed,
    /// Carries no signature and the operator opted in to unsigned deliveries.
    Unsigned,
}

/// Why a delivery is refused. Every variant answers 401 and stores nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no webhook secret is configured and unsigned deliveries are not allowed")]
    NoSecretConfigured,
    #[error("the signature header is missing")]
    MissingSignature,
    #[error("the timestamp header is missing")]
    MissingTimestamp,
    #[error("the timestamp header is not a number of milliseconds")]
    MalformedTimestamp,
    #[error("the timestamp is older than the tolerance")]
    TimestampTooOld,
    #[error("the timestamp is further in the future than the tolerance")]
    TimestampInFuture,
    #[error("the signature header is not hex")]
    MalformedSignature,
    #[error("the signature matches no configured secret")]
    BadSignature,
}

impl Refusal {
    /// A short, stable label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NoSecretConfigured => "no_secret_configured",
            Refusal::MissingSignature => "missing_signature",
            Refusal::MissingTimestamp => "missing_timestamp",
            Refusal::MalformedTimestamp => "malformed_timestamp",
            Refusal::TimestampTooOld => "timestamp_too_old",
            Refusal::TimestampInFuture => "timestamp_in_future",
            Refusal::MalformedSignature => "malformed_signature",
            Refusal::BadSignature => "bad_signature",
        }
    }
}

/// Checks a delivery's signature over its raw bytes, in constant time, against every secret.
pub fn verify(
    policy: &SignaturePolicy,
    headers: SignatureHeaders<'_>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, Refusal> {
    let unsigned = headers.signature.is_none() && headers.timestamp.is_none();
    if policy.allow_unsigned && (unsigned || policy.secrets.is_empty()) {
        return Ok(Verified::Unsigned);
    }
    if policy.secrets.is_empty() {
        return Err(Refusal::NoSecretConfigured);
    }
    let signature = headers.signature.ok_or(Refusal::MissingSignature)?;
    let timestamp = headers.timestamp.ok_or(Refusal::MissingTimestamp)?;

    let sent_at_ms: i64 = timestamp.trim().parse().map_err(|_| Refusal::MalformedTimestamp)?;
    let tolerance_ms = i64::try_from(policy.tolerance.as_millis()).unwrap_or(i64::MAX);
    let skew_ms = now.timestamp_millis().saturating_sub(sent_at_ms);
    if skew_ms > tolerance_ms {
        return Err(Refusal::TimestampTooOld);
    }
    if skew_ms < -tolerance_ms {
        return Err(Refusal::TimestampInFuture);
    }

    let tag = hex::decode(signature.trim()).map_err(|_| Refusal::MalformedSignature)?;
    let signed_by_any = policy.secrets.iter().any(|secret| {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(timestamp.as_bytes());
        mac.update(b":");
        mac.update(body);
        mac.verify_slice(&tag).is_ok()
    });
    if signed_by_any { Ok(Verified::Signed) } else { Err(Refusal::BadSignature) }
}

/// Signs a body as Twenty does; the inverse of [`verify`], for tests, benchmarks and tools.
pub fn sign(secret: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b":");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec-fixture-2f9c1e7a4b8d4c0e9a1b3c5d7e9f1a2b";
    // The first fixture of ../shared/fixtures/webhooks, signed by Node.js as Twenty signs.
    const FIXTURE_TIMESTAMP: &str = "1758452400010";
    const FIXTURE_SIGNATURE: &str = "e13360abdcfbe022b6363fd8c2e609458d44646b15d86c7fea3c097ebe3aa8cb";
    const FIXTURE_BODY: &[u8] = include_bytes!("../../tests/fixtures/webhooks/person.created.body.json");

    fn policy(secrets: &[&str]) -> SignaturePolicy {
        SignaturePolicy {
            secrets: secrets.iter().map(|s| SecretString::from(s.to_string())).collect(),
            allow_unsigned: false,
            tolerance: Duration::from_secs(300),
        }
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn fixture_now() -> DateTime<Utc> {
        at(FIXTURE_TIMESTAMP.parse().unwrap())
    }

    fn headers<'a>(timestamp: &'a str, signature: &'a str) -> SignatureHeaders<'a> {
        SignatureHeaders { timestamp: Some(timestamp), signature: Some(signature) }
    }

    #[test]
    fn a_node_signed_vector_verifies() {
        let got = verify(
            &policy(&[SECRET]),
            headers(FIXTURE_TIMESTAMP, FIXTURE_SIGNATURE),
            FIXTURE_BODY,
            fixture_now(),
        );
        assert_eq!(got, Ok(Verified::Signed));
        assert_eq!(sign(SECRET, FIXTURE_TIMESTAMP.parse().unwrap(), FIXTURE_BODY), FIXTURE_SIGNATURE);
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let mut body = FIXTURE_BODY.to_vec();
        body[20] ^= 1;
        let got =
            verify(&policy(&[SECRET]), headers(FIXTURE_TIMESTAMP, FIXTURE_SIGNATURE), &body, fixture_now());
        assert_eq!(got, Err(Refusal::BadSignature));
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let got = verify(
            &policy(&["another"]),
            headers(FIXTURE_TIMESTAMP, FIXTURE_SIGNATURE),
            FIXTURE_BODY,
            fixture_now(),
        );
        assert_eq!(got, Err(Refusal::BadSignature));
    }

    #[test]
    fn a_truncated_signature_is_refused() {
        let p = policy(&[SECRET]);
        let got =
            verify(&p, headers(FIXTURE_TIMESTAMP, &FIXTURE_SIGNATURE[..32]), FIXTURE_BODY, fixture_now());
        assert_eq!(got, Err(Refusal::BadSignature));
        let odd = &FIXTURE_SIGNATURE[..63];
        assert_eq!(
            verify(&p, headers(FIXTURE_TIMESTAMP, odd), FIXTURE_BODY, fixture_now()),
            Err(Refusal::MalformedSignature)
        );
        assert_eq!(
            verify(&p, headers(FIXTURE_TIMESTAMP, ""), FIXTURE_BODY, fixture_now()),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn missing_headers_are_refused() {
        let p = policy(&[SECRET]);
        let none = SignatureHeaders::default();
        assert_eq!(verify(&p, none, FIXTURE_BODY, fixture_now()), Err(Refusal::MissingSignature));
        let no_sig = SignatureHeaders { timestamp: Some(FIXTURE_TIMESTAMP), signature: None };
        assert_eq!(verify(&p, no_sig, FIXTURE_BODY, fixture_now()), Err(Refusal::MissingSignature));
        let no_ts = SignatureHeaders { timestamp: None, signature: Some(FIXTURE_SIGNATURE) };
        assert_eq!(verify(&p, no_ts, FIXTURE_BODY, fixture_now()), Err(Refusal::MissingTimestamp));
        let bad_ts = headers("yesterday", FIXTURE_SIGNATURE);
        assert_eq!(verify(&p, bad_ts, FIXTURE_BODY, fixture_now()), Err(Refusal::MalformedTimestamp));
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused_in_both_directions() {
        let p = policy(&[SECRET]);
        let sent = fixture_now().timestamp_millis();
        let h = headers(FIXTURE_TIMESTAMP, FIXTURE_SIGNATURE);
        assert_eq!(verify(&p, h, FIXTURE_BODY, at(sent + 300_000)), Ok(Verified::Signed));
        assert_eq!(verify(&p, h, FIXTURE_BODY, at(sent - 300_000)), Ok(Verified::Signed));
        assert_eq!(verify(&p, h, FIXTURE_BODY, at(sent + 300_001)), Err(Refusal::TimestampTooOld));
        assert_eq!(verify(&p, h, FIXTURE_BODY, at(sent - 300_001)), Err(Refusal::TimestampInFuture));
    }

    #[test]
    fn any_of_several_secrets_verifies_during_a_rotation() {
        let h = headers(FIXTURE_TIMESTAMP, FIXTURE_SIGNATURE);
        assert_eq!(verify(&policy(&["new", SECRET]), h, FIXTURE_BODY, fixture_now()), Ok(Verified::Signed));
        assert_eq!(verify(&policy(&[SECRET, "new"]), h, FIXTURE_BODY, fixture_now()), Ok(Verified::Signed));
    }

    #[test]
    fn unsigned_deliveries_need_the_operator_to_opt_in() {
        let none = SignatureHeaders::default();
        assert_eq!(verify(&policy(&[]), none, FIXTURE_BODY, fixture_now()), Err(Refusal::NoSecretConfigured));
        let mut open = policy(&[]);
        open.allow_unsigned = true;
        assert_eq!(verify(&open, none, FIXTURE_BODY, fixture_now()), Ok(Verified::Unsigned));
        // With a secret configured and unsigned deliveries allowed, a signature that is present
        // must still be right: opting in to unsigned deliveries is not opting out of verification.
        let mut both = policy(&[SECRET]);
        both.allow_unsigned = true;
        assert_eq!(verify(&both, none, FIXTURE_BODY, fixture_now()), Ok(Verified::Unsigned));
        let forged = headers(FIXTURE_TIMESTAMP, "00");
        assert_eq!(verify(&both, forged, FIXTURE_BODY, fixture_now()), Err(Refusal::BadSignature));
    }

    #[test]
    fn an_empty_secret_signs_nothing_we_accept_by_accident() {
        // An empty secret is dropped by configuration; here it is the only one and still must match.
        let got = verify(
            &policy(&[""]),
            headers(FIXTURE_TIMESTAMP, FIXTURE_SIGNATURE),
            FIXTURE_BODY,
            fixture_now(),
        );
        assert_eq!(got, Err(Refusal::BadSignature));
    }
}
