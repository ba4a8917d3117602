//! The records the fake serves: `person` records of 1–2 KB, as Twenty returns them, with strictly
//! increasing `updatedAt`s and a few percent soft-deleted.

use chrono::Utc;
use serde_json::{Value, json};

use crate::support::random::{Rng, timestamp};
use fake_twenty::FakeTwenty;

/// Serialised size of a record, uniform in this range.
pub const MIN_RECORD_BYTES: usize = 1024;
pub const MAX_RECORD_BYTES: usize = 2048;
pub const SOFT_DELETED_PERCENT: u64 = 3;
/// `updatedAt` steps this far from one record to the next, so that the δ of a delta pass (5 minutes)
/// covers about 43 records: one page.
pub const UPDATED_STEP_MS: i64 = 7_000;
/// The newest record was updated this long before the bench started.
const NEWEST_AGE_MS: i64 = 3_600_000;

const FIRST_NAMES: &[&str] = &[
    "Anna", "Louis", "Chloé", "Mateo", "Sofia", "Noah", "Emma", "Liam", "Inès", "Hugo", "Zoé", "Arthur",
    "Maya", "Jules", "Léa", "Oscar", "Nina", "Sacha", "Alice", "Gabriel",
];
const LAST_NAMES: &[&str] = &[
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "Müller", "Schmidt", "Rossi", "Nowak", "Smith",
];
const DOMAINS: &[&str] =
    &["example.com", "acme.io", "globex.fr", "initech.de", "umbrella.co.uk", "hooli.com", "stark.dev"];
const JOB_TITLES: &[&str] = &[
    "CEO",
    "CTO",
    "Head of Sales",
    "Account Executive",
    "Software Engineer",
    "Product Manager",
    "Customer Success Manager",
    "VP Marketing",
    "Procurement Officer",
    "Data Analyst",
];
/// Twelve cities and a vocabulary for the long text, `|`-separated.
const CITIES: &str =
    "Paris|Lyon|Berlin|London|Madrid|Milano|Amsterdam|New York|San Francisco|Montréal|Lisboa|Warszawa";
const WORDS: &str = "met|at|the|conference|interested|in|pricing|for|enterprise|plan|follow|up|next|quarter|\
    budget|approved|needs|security|review|integration|with|their|ERP|champion|decision|maker|renewal|upsell|\
    pilot|team|onboarding|call|scheduled|demo|went|well|asked|about|SSO|and|audit|logs";

/// `count` person records with ids, strictly increasing `updatedAt`s ending [`NEWEST_AGE_MS`] ago, and
/// their average serialised size.
fn people(count: usize, seed: u64) -> (Vec<Value>, usize) {
    let mut rng = Rng(seed);
    let words: Vec<&str> = WORDS.split('|').map(str::trim).collect();
    let cities: Vec<&str> = CITIES.split('|').collect();
    let companies: Vec<String> = (0..500).map(|_| rng.uuid()).collect();
    let members: Vec<(String, String)> = (0..12)
        .map(|_| (rng.uuid(), format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES))))
        .collect();
    let newest = Utc::now().timestamp_millis() - NEWEST_AGE_MS;
    let first = newest - UPDATED_STEP_MS * (count as i64 - 1);
    let mut total_bytes = 0;
    let records = (0..count)
        .map(|i| {
            let updated_ms = first + UPDATED_STEP_MS * i as i64;
            let record = person(
                &mut rng,
                i,
                updated_ms,
                &Pools { companies: &companies, members: &members, cities: &cities, words: &words },
            );
            total_bytes += record.to_string().len();
            record
        })
        .collect();
    (records, total_bytes / count.max(1))
}

/// What records pick their values from.
struct Pools<'a> {
    companies: &'a [String],
    members: &'a [(String, String)],
    cities: &'a [&'a str],
    words: &'a [&'a str],
}

fn person(rng: &mut Rng, i: usize, updated_ms: i64, pools: &Pools<'_>) -> Value {
    let first_name = rng.pick(FIRST_NAMES);
    let last_name = rng.pick(LAST_NAMES);
    let handle = format!("{}.{}{i}", first_name.to_lowercase(), last_name.to_lowercase());
    let created_ms = updated_ms - rng.below(90 * 86_400_000) as i64;
    let additional_emails = match rng.below(4) {
        0 => json!([format!("{handle}@{}", rng.pick(DOMAINS))]),
        1 => json!(null),
        _ => json!([]),
    };
    let company_id = if rng.below(10) == 0 {
        Value::Null
    } else {
        json!(pools.companies[rng.below(pools.companies.len() as u64) as usize])
    };
    let created_by = match rng.below(3) {
        0 => json!({"source": "API", "workspaceMemberId": null, "name": "Mirror import key", "context": {}}),
        source => {
            let (member_id, member_name) = &pools.members[rng.below(pools.members.len() as u64) as usize];
            json!({
                "source": if source == 1 { "MANUAL" } else { "IMPORT" },
                "workspaceMemberId": member_id,
                "name": member_name,
                "context": {},
            })
        }
    };
    let deleted = rng.below(100) < SOFT_DELETED_PERCENT;
    let mut record = json!({
        "id": rng.uuid(),
        "name": {"firstName": first_name, "lastName": last_name},
        "emails": {"primaryEmail": format!("{handle}@{}", rng.pick(DOMAINS)), "additionalEmails": additional_emails},
        "phones": {
            "primaryPhoneNumber": format!("6{:08}", rng.below(100_000_000)),
            "primaryPhoneCountryCode": "FR",
            "primaryPhoneCallingCode": "+33",
            "additionalPhones": [],
        },
        "linkedinLink": {
            "primaryLinkUrl": format!("https://www.linkedin.com/in/{handle}"),
            "primaryLinkLabel": "",
            "secondaryLinks": [],
        },
        "xLink": {"primaryLinkUrl": "", "primaryLinkLabel": "", "secondaryLinks": []},
        "jobTitle": rng.pick(JOB_TITLES),
        "city": rng.pick(pools.cities),
        "avatarUrl": "",
        "position": i,
        "companyId": company_id,
        "createdBy": created_by,
        "createdAt": timestamp(created_ms),
        "updatedAt": timestamp(updated_ms),
        "deletedAt": if deleted { json!(timestamp(updated_ms)) } else { Value::Null },
    });
    // A long text field brings the record to its size: `,"intro":"…"` adds 11 bytes and the text.
    let target = MIN_RECORD_BYTES + rng.below((MAX_RECORD_BYTES - MIN_RECORD_BYTES + 1) as u64) as usize;
    let room = target.saturating_sub(record.to_string().len() + 11);
    let mut intro = String::with_capacity(room + 16);
    while intro.len() < room {
        if !intro.is_empty() {
            intro.push(' ');
        }
        intro.push_str(rng.pick(pools.words));
    }
    intro.truncate(room);
    record["intro"] = json!(intro);
    record
}

/// A fake with `count` person records, inserted in chunks; and their average size.
pub async fn loaded_fake(count: usize, seed: u64) -> (FakeTwenty, usize) {
    let fake = FakeTwenty::start().await;
    let (mut records, average) = people(count, seed);
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(10_000));
        fake.bulk_insert("person", records);
        records = rest;
    }
    (fake, average)
}
