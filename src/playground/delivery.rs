//! Twenty's side of a webhook delivery (`../shared/twenty-protocol.md`, sections 1 and 2): the
//! payload of a change, signed as Twenty signs it, posted once with Twenty's timeout and never
//! tried again.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::workspace::Change;
use crate::twenty::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

/// Sent with every attempt, new each time and not signed (Twenty's, useless as an id).
pub const NONCE_HEADER: &str = "X-Twenty-Webhook-Nonce";

/// Twenty gives up on a delivery that is not answered within 5 seconds.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The body of a change's delivery to `target_url`, queued by Twenty at `event_date`.
pub fn payload(change: &Change, target_url: &str, event_date: DateTime<Utc>) -> Value {
    let event_date = event_date.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut body = fake_twenty::webhook_body(&change.event_name(), &change.record, &event_date);
    body["targetUrl"] = json!(target_url);
    if !change.updated_fields.is_empty() {
        body["updatedFields"] = json!(change.updated_fields);
    }
    body
}

/// A delivery's bytes and headers: the signature covers `"<timestamp>:<body>"`, the timestamp is
/// in milliseconds, the nonce is 16 random bytes in hex.
pub struct SignedDelivery {
    body: Vec<u8>,
    timestamp: String,
    signature: String,
    nonce: String,
}

impl SignedDelivery {
    pub fn new(secret: &SecretString, body: Vec<u8>, timestamp_ms: i64, nonce: [u8; 16]) -> Self {
        let signature = sign(secret.expose_secret(), timestamp_ms, &body);
        SignedDelivery { body, timestamp: timestamp_ms.to_string(), signature, nonce: hex::encode(nonce) }
    }

    pub fn headers(&self) -> [(&'static str, &str); 4] {
        [
            ("Content-Type", "application/json"),
            (TIMESTAMP_HEADER, &self.timestamp),
            (SIGNATURE_HEADER, &self.signature),
            (NONCE_HEADER, &self.nonce),
        ]
    }
}

/// What became of a delivery that was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx, with the outcome the service acknowledged (`applied`, `stale`, `duplicate`…).
    Accepted(String),
    /// Another status: Twenty logs it and forgets the delivery.
    Refused(u16),
    /// No answer within the timeout, or no connection.
    Unanswered(String),
}

/// Posts deliveries to the service's webhook route, signed with the subscription's secret.
pub struct Sender {
    client: reqwest::Client,
    url: String,
    secret: SecretString,
}

impl Sender {
    pub fn new(url: String, secret: SecretString) -> anyhow::Result<Self> {
        let client =
            reqwest::Client::builder().timeout(TIMEOUT).build().context("building the webhook sender")?;
        Ok(Sender { client, url, secret })
    }

    /// Sends `change` once, as Twenty does: whatever happens, it is not sent again.
    pub async fn send(&self, change: &Change, nonce: [u8; 16]) -> Answer {
        let now = Utc::now();
        let body = payload(change, &self.url, now).to_string().into_bytes();
        let delivery = SignedDelivery::new(&self.secret, body, now.timestamp_millis(), nonce);
        let mut request = self.client.post(&self.url);
        for (name, value) in delivery.headers() {
            request = request.header(name, value);
        }
        let response = match request.body(delivery.body).send().await {
            Ok(response) => response,
            Err(error) => return Answer::Unanswered(error.to_string()),
        };
        let status = response.status();
        if !status.is_success() {
            return Answer::Refused(status.as_u16());
        }
        let outcome = match response.json::<Value>().await {
            Ok(answer) => answer["outcome"].as_str().unwrap_or("accepted").to_owned(),
            Err(_) => "accepted".to_owned(),
        };
        Answer::Accepted(outcome)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;
    use crate::playground::samples::SampleObject;
    use crate::playground::workspace::Action;
    use crate::twenty::signature::{Refusal, SignatureHeaders, SignaturePolicy, Verified, verify};

    /// The first of the shared fixtures (`tests/fixtures/webhooks/index.json`): a body, its
    /// timestamp and nonce, and the signature Node.js made for them as Twenty makes it.
    const FIXTURE_SECRET: &str = "whsec-fixture-2f9c1e7a4b8d4c0e9a1b3c5d7e9f1a2b";
    const FIXTURE_BODY: &[u8] = include_bytes!("../../tests/fixtures/webhooks/person.created.body.json");
    const FIXTURE_TIMESTAMP_MS: i64 = 1_758_452_400_010;
    const FIXTURE_SIGNATURE: &str = "e13360abdcfbe022b6363fd8c2e609458d44646b15d86c7fea3c097ebe3aa8cb";
    const FIXTURE_NONCE: &str = "0e233b8aef273651aa79d81a18b84760";

    fn header<'a>(delivery: &'a SignedDelivery, name: &str) -> &'a str {
        delivery.headers().into_iter().find(|(n, _)| *n == name).map(|(_, value)| value).expect(name)
    }

    #[test]
    fn a_delivery_carries_the_headers_twenty_sends_for_the_node_vector() {
        let mut nonce = [0u8; 16];
        hex::decode_to_slice(FIXTURE_NONCE, &mut nonce).expect("a hex nonce");
        let secret = SecretString::from(FIXTURE_SECRET);
        let delivery = SignedDelivery::new(&secret, FIXTURE_BODY.to_vec(), FIXTURE_TIMESTAMP_MS, nonce);
        assert_eq!(header(&delivery, "Content-Type"), "application/json");
        assert_eq!(header(&delivery, TIMESTAMP_HEADER), "1758452400010", "milliseconds, in decimal");
        assert_eq!(header(&delivery, SIGNATURE_HEADER), FIXTURE_SIGNATURE);
        assert_eq!(header(&delivery, NONCE_HEADER), FIXTURE_NONCE);
        assert_eq!(delivery.body, FIXTURE_BODY, "the bytes signed are the bytes sent");
    }

    #[test]
    fn the_service_verifies_a_delivery_signed_with_its_secret_and_no_other() {
        let secret = SecretString::from("playground-secret");
        let now = Utc.timestamp_millis_opt(1_790_000_000_123).single().expect("a time");
        let delivery = SignedDelivery::new(
            &secret,
            b"{\"eventName\":\"person.created\"}".to_vec(),
            1_790_000_000_123,
            [7; 16],
        );
        let headers = SignatureHeaders {
            timestamp: Some(header(&delivery, TIMESTAMP_HEADER)),
            signature: Some(header(&delivery, SIGNATURE_HEADER)),
        };
        let policy = |secret: &str| SignaturePolicy {
            secrets: vec![SecretString::from(secret)],
            allow_unsigned: false,
            tolerance: Duration::from_secs(300),
        };
        assert_eq!(verify(&policy("playground-secret"), headers, &delivery.body, now), Ok(Verified::Signed));
        assert_eq!(verify(&policy("another"), headers, &delivery.body, now), Err(Refusal::BadSignature));
    }

    #[test]
    fn the_payload_is_twentys_for_the_change_and_its_target() {
        let record =
            json!({"id": "0b8e5a2c-1111-4c1e-9a57-0c6d1e2f3a4b", "jobTitle": "CTO", "deletedAt": null});
        let change = Change {
            object: SampleObject::Person,
            action: Action::Updated,
            record: record.clone(),
            updated_fields: vec!["jobTitle"],
        };
        let at = Utc.timestamp_millis_opt(1_790_000_000_123).single().expect("a time");
        let body = payload(&change, "http://127.0.0.1:8088/webhooks/twenty", at);
        assert_eq!(body["eventName"], "person.updated");
        assert_eq!(body["objectMetadata"]["nameSingular"], "person");
        assert_eq!(body["targetUrl"], "http://127.0.0.1:8088/webhooks/twenty");
        assert_eq!(body["eventDate"], "2026-09-21T14:13:20.123Z");
        assert_eq!(body["record"], record);
        assert_eq!(body["updatedFields"], json!(["jobTitle"]));

        let created = Change { action: Action::Created, updated_fields: Vec::new(), ..change };
        let body = payload(&created, "http://127.0.0.1:8088/webhooks/twenty", at);
        assert_eq!(body["eventName"], "person.created");
        assert!(body.get("updatedFields").is_none(), "a creation lists no updated fields");
    }
}
