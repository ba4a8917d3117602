//! The deliveries every run sends: `person.created`, `person.updated` and `company.updated` bodies
//! serialised as Twenty sends them, then signed as complete HTTP requests.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use chrono::Utc;
use serde::Serialize;
use serde_json::{Value, json};
use twenty_mirror::change::{Change, Source};
use twenty_mirror::twenty::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

use crate::SECRET;
use crate::support::random::{Rng, timestamp};

/// Records the deliveries are spread over: most deliveries update a record no other in-flight
/// delivery touches, as in a real workspace, but some rows are hot enough to collide.
pub const PERSON_IDS: usize = 50_000;
pub const COMPANY_IDS: usize = 5_000;
/// One delivery in twenty is a `company.updated`; the rest are `person.created` (a record's first
/// delivery) or `person.updated`.
const COMPANY_SHARE_PERCENT: u64 = 5;
/// Body sizes, uniform in this range: Twenty sends the whole record, so bodies are a few KB.
pub const MIN_BODY_BYTES: usize = 1024;
pub const MAX_BODY_BYTES: usize = 3072;

/// The deliveries every run sends, generated once.
pub struct Workload {
    /// Each body exactly as sent, serialised as Twenty does (`JSON.stringify`, field order kept).
    pub bodies: Vec<Vec<u8>>,
    /// The same deliveries as the naive design applies them: `Change::upsert` of each `record`.
    pub changes: Arc<Vec<Change>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, R> {
    target_url: &'static str,
    event_name: &'static str,
    object_metadata: Value,
    workspace_id: &'static str,
    webhook_id: &'static str,
    event_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workspace_member_id: Option<&'a str>,
    record: R,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_fields: Option<Vec<&'static str>>,
}

/// Twenty's standard person fields, plus two custom ones (`address`, `bio`) as workspaces add them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Person<'a> {
    id: &'a str,
    name: Value,
    emails: Value,
    linkedin_link: Value,
    x_link: Value,
    job_title: &'static str,
    phones: Value,
    city: &'static str,
    avatar_url: &'static str,
    position: u64,
    created_by: Value,
    company_id: Option<&'a str>,
    created_at: String,
    updated_at: String,
    deleted_at: Option<String>,
    address: Value,
    /// Free text, sized so that the body reaches its drawn length.
    bio: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Company<'a> {
    id: &'a str,
    name: String,
    domain_name: Value,
    employees: u64,
    linkedin_link: Value,
    x_link: Value,
    annual_recurring_revenue: Value,
    address: Value,
    ideal_customer_profile: bool,
    position: u64,
    account_owner_id: Option<&'a str>,
    created_by: Value,
    created_at: String,
    updated_at: String,
    deleted_at: Option<String>,
    /// Free text, sized so that the body reaches its drawn length.
    description: String,
}

/// Where the padding of a record goes.
trait Padded {
    fn padding(&mut self) -> &mut String;
}

impl Padded for Person<'_> {
    fn padding(&mut self) -> &mut String {
        &mut self.bio
    }
}

impl Padded for Company<'_> {
    fn padding(&mut self) -> &mut String {
        &mut self.description
    }
}

const TARGET_URL: &str = "https://mirror.example.com/webhooks/twenty";
const WORKSPACE_ID: &str = "872cfcf1-c79f-42bc-877d-5829f06eb3f9";
const WEBHOOK_ID: &str = "90056586-1228-4e03-a507-70140aa85c05";
const PERSON_METADATA_ID: &str = "3f1c2a7e-5b2d-4c1e-9a57-0c6d1e2f3a4b";
const COMPANY_METADATA_ID: &str = "b1e2c3d4-0000-4a5b-8c9d-112233445566";
const MEMBER_ID: &str = "9062a1e3-e066-49ba-8c4a-d869b6a0ca12";
const USER_ID: &str = "170ba418-85a2-4f91-8565-9cd714c6703a";

const FIRST_NAMES: &[&str] = &[
    "Zoë", "Liam", "Amélie", "Noah", "Søren", "Aiko", "José", "Fatima", "Łukasz", "Grace", "Mateo", "Ingrid",
];
const LAST_NAMES: &[&str] =
    &["Núñez", "Smith", "Müller", "O'Brien", "Rossi", "Tanaka", "Dubois", "Kowalski", "Haddad", "Johansson"];
const JOB_TITLES: &[&str] =
    &["CTO", "Head of Sales", "Account Executive", "Product Manager", "VP Engineering", "Founder", ""];
const CITIES: &[&str] = &["Paris", "Berlin", "London", "New York", "São Paulo", "Tokyo", "Lisbon", "Kraków"];
const STREETS: &[&str] = &["Rue de Rivoli", "Unter den Linden", "Baker Street", "Broadway", "Rua Augusta"];
const COMPANY_NAMES: &[&str] =
    &["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell"];
/// The words of the free-text fields, drawn at random.
static WORDS: LazyLock<Vec<&str>> = LazyLock::new(|| FILLER_WORDS.split_whitespace().collect());
const FILLER_WORDS: &str = "met at the conference in spring, interested in the enterprise plan. follow up after the \
    quarterly review; prefers email over calls. decision maker for procurement, budget approved for next year. \
    renewal due in March, asked about SSO and audit logs. introduced by a former colleague.";

impl Workload {
    pub fn generate(count: usize) -> Self {
        let mut rng = Rng(0x7e57_5eed_0f10_ad5a);
        let people: Vec<String> = (0..PERSON_IDS).map(|_| rng.uuid()).collect();
        let companies: Vec<String> = (0..COMPANY_IDS).map(|_| rng.uuid()).collect();
        let mut person_created = vec![false; PERSON_IDS];
        // Versions start an hour ago and advance a millisecond per delivery, so every record's
        // `updatedAt` strictly increases from one of its deliveries to the next.
        let first_version = Utc::now().timestamp_millis() - 3_600_000;

        let mut bodies = Vec::with_capacity(count);
        let mut changes = Vec::with_capacity(count);
        for index in 0..count {
            let updated_ms = first_version + index as i64;
            let body_len = MIN_BODY_BYTES + rng.below((MAX_BODY_BYTES - MIN_BODY_BYTES + 1) as u64) as usize;
            let (object, body) = if rng.below(100) < COMPANY_SHARE_PERCENT {
                let company = rng.below(COMPANY_IDS as u64) as usize;
                ("company", company_updated(&mut rng, &companies[company], updated_ms, body_len))
            } else {
                let person = rng.below(PERSON_IDS as u64) as usize;
                let created = !std::mem::replace(&mut person_created[person], true);
                let body = person_event(&mut rng, &people[person], created, &companies, updated_ms, body_len);
                ("person", body)
            };
            let sent: Value = serde_json::from_slice(&body).expect("a generated body is JSON");
            let change = Change::upsert(object, &sent["record"], Source::Webhook)
                .expect("a generated record is a valid change");
            bodies.push(body);
            changes.push(change);
        }
        Workload { bodies, changes: Arc::new(changes) }
    }
}

fn person_event(
    rng: &mut Rng,
    id: &str,
    created: bool,
    companies: &[String],
    updated_ms: i64,
    body_len: usize,
) -> Vec<u8> {
    let (first, last) = (rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES));
    let updated_at = timestamp(updated_ms);
    // A created record was created at its version; an updated one some days before.
    let created_at =
        if created { updated_at.clone() } else { timestamp(updated_ms - rng.below(90 * DAY_MS) as i64) };
    let record = Person {
        id,
        name: json!({ "firstName": first, "lastName": last }),
        emails: json!({ "primaryEmail": format!("contact-{}@example.com", &id[..8]), "additionalEmails": null }),
        linkedin_link: json!({ "primaryLinkUrl": "", "primaryLinkLabel": "", "secondaryLinks": null }),
        x_link: json!({ "primaryLinkUrl": "", "primaryLinkLabel": "", "secondaryLinks": null }),
        job_title: rng.pick(JOB_TITLES),
        phones: json!({
            "primaryPhoneNumber": format!("6{:08}", rng.below(100_000_000)),
            "primaryPhoneCountryCode": "FR",
            "primaryPhoneCallingCode": "+33",
            "additionalPhones": null
        }),
        city: rng.pick(CITIES),
        avatar_url: "",
        position: rng.below(10_000),
        created_by: json!({ "source": "MANUAL", "workspaceMemberId": MEMBER_ID, "name": "Tim Apple", "context": {} }),
        company_id: Some(&companies[rng.below(COMPANY_IDS as u64) as usize]),
        created_at,
        updated_at,
        deleted_at: None,
        address: address(rng),
        bio: String::new(),
    };
    let envelope = Envelope {
        target_url: TARGET_URL,
        event_name: if created { "person.created" } else { "person.updated" },
        object_metadata: json!({ "id": PERSON_METADATA_ID, "nameSingular": "person" }),
        workspace_id: WORKSPACE_ID,
        webhook_id: WEBHOOK_ID,
        event_date: timestamp(updated_ms + 150),
        user_id: Some(USER_ID),
        workspace_member_id: Some(MEMBER_ID),
        record,
        updated_fields: (!created).then(|| vec![rng.pick(&["jobTitle", "city", "bio", "phones"])]),
    };
    serialize_padded(envelope, body_len, rng)
}

fn company_updated(rng: &mut Rng, id: &str, updated_ms: i64, body_len: usize) -> Vec<u8> {
    let name = format!("{} {}", rng.pick(COMPANY_NAMES), &id[..4]);
    let record = Company {
        id,
        domain_name: json!({
            "primaryLinkUrl": format!("https://{}.example", &id[..8]),
            "primaryLinkLabel": "",
            "secondaryLinks": null
        }),
        name,
        employees: rng.below(5_000),
        linkedin_link: json!({ "primaryLinkUrl": "", "primaryLinkLabel": "", "secondaryLinks": null }),
        x_link: json!({ "primaryLinkUrl": "", "primaryLinkLabel": "", "secondaryLinks": null }),
        annual_recurring_revenue: json!({ "amountMicros": rng.below(1 << 40), "currencyCode": "EUR" }),
        address: address(rng),
        ideal_customer_profile: rng.below(2) == 0,
        position: rng.below(10_000),
        account_owner_id: Some(MEMBER_ID),
        created_by: json!({ "source": "API", "workspaceMemberId": null, "name": "Import", "context": {} }),
        created_at: timestamp(updated_ms - rng.below(365 * DAY_MS) as i64),
        updated_at: timestamp(updated_ms),
        deleted_at: None,
        description: String::new(),
    };
    let envelope = Envelope {
        target_url: TARGET_URL,
        event_name: "company.updated",
        object_metadata: json!({ "id": COMPANY_METADATA_ID, "nameSingular": "company" }),
        workspace_id: WORKSPACE_ID,
        webhook_id: WEBHOOK_ID,
        event_date: timestamp(updated_ms + 150),
        user_id: None,
        workspace_member_id: None,
        record,
        updated_fields: Some(vec!["employees"]),
    };
    serialize_padded(envelope, body_len, rng)
}

fn address(rng: &mut Rng) -> Value {
    json!({
        "addressStreet1": format!("{} {}", rng.below(200) + 1, rng.pick(STREETS)),
        "addressStreet2": "",
        "addressCity": rng.pick(CITIES),
        "addressState": "",
        "addressCountry": "France",
        "addressPostcode": format!("{:05}", rng.below(100_000)),
        "addressLat": null,
        "addressLng": null
    })
}

const DAY_MS: u64 = 86_400_000;

/// Serialises the delivery, filling the record's free-text field so that the body is `len` bytes
/// (or its natural size, if that is larger). The filler is plain ASCII, which JSON does not escape,
/// so each character adds exactly one byte.
fn serialize_padded<R: Serialize + Padded>(
    mut envelope: Envelope<'_, R>,
    len: usize,
    rng: &mut Rng,
) -> Vec<u8> {
    let unpadded = serde_json::to_vec(&envelope).expect("serialising a delivery");
    if unpadded.len() >= len {
        return unpadded;
    }
    let filler = envelope.record.padding();
    while filler.len() < len - unpadded.len() {
        filler.push_str(rng.pick(&WORDS));
        filler.push(' ');
    }
    filler.truncate(len - unpadded.len());
    serde_json::to_vec(&envelope).expect("serialising a delivery")
}

/// Every body as a complete HTTP request, signed now: the signature's timestamp must be within the
/// server's tolerance (5 minutes) when it is checked, a few seconds from now.
pub fn signed_requests(bodies: &[Vec<u8>], address: SocketAddr) -> Vec<Vec<u8>> {
    let timestamp_ms = Utc::now().timestamp_millis();
    bodies
        .iter()
        .map(|body| {
            let signature = sign(SECRET, timestamp_ms, body);
            let mut request = format!(
                "POST /webhooks/twenty HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
                 {TIMESTAMP_HEADER}: {timestamp_ms}\r\n{SIGNATURE_HEADER}: {signature}\r\n\
                 X-Twenty-Webhook-Nonce: {}\r\nContent-Length: {}\r\n\r\n",
                &signature[..32],
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(body);
            request
        })
        .collect()
}
