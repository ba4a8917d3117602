//! The sample records of the simulated workspace, and the edits it makes to them: fields in the
//! shapes Twenty gives them (`../shared/twenty-protocol.md`, section 6), so that discovery, the apply
//! rule and the typed views see what a real workspace holds. Every name is made up, and every
//! domain is under `.example`, which is reserved and never resolves.

use fastrand::Rng;
use serde_json::{Value, json};

/// The objects the simulated workspace changes: three of Twenty's standard ones, which the fake
/// Twenty's metadata describes with their fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleObject {
    Person,
    Company,
    Opportunity,
}

impl SampleObject {
    pub const ALL: [SampleObject; 3] =
        [SampleObject::Person, SampleObject::Company, SampleObject::Opportunity];

    /// Twenty's `nameSingular`.
    pub fn singular(self) -> &'static str {
        match self {
            SampleObject::Person => "person",
            SampleObject::Company => "company",
            SampleObject::Opportunity => "opportunity",
        }
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Bruno", "Chiara", "Dmitri", "Emeka", "Farah", "Goran", "Hana", "Ines", "Jonas", "Kaito", "Leila",
    "Mateo", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Soren", "Tamsin", "Umar", "Vera", "Wen", "Yusuf",
    "Zofia",
];
const LAST_NAMES: &[&str] = &[
    "Abara",
    "Berglund",
    "Castellanos",
    "Dubois",
    "Eriksen",
    "Fontaine",
    "Guerrero",
    "Haddad",
    "Ishikawa",
    "Jovanovic",
    "Kowalczyk",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrova",
    "Quispe",
    "Rahman",
    "Silva",
    "Tanaka",
    "Urquhart",
    "Varga",
    "Weber",
    "Yilmaz",
    "Zhang",
];
const JOB_TITLES: &[&str] = &[
    "CTO",
    "Head of Sales",
    "Account Executive",
    "Product Manager",
    "Data Engineer",
    "CFO",
    "Customer Success Lead",
    "Procurement Officer",
    "Founder",
    "Operations Manager",
];
/// City, postcode, country.
const CITIES: &[(&str, &str, &str)] = &[
    ("Lisbon", "1100-148", "Portugal"),
    ("Lyon", "69002", "France"),
    ("Rotterdam", "3011 AD", "Netherlands"),
    ("Gdansk", "80-831", "Poland"),
    ("Nairobi", "00100", "Kenya"),
    ("Osaka", "530-0001", "Japan"),
    ("Montreal", "H2Y 1C6", "Canada"),
    ("Valparaiso", "2340000", "Chile"),
];
const COMPANY_WORDS: &[&str] = &[
    "Northwind",
    "Bluefield",
    "Copperleaf",
    "Driftwood",
    "Emberline",
    "Foxglove",
    "Granite",
    "Harbourside",
    "Ironbark",
    "Juniper",
    "Kestrel",
    "Lanternfish",
    "Meridian",
    "Nettle",
];
const COMPANY_KINDS: &[&str] = &["Labs", "Logistics", "Analytics", "Foods", "Robotics", "Studio"];
const STREETS: &[&str] = &["Harbour Road", "Mill Lane", "Station Street", "Quay Side", "Market Square"];
const DEALS: &[&str] = &["renewal", "expansion", "pilot", "platform deal", "support plan"];
/// The stages of the fake's `opportunity.stage` SELECT field, in their order.
const STAGES: &[&str] = &["NEW", "SCREENING", "MEETING", "PROPOSAL", "CUSTOMER"];

/// A value of `values` other than `current` (when `values` has another).
fn other<'a>(rng: &mut Rng, values: &[&'a str], current: Option<&str>) -> &'a str {
    let choices: Vec<&str> = values.iter().copied().filter(|value| Some(*value) != current).collect();
    rng.choice(choices).or_else(|| values.first().copied()).unwrap_or_default()
}

fn pick<'a>(rng: &mut Rng, values: &[&'a str]) -> &'a str {
    other(rng, values, None)
}

/// `createdBy` (ACTOR) as Twenty writes it for a record made in its app.
fn created_by() -> Value {
    json!({"source": "MANUAL", "workspaceMemberId": null, "name": "Playground", "context": {}})
}

pub fn company(rng: &mut Rng, position: usize) -> Value {
    let word = pick(rng, COMPANY_WORDS);
    let name = format!("{word} {}", pick(rng, COMPANY_KINDS));
    let (city, postcode, country) = CITIES[rng.usize(..CITIES.len())];
    json!({
        "name": name,
        "domainName": {
            "primaryLinkUrl": format!("https://{}.example", word.to_lowercase()),
            "primaryLinkLabel": "",
            "secondaryLinks": null,
        },
        "employees": rng.u32(5..5_000),
        "address": {
            "addressStreet1": format!("{} {}", rng.u32(1..200), pick(rng, STREETS)),
            "addressStreet2": null,
            "addressCity": city,
            "addressPostcode": postcode,
            "addressState": null,
            "addressCountry": country,
            "addressLat": null,
            "addressLng": null,
        },
        "createdBy": created_by(),
        "position": position,
    })
}

/// A person working at `company` (a record of the workspace, for its id and domain).
pub fn person(rng: &mut Rng, position: usize, company: &Value) -> Value {
    let first = pick(rng, FIRST_NAMES);
    let last = pick(rng, LAST_NAMES);
    let domain = company["domainName"]["primaryLinkUrl"].as_str().unwrap_or_default();
    let domain = domain.strip_prefix("https://").unwrap_or("company.example");
    json!({
        "name": {"firstName": first, "lastName": last},
        "emails": {
            "primaryEmail": format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase()),
            "additionalEmails": null,
        },
        "phones": {
            "primaryPhoneNumber": format!("6{:08}", rng.u32(0..100_000_000)),
            "primaryPhoneCountryCode": "FR",
            "primaryPhoneCallingCode": "+33",
            "additionalPhones": null,
        },
        "jobTitle": pick(rng, JOB_TITLES),
        "city": CITIES[rng.usize(..CITIES.len())].0,
        "companyId": company["id"],
        "createdBy": created_by(),
        "position": position,
    })
}

/// An opportunity with `company`, closing in the next few months.
pub fn opportunity(
    rng: &mut Rng,
    position: usize,
    company: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let company_name = company["name"].as_str().unwrap_or("Someone");
    let close = now + chrono::Duration::days(i64::from(rng.u32(7..180)));
    json!({
        "name": format!("{company_name} {}", pick(rng, DEALS)),
        "amount": {"amountMicros": i64::from(rng.u32(1..500)) * 1_000 * 1_000_000, "currencyCode": "EUR"},
        "closeDate": close.format("%Y-%m-%dT00:00:00.000Z").to_string(),
        "stage": STAGES[rng.usize(..3)],
        "companyId": company["id"],
        "createdBy": created_by(),
        "position": position,
    })
}

/// An edit of `record` that changes something, as Twenty would send it: the fields to merge and
/// their names (`updatedFields`). Twenty sends no event for an update that changes nothing.
pub fn edit(rng: &mut Rng, object: SampleObject, record: &Value) -> (Value, Vec<&'static str>) {
    let text = |field: &str| record[field].as_str();
    match (object, rng.bool()) {
        (SampleObject::Person, true) => {
            (json!({"jobTitle": other(rng, JOB_TITLES, text("jobTitle"))}), vec!["jobTitle"])
        }
        (SampleObject::Person, false) => {
            let cities: Vec<&str> = CITIES.iter().map(|(city, ..)| *city).collect();
            (json!({"city": other(rng, &cities, text("city"))}), vec!["city"])
        }
        (SampleObject::Company, true) => {
            let employees = record["employees"].as_u64().unwrap_or(0) + u64::from(rng.u32(1..50));
            (json!({"employees": employees}), vec!["employees"])
        }
        (SampleObject::Company, false) => {
            let (city, postcode, country) = CITIES[rng.usize(..CITIES.len())];
            let mut address = record["address"].clone();
            address["addressStreet1"] = json!(format!("{} {}", rng.u32(1..200), pick(rng, STREETS)));
            address["addressCity"] = json!(city);
            address["addressPostcode"] = json!(postcode);
            address["addressCountry"] = json!(country);
            (json!({"address": address}), vec!["address"])
        }
        (SampleObject::Opportunity, true) => {
            (json!({"stage": other(rng, STAGES, text("stage"))}), vec!["stage"])
        }
        (SampleObject::Opportunity, false) => {
            let micros = record["amount"]["amountMicros"].as_i64().unwrap_or(0);
            let amount = micros + i64::from(rng.u32(1..100)) * 1_000 * 1_000_000;
            (json!({"amount": {"amountMicros": amount, "currencyCode": "EUR"}}), vec!["amount"])
        }
    }
}
