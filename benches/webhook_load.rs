//! Load test of `POST /webhooks/twenty`: the real server binary on SQLite and on PostgreSQL, against
//! the naive design at the same concurrency. Run with `cargo bench --bench webhook_load`.
//!
//! For each backend, on a fresh database each time:
//! - for each concurrency in [`CONCURRENCIES`], a closed loop: that many keep-alive connections, each
//!   sending its next signed delivery as soon as the previous one is answered, for [`MEASURED`] after
//!   a [`WARM_UP`]; then the naive design in this process: one transaction per record through
//!   `Store::apply` (the same guarded upsert, no event log) from as many tasks, for as long;
//! - an open loop at [`PACED_RATE`] deliveries a second, latency measured from each delivery's
//!   scheduled time, so a stall counts against every delivery it delays.
//!
//! The results go to the terminal and to `target/webhook_load.md`; the server's logs of each run to
//! `target/tmp/webhook_load/`. `BENCH_POSTGRES_URL` names the PostgreSQL server (a database is created
//! and dropped per run; default [`DEFAULT_POSTGRES_URL`]); PostgreSQL is skipped with a note when it
//! does not answer. `BENCH_BACKENDS=sqlite` or `=postgres` runs one backend only.
//!
//! The machine this targets has two cores shared by the server, PostgreSQL and this client, so the
//! client is kept cheap: every body is generated and signed before the clock starts, and requests go
//! out over a minimal HTTP/1.1 keep-alive client on one thread. The CPU columns show who used what.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, Executor as _, PgConnection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;
use tokio::time::Instant;
use twenty_mirror::change::{Change, Source};
use twenty_mirror::mirror::{Store, StoreError};
use twenty_mirror::twenty::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

const SECRET: &str = "whsec-bench-6b1f0c9e2d7a4e3b8c5d1f0a9e8b7c6d";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const CONCURRENCIES: [usize; 2] = [16, 64];
/// Long enough for connections to open, pools to fill and SQLite's WAL to reach its working size.
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURED: Duration = Duration::from_secs(8);

/// The open-loop run checks the latency target (p99 < 20 ms) at this rate.
const PACED_RATE: u32 = 1_000;
const PACED_MEASURED: Duration = Duration::from_secs(5);
/// Twenty sends a batch's deliveries 20 at a time; with a few more connections than that, a slow
/// answer delays later deliveries only once the server, not this client, is the bottleneck.
const PACED_CONNECTIONS: usize = 32;

/// Deliveries generated before any run. Each run sends them in order, from the first, to a fresh
/// database, so every run sees the same workload. 150,000 covers 16,000 deliveries a second over a
/// run's warm-up and measured time; a faster run ends early and says so ("ran out").
const DELIVERIES: usize = 150_000;
/// Records the deliveries are spread over: most deliveries update a record no other in-flight
/// delivery touches, as in a real workspace, but some rows are hot enough to collide.
const PERSON_IDS: usize = 50_000;
const COMPANY_IDS: usize = 5_000;
/// One delivery in twenty is a `company.updated`; the rest are `person.created` (a record's first
/// delivery) or `person.updated`.
const COMPANY_SHARE_PERCENT: u64 = 5;
/// Body sizes, uniform in this range: Twenty sends the whole record, so bodies are a few KB.
const MIN_BODY_BYTES: usize = 1024;
const MAX_BODY_BYTES: usize = 3072;

/// Clock ticks per second in `/proc/*/stat` (USER_HZ, `getconf CLK_TCK`): 100 on Linux builds for
/// every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

fn main() {
    let setting = |name: &str| std::env::var(name).ok().filter(|value| !value.trim().is_empty());
    let postgres_url = setting("BENCH_POSTGRES_URL").unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
    let selected = setting("BENCH_BACKENDS").unwrap_or_else(|| "sqlite,postgres".to_owned());
    let wanted = |name: &str| selected.split(',').any(|s| s.trim() == name);
    let mut bench = Bench::new();
    let mut report = Report::default();

    let mut backends = Vec::new();
    if wanted("sqlite") {
        backends.push(Backend::Sqlite);
    }
    if wanted("postgres") {
        match bench.control.block_on(postgres_answers(&postgres_url)) {
            Ok(()) => backends.push(Backend::Postgres { admin_url: postgres_url }),
            Err(why) => {
                println!("PostgreSQL skipped: {why}");
                report.notes.push(format!("PostgreSQL skipped: {why}"));
            }
        }
    }

    for backend in &backends {
        for concurrency in CONCURRENCIES {
            let service = bench.service_run(backend, Drive::Closed { concurrency });
            let naive = bench.naive_run(backend, concurrency);
            report.rows.push(Row { backend: backend.name(), concurrency, service, naive });
        }
        let paced = bench.service_run(backend, Drive::Paced { rate: PACED_RATE });
        report.paced.push((backend.name(), paced));
    }

    let text = report.render();
    println!("\n{text}");
    let path = target_dir().join("webhook_load.md");
    fs::write(&path, &text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("written to {}", path.display());
}

/// What the runs share: the workload, and one runtime for the client and one for everything else.
struct Bench {
    workload: Workload,
    /// The load generator: one thread, so that the client never takes more than a core from the
    /// server it measures.
    client: Runtime,
    /// Database administration and the naive design, which in production would be a
    /// multi-threaded server of its own.
    control: Runtime,
    /// SQLite databases, one folder per run.
    scratch: tempfile::TempDir,
    logs: PathBuf,
    runs: usize,
}

impl Bench {
    fn new() -> Self {
        let client = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building the client runtime");
        let control = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("building the control runtime");
        let scratch = tempfile::Builder::new()
            .prefix("twenty-mirror-bench-")
            .tempdir()
            .expect("creating a temporary folder");
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("webhook_load");
        fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("creating {}: {e}", logs.display()));

        let started = std::time::Instant::now();
        let workload = Workload::generate(DELIVERIES);
        let bytes: usize = workload.bodies.iter().map(Vec::len).sum();
        println!(
            "generated {} deliveries ({:.0} MiB of bodies, {} to {} bytes each) in {:.1} s",
            workload.bodies.len(),
            bytes as f64 / MIB,
            MIN_BODY_BYTES,
            MAX_BODY_BYTES,
            started.elapsed().as_secs_f64()
        );
        Bench { workload, client, control, scratch, logs, runs: 0 }
    }

    /// The real server, under a closed or an open loop.
    fn service_run(&mut self, backend: &Backend, drive: Drive) -> ServiceResult {
        let label = match drive {
            Drive::Closed { concurrency } => format!("{}-c{concurrency}", backend.name()),
            Drive::Paced { .. } => format!("{}-paced", backend.name()),
        };
        let database = self.fresh_database(backend);
        let mut server = Server::start(&database.url, self.logs.join(format!("{label}.log")));
        self.client.block_on(server.wait_until_ready());
        let requests = Arc::new(signed_requests(&self.workload.bodies, server.address));

        let background = wait_for_quiet();
        let window = Window::after(WARM_UP, drive.measured());
        let (tally, cpu) = self.client.block_on(async {
            let cpu = tokio::spawn(cpu_use_over(window, Some(server.pid()), background));
            let tally = match drive {
                Drive::Closed { concurrency } => {
                    closed_loop(server.address, requests, concurrency, window).await
                }
                Drive::Paced { rate } => open_loop(server.address, requests, rate, window).await,
            };
            (tally, cpu.await.expect("sampling CPU use"))
        });
        let result = ServiceResult {
            load: tally.summarize(window),
            peak_rss_mib: server.peak_rss_mib(),
            cpu,
            log: server.stop(),
        };
        self.control.block_on(database.remove());
        println!("{label:<14} service  {}", result.describe());
        result
    }

    /// The naive design at the same concurrency, in this process.
    fn naive_run(&mut self, backend: &Backend, concurrency: usize) -> NaiveResult {
        let label = format!("{}-c{concurrency}", backend.name());
        let database = self.fresh_database(backend);
        let store = self.control.block_on(open_naive_store(backend, &database.url, concurrency));
        let changes = self.workload.changes.clone();

        let background = wait_for_quiet();
        let window = Window::after(WARM_UP, MEASURED);
        let (tally, cpu) = self.control.block_on(async {
            let cpu = tokio::spawn(cpu_use_over(window, None, background));
            let tally = naive_closed_loop(store.clone(), changes, concurrency, window).await;
            store.close().await;
            (tally, cpu.await.expect("sampling CPU use"))
        });
        self.control.block_on(database.remove());
        let result = NaiveResult { load: tally.summarize(window), cpu };
        println!("{label:<14} naive    {}", result.describe());
        result
    }

    fn fresh_database(&mut self, backend: &Backend) -> Database {
        self.runs += 1;
        self.control.block_on(backend.fresh_database(&self.scratch, self.runs))
    }
}

/// How the load generator drives the server.
#[derive(Debug, Clone, Copy)]
enum Drive {
    /// `concurrency` connections, each sending as soon as its previous request is answered.
    Closed { concurrency: usize },
    /// `rate` requests a second, each sent when due.
    Paced { rate: u32 },
}

impl Drive {
    fn measured(self) -> Duration {
        match self {
            Drive::Closed { .. } => MEASURED,
            Drive::Paced { .. } => PACED_MEASURED,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The workload

/// The deliveries every run sends, generated once.
struct Workload {
    /// Each body exactly as sent, serialised as Twenty does (`JSON.stringify`, field order kept).
    bodies: Vec<Vec<u8>>,
    /// The same deliveries as the naive design applies them: `Change::upsert` of each `record`.
    changes: Arc<Vec<Change>>,
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
    fn generate(count: usize) -> Self {
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

fn timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .expect("a generated time is in range")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// SplitMix64: deterministic, so every run of the bench sends the same workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; the modulo bias is negligible for the small `n` used here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A random (version 4) UUID, as Twenty's ids are.
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

/// Every body as a complete HTTP request, signed now: the signature's timestamp must be within the
/// server's tolerance (5 minutes) when it is checked, a few seconds from now.
fn signed_requests(bodies: &[Vec<u8>], address: SocketAddr) -> Vec<Vec<u8>> {
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

// ---------------------------------------------------------------------------------------------
// Load

/// The measured part of a run. What starts (or is scheduled) inside it is counted; the warm-up
/// before it only counts failures.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn after(warm_up: Duration, measured: Duration) -> Self {
        let start = Instant::now() + warm_up;
        Window { start, end: start + measured }
    }

    fn contains(&self, at: Instant) -> bool {
        self.start <= at && at < self.end
    }
}

/// What one worker (or a whole run, once merged) saw.
#[derive(Debug, Default)]
struct Tally {
    /// Latencies in microseconds of the successes counted in the window.
    latencies_us: Vec<u32>,
    /// When the last counted success finished, to measure a run that ran out of deliveries.
    last_finished: Option<Instant>,
    /// Every outcome other than success, by kind, warm-up included.
    failures: BTreeMap<String, u64>,
    /// The generated deliveries ran out before the window closed.
    ran_out: bool,
}

impl Tally {
    /// `reference` is when the request started (closed loop) or was due (open loop).
    fn success(&mut self, window: Window, reference: Instant, finished: Instant) {
        if window.contains(reference) {
            let micros = finished.duration_since(reference).as_micros();
            self.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
            self.last_finished = self.last_finished.max(Some(finished));
        }
    }

    fn failure(&mut self, kind: String) {
        *self.failures.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.last_finished = self.last_finished.max(other.last_finished);
        for (kind, count) in other.failures {
            *self.failures.entry(kind).or_default() += count;
        }
        self.ran_out |= other.ran_out;
    }

    fn summarize(mut self, window: Window) -> LoadSummary {
        self.latencies_us.sort_unstable();
        let span = match (self.ran_out, self.last_finished) {
            (true, Some(last)) => last.duration_since(window.start),
            _ => window.end.duration_since(window.start),
        };
        let percentile = |p: f64| {
            let rank = ((p * self.latencies_us.len() as f64).ceil() as usize).max(1);
            self.latencies_us.get(rank - 1).map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
        };
        LoadSummary {
            per_second: self.latencies_us.len() as f64 / span.as_secs_f64(),
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
            max_ms: percentile(1.0),
            failures: self.failures,
            ran_out: self.ran_out,
        }
    }
}

async fn merge_workers(mut workers: JoinSet<Tally>) -> Tally {
    let mut total = Tally::default();
    while let Some(worker) = workers.join_next().await {
        total.merge(worker.expect("a load worker panicked"));
    }
    total
}

/// `concurrency` keep-alive connections, each sending the next request as soon as its previous one
/// is answered, until the window closes or the requests run out.
async fn closed_loop(
    address: SocketAddr,
    requests: Arc<Vec<Vec<u8>>>,
    concurrency: usize,
    window: Window,
) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (requests, next) = (requests.clone(), next.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut connection = None;
            loop {
                let started = Instant::now();
                if started >= window.end {
                    break;
                }
                let Some(request) = requests.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    tally.ran_out = true;
                    break;
                };
                if !send(address, &mut connection, request, window, started, &mut tally).await {
                    break;
                }
            }
            tally
        });
    }
    merge_workers(workers).await
}

/// Requests due at `rate` a second from the start of the warm-up, sent over
/// [`PACED_CONNECTIONS`] connections whichever is free; a request's latency runs from when it was
/// due, so time spent waiting for a connection counts. Tokio's timer fires on millisecond ticks,
/// which adds up to a millisecond to each latency.
async fn open_loop(address: SocketAddr, requests: Arc<Vec<Vec<u8>>>, rate: u32, window: Window) -> Tally {
    let first_due = Instant::now();
    let interval = Duration::from_secs(1) / rate;
    let due_count = (window.end.duration_since(first_due).as_secs_f64() * f64::from(rate)) as usize;
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..PACED_CONNECTIONS {
        let (requests, next) = (requests.clone(), next.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            let mut connection = None;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= due_count {
                    break;
                }
                let Some(request) = requests.get(index) else {
                    tally.ran_out = true;
                    break;
                };
                let due = first_due + interval * u32::try_from(index).expect("fewer than 2^32 requests");
                tokio::time::sleep_until(due).await;
                if !send(address, &mut connection, request, window, due, &mut tally).await {
                    break;
                }
            }
            tally
        });
    }
    merge_workers(workers).await
}

/// Sends one request over `connection` (opened first if needed) and tallies the answer. A broken
/// connection is counted and reopened on the next send; returns false when the server cannot be
/// reached at all.
async fn send(
    address: SocketAddr,
    connection: &mut Option<HttpConnection>,
    request: &[u8],
    window: Window,
    reference: Instant,
    tally: &mut Tally,
) -> bool {
    if connection.is_none() {
        match HttpConnection::open(address).await {
            Ok(opened) => *connection = Some(opened),
            Err(e) => {
                tally.failure(format!("connect: {e}"));
                return false;
            }
        }
    }
    let Some(open) = connection.as_mut() else { return false };
    match tokio::time::timeout(DELIVERY_TIMEOUT, open.exchange(request)).await {
        Ok(Ok(200)) => tally.success(window, reference, Instant::now()),
        Ok(Ok(status)) => tally.failure(format!("HTTP {status}")),
        Ok(Err(e)) => {
            tally.failure(format!("I/O: {e}"));
            *connection = None;
        }
        Err(_) => {
            tally.failure(format!("no answer within {DELIVERY_TIMEOUT:?}"));
            *connection = None;
        }
    }
    true
}

/// Twenty gives up on a delivery after 5 s; so does the bench, which also bounds every request.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The naive design: each record in a transaction of its own, from `concurrency` tasks.
async fn naive_closed_loop(
    store: Store,
    changes: Arc<Vec<Change>>,
    concurrency: usize,
    window: Window,
) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (store, changes, next) = (store.clone(), changes.clone(), next.clone());
        workers.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let started = Instant::now();
                if started >= window.end {
                    break;
                }
                let Some(change) = changes.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    tally.ran_out = true;
                    break;
                };
                match tokio::time::timeout(DELIVERY_TIMEOUT, store.apply(std::slice::from_ref(change))).await
                {
                    Ok(Ok(_)) => tally.success(window, started, Instant::now()),
                    Ok(Err(error)) => tally.failure(error_chain(&error)),
                    Err(_) => tally.failure(format!("no commit within {DELIVERY_TIMEOUT:?}")),
                }
            }
            tally
        });
    }
    merge_workers(workers).await
}

/// The naive design's store. On PostgreSQL the pool has a connection per task, as a naive service
/// sized for this load would; the library's own pool (10) would make tasks queue for connections.
/// On SQLite the library's pool is kept: writes are serial whatever the pool size.
async fn open_naive_store(backend: &Backend, url: &str, concurrency: usize) -> Store {
    let store = match backend {
        Backend::Sqlite => Store::connect(url).await.expect("opening the naive SQLite store"),
        Backend::Postgres { .. } => {
            let options = PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
            Store::postgres_with_pool_size(options, u32::try_from(concurrency).expect("a small concurrency"))
        }
    };
    store.migrate().await.expect("migrating the naive store");
    store
}

fn error_chain(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client

/// One keep-alive connection that sends prebuilt requests one at a time. It reads the status line
/// and the headers, then `Content-Length` bytes of body, which is all the server sends; it costs a
/// write and a read or two per request, a fraction of what a general-purpose client costs.
struct HttpConnection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl HttpConnection {
    async fn open(address: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConnection { stream, buffer: Vec::with_capacity(1024) })
    }

    /// Sends one complete request and returns the answer's status once its body has been read.
    async fn exchange(&mut self, request: &[u8]) -> io::Result<u16> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let head_len = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            self.read_more().await?;
        };
        let (status, body_len) = parse_head(&self.buffer[..head_len])?;
        while self.buffer.len() < head_len + body_len {
            self.read_more().await?;
        }
        Ok(status)
    }

    async fn read_more(&mut self) -> io::Result<()> {
        if self.stream.read_buf(&mut self.buffer).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        Ok(())
    }
}

/// The status and the `Content-Length` of a response head.
fn parse_head(head: &[u8]) -> io::Result<(u16, usize)> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
    let head = std::str::from_utf8(head).map_err(|_| invalid("the response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status line"))?;
    let mut body_len = 0;
    for (name, value) in lines.filter_map(|line| line.split_once(':')) {
        if name.eq_ignore_ascii_case("content-length") {
            body_len = value.trim().parse().map_err(|_| invalid("a malformed Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("a chunked response, which this client does not read"));
        }
    }
    Ok((status, body_len))
}

// ---------------------------------------------------------------------------------------------
// The server process

struct Server {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
    /// Where the log stood once the server was ready: what comes after is what the load caused.
    log_at_ready: usize,
}

/// How long the server gets to answer `/readyz` after it starts, migrations included.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// `/readyz` answers within its own 2 s timeout; a probe waits a little longer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the server gets to stop after SIGTERM; it drains in-flight requests, of which there are
/// none by then.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

impl Server {
    fn start(database_url: &str, log: PathBuf) -> Self {
        let port = free_port();
        let log_file = File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let child = Command::new(env!("CARGO_BIN_EXE_twenty-mirror"))
            .arg("serve")
            // Only what is set here configures the server, whatever the bench's environment holds.
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("TWENTY_WEBHOOK_SECRET", SECRET)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("sharing the log file"))
            .stderr(log_file)
            .spawn()
            .expect("starting the twenty-mirror binary");
        Server { child, address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)), log, log_at_ready: 0 }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_until_ready(&mut self) {
        let probe = format!("GET /readyz HTTP/1.1\r\nHost: {}\r\n\r\n", self.address).into_bytes();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("checking the server process") {
                panic!("the server exited ({status}) before it was ready; see {}", self.log.display());
            }
            if let Ok(mut connection) = HttpConnection::open(self.address).await
                && let Ok(Ok(200)) = tokio::time::timeout(PROBE_TIMEOUT, connection.exchange(&probe)).await
            {
                self.log_at_ready = fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server was not ready in time; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's peak resident memory so far (`VmHWM`).
    fn peak_rss_mib(&self) -> f64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM in {path}"));
        kib / 1024.0
    }

    /// Stops the server as the platform does, with SIGTERM, and summarises what it logged.
    fn stop(mut self) -> LogSummary {
        let sent = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        assert!(matches!(sent, Ok(status) if status.success()), "sending SIGTERM to the server: {sent:?}");
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the server") {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "the server did not stop within {STOP_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        LogSummary::read(&self.log, self.log_at_ready, status.success())
    }
}

impl Drop for Server {
    /// A run that panics must not leave its server behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free a moment ago. Another process could take it before the server binds it;
/// the server then fails to start and the run says so.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a free port");
    listener.local_addr().expect("reading the bound port").port()
}

/// What the server logged at warning level and above once it was ready, and how it exited.
#[derive(Debug)]
struct LogSummary {
    path: PathBuf,
    exited_cleanly: bool,
    errors: usize,
    warnings: usize,
    first: Option<String>,
}

impl LogSummary {
    fn read(path: &Path, from: usize, exited_cleanly: bool) -> Self {
        let whole = fs::read_to_string(path).unwrap_or_default();
        let text = whole.get(from..).unwrap_or(&whole);
        let count = |level: &str| text.lines().filter(|line| line.contains(level)).count();
        LogSummary {
            path: path.to_owned(),
            exited_cleanly,
            errors: count(r#""level":"ERROR""#),
            warnings: count(r#""level":"WARN""#),
            first: text.lines().next().map(str::to_owned),
        }
    }

    fn is_quiet(&self) -> bool {
        self.exited_cleanly && self.errors == 0 && self.warnings == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Databases

enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// An empty database for one run.
    async fn fresh_database(&self, scratch: &tempfile::TempDir, run: usize) -> Database {
        match self {
            Backend::Sqlite => {
                let folder = scratch.path().join(format!("run-{run}"));
                fs::create_dir_all(&folder).expect("creating a database folder");
                let url = format!("sqlite://{}", folder.join("bench.db").display());
                Database { url, cleanup: Cleanup::Folder(folder) }
            }
            Backend::Postgres { admin_url } => {
                // Unique per process and run, so concurrent benches do not collide; a database left
                // by an interrupted bench is recognisable by its prefix.
                let name = format!("{}{run}", database_prefix());
                let mut admin =
                    PgConnection::connect(admin_url).await.expect("connecting to BENCH_POSTGRES_URL");
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("creating a bench database");
                admin.close().await.expect("closing the admin connection");
                Database {
                    url: with_database(admin_url, &name),
                    cleanup: Cleanup::Drop { admin_url: admin_url.clone(), name },
                }
            }
        }
    }
}

struct Database {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Folder(PathBuf),
    Drop { admin_url: String, name: String },
}

impl Database {
    async fn remove(self) {
        match self.cleanup {
            Cleanup::Folder(folder) => {
                fs::remove_dir_all(&folder).unwrap_or_else(|e| panic!("removing {}: {e}", folder.display()));
            }
            Cleanup::Drop { admin_url, name } => {
                let mut admin =
                    PgConnection::connect(&admin_url).await.expect("connecting to BENCH_POSTGRES_URL");
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .expect("dropping a bench database");
                admin.close().await.expect("closing the admin connection");
            }
        }
    }
}

/// The names of this process's databases start with this.
fn database_prefix() -> String {
    format!("twenty_mirror_bench_{}_", std::process::id())
}

async fn postgres_answers(admin_url: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(admin_url)).await {
        Ok(Ok(connection)) => connection.close().await.map_err(|e| format!("closing a connection: {e}")),
        Ok(Err(e)) => Err(format!("cannot connect to {admin_url}: {e}")),
        Err(_) => Err(format!("{admin_url} did not answer within 3 s")),
    }
}

/// `postgres://user@host:port/anything?params` with the database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// CPU use

/// CPU time, in clock ticks, at one instant, by whose it is.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    at: Instant,
    server: u64,
    postgres: u64,
    bench: u64,
    /// Every CPU's busy time, whoever used it.
    machine: u64,
}

/// Average CPU use over a window, in cores.
#[derive(Debug, Clone, Copy)]
struct CpuUse {
    /// The server process (nothing in the naive runs, where the bench plays the server).
    server: f64,
    /// PostgreSQL: the backends serving this bench's databases, the WAL writer, the checkpointer.
    postgres: f64,
    bench: f64,
    /// The rest of the machine's busy time: the kernel's own threads (journal commits, writeback),
    /// processes that ended during the run, and anyone else's work, other databases' included.
    other: f64,
    /// The machine's load just before the run, while nothing of ours was working.
    background: f64,
}

impl CpuUse {
    fn describe(&self) -> String {
        format!(
            "cores: server {:.2} postgres {:.2} bench {:.2} other {:.2} (before: {:.2})",
            self.server, self.postgres, self.bench, self.other, self.background
        )
    }

    /// Whether another process was busy before or during the run: on two cores, a build or a test
    /// run next to the bench takes a large share of what the server and the database need.
    fn disturbed(&self) -> bool {
        self.background > DISTURBING_LOAD || self.other > DISTURBING_LOAD
    }
}

/// Cores used by others above which a run is flagged. An idle machine shows a few hundredths
/// before a run, and the kernel's threads a tenth or so during one.
const DISTURBING_LOAD: f64 = 0.25;

/// How long a run waits for another process's load to pass before it starts anyway (flagged).
const QUIET_WAIT: Duration = Duration::from_secs(5);

/// Waits, up to [`QUIET_WAIT`], for the machine to be idle; returns the load it last saw.
fn wait_for_quiet() -> f64 {
    let deadline = std::time::Instant::now() + QUIET_WAIT;
    loop {
        let load = background_load();
        if load <= DISTURBING_LOAD || std::time::Instant::now() >= deadline {
            return load;
        }
        println!("  waiting for the machine to quiet down: {load:.2} cores busy");
    }
}

/// Cores busy over half a second while none of ours is working.
fn background_load() -> f64 {
    let (started, first) = (std::time::Instant::now(), machine_busy_ticks());
    std::thread::sleep(Duration::from_millis(500));
    machine_busy_ticks().saturating_sub(first) as f64 / TICKS_PER_SECOND / started.elapsed().as_secs_f64()
}

/// Reads every process's CPU time from `/proc`. A process that exits between the two samples of a
/// window drops out of its category, and its time shows as `other`.
fn sample_cpu(server: Option<u32>) -> CpuSample {
    let (server, me) = (server.map(|pid| pid.to_string()), std::process::id().to_string());
    let mut sample =
        CpuSample { at: Instant::now(), server: 0, postgres: 0, bench: 0, machine: machine_busy_ticks() };
    let processes = fs::read_dir("/proc").expect("listing /proc");
    for entry in processes.filter_map(Result::ok) {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some((name, ticks)) = process_cpu(&pid) else { continue };
        if Some(&pid) == server.as_ref() {
            sample.server += ticks;
        } else if pid == me {
            sample.bench += ticks;
        } else if name == "postgres" && !serves_another_database(&pid) {
            sample.postgres += ticks;
        }
    }
    sample
}

/// Whether a PostgreSQL process serves a client of a database other than this bench's: someone
/// else's work on a shared server. Client backends title themselves
/// `postgres: CLUSTER: USER DATABASE HOST(PORT) STATE`; the shared background processes (WAL
/// writer, checkpointer) do not name a host and count as the bench's.
fn serves_another_database(pid: &str) -> bool {
    let Ok(title) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let title = String::from_utf8_lossy(&title);
    let client = title.contains('(') || title.contains("[local]");
    client && !title.contains(&database_prefix())
}

/// Samples CPU time at both ends of the window.
async fn cpu_use_over(window: Window, server: Option<u32>, background: f64) -> CpuUse {
    tokio::time::sleep_until(window.start).await;
    let first = sample_cpu(server);
    tokio::time::sleep_until(window.end).await;
    let last = sample_cpu(server);
    let seconds = last.at.duration_since(first.at).as_secs_f64();
    let cores = |from: u64, to: u64| to.saturating_sub(from) as f64 / TICKS_PER_SECOND / seconds;
    let (server, postgres, bench) = (
        cores(first.server, last.server),
        cores(first.postgres, last.postgres),
        cores(first.bench, last.bench),
    );
    let machine = cores(first.machine, last.machine);
    CpuUse { server, postgres, bench, other: (machine - server - postgres - bench).max(0.0), background }
}

/// A process's command name and its user and system time (fields 2, 14 and 15 of
/// `/proc/PID/stat`), or nothing if it has exited.
fn process_cpu(pid: &str) -> Option<(String, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the fields after it start at field 3.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let mut times = rest.split_whitespace().skip(11).take(2).map(|f| f.parse::<u64>().ok());
    Some((name, times.next()?? + times.next()??))
}

/// Busy time of every CPU: the first line of `/proc/stat` less idle and iowait.
fn machine_busy_ticks() -> u64 {
    let stat = fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    let line = stat.lines().next().unwrap_or_default();
    // user nice system idle iowait irq softirq steal; guest time is already inside user.
    let ticks: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|f| f.parse().ok()).collect();
    assert_eq!(ticks.len(), 8, "unexpected /proc/stat: {line}");
    ticks.iter().sum::<u64>() - ticks[3] - ticks[4]
}

// ---------------------------------------------------------------------------------------------
// Results

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug)]
struct LoadSummary {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    failures: BTreeMap<String, u64>,
    ran_out: bool,
}

impl LoadSummary {
    fn failure_count(&self) -> u64 {
        self.failures.values().sum()
    }

    fn describe(&self) -> String {
        let mut text = format!(
            "{:>7.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms",
            self.per_second, self.p50_ms, self.p99_ms, self.max_ms
        );
        for (kind, count) in &self.failures {
            let _ = write!(text, "  [{count} × {kind}]");
        }
        if self.ran_out {
            text.push_str("  [ran out of deliveries]");
        }
        text
    }
}

struct ServiceResult {
    load: LoadSummary,
    peak_rss_mib: f64,
    cpu: CpuUse,
    log: LogSummary,
}

impl ServiceResult {
    fn describe(&self) -> String {
        let mut text =
            format!("{}  RSS {:.1} MiB  {}", self.load.describe(), self.peak_rss_mib, self.cpu.describe());
        if !self.log.is_quiet() {
            let _ = write!(
                text,
                "\n    server log {}: {} errors, {} warnings, clean exit {}; first line: {}",
                self.log.path.display(),
                self.log.errors,
                self.log.warnings,
                self.log.exited_cleanly,
                self.log.first.as_deref().unwrap_or("")
            );
        }
        text
    }
}

struct NaiveResult {
    load: LoadSummary,
    cpu: CpuUse,
}

impl NaiveResult {
    fn describe(&self) -> String {
        format!("{}  {}", self.load.describe(), self.cpu.describe())
    }
}

struct Row {
    backend: &'static str,
    concurrency: usize,
    service: ServiceResult,
    naive: NaiveResult,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    paced: Vec<(&'static str, ServiceResult)>,
    notes: Vec<String>,
}

impl Report {
    fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# webhook_load, {}\n", Utc::now().format("%Y-%m-%d %H:%M UTC"));
        let _ = writeln!(
            out,
            "{} cores; {} signed deliveries of {}–{} bytes over {} people and {} companies; \
             {} s measured after {} s of warm-up; fresh database per run.\n",
            std::thread::available_parallelism().map_or(0, usize::from),
            DELIVERIES,
            MIN_BODY_BYTES,
            MAX_BODY_BYTES,
            PERSON_IDS,
            COMPANY_IDS,
            MEASURED.as_secs(),
            WARM_UP.as_secs()
        );
        let _ = writeln!(
            out,
            "| backend | conc | service req/s | p50 ms | p99 ms | peak RSS MiB | non-200 | \
             CPU server / pg / bench / other | naive rows/s | naive p99 ms | ratio |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.rows {
            let (service, naive) = (&row.service, &row.naive);
            let _ = writeln!(
                out,
                "| {} | {}{} | {:.0}{} | {:.2} | {:.2} | {:.1} | {} | {:.2} / {:.2} / {:.2} / {:.2} | {:.0}{} | {:.2} | {:.2} |",
                row.backend,
                row.concurrency,
                if service.cpu.disturbed() || naive.cpu.disturbed() { " *" } else { "" },
                service.load.per_second,
                if service.load.ran_out { " (ran out)" } else { "" },
                service.load.p50_ms,
                service.load.p99_ms,
                service.peak_rss_mib,
                service.load.failure_count(),
                service.cpu.server,
                service.cpu.postgres,
                service.cpu.bench,
                service.cpu.other,
                naive.load.per_second,
                if naive.load.ran_out { " (ran out)" } else { "" },
                naive.load.p99_ms,
                service.load.per_second / naive.load.per_second,
            );
        }
        let _ = writeln!(
            out,
            "\nLatencies are per delivery, client side. CPU in cores over the measured time; other = \
             the rest of the machine. ratio = service deliveries/s ÷ naive rows/s. * = other processes \
             were busy (see below).\n"
        );
        for (backend, paced) in &self.paced {
            let _ = writeln!(
                out,
                "- paced {backend}: {PACED_RATE}/s for {} s over {PACED_CONNECTIONS} connections → \
                 {:.0}/s answered, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} non-200, \
                 peak RSS {:.1} MiB; {}",
                PACED_MEASURED.as_secs(),
                paced.load.per_second,
                paced.load.p50_ms,
                paced.load.p99_ms,
                paced.load.max_ms,
                paced.load.failure_count(),
                paced.peak_rss_mib,
                paced.cpu.describe(),
            );
        }
        for (run, load, cpu) in self.runs() {
            for (kind, count) in &load.failures {
                let _ = writeln!(out, "- {run}: {count} × {kind}");
            }
            if cpu.disturbed() {
                let _ = writeln!(
                    out,
                    "- {run} (*): other processes used {:.2} cores before it and {:.2} during it; \
                     its numbers are skewed",
                    cpu.background, cpu.other
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        out
    }
}

impl Report {
    /// Every run, named, with its load and CPU use.
    fn runs(&self) -> Vec<(String, &LoadSummary, &CpuUse)> {
        let mut runs = Vec::new();
        for row in &self.rows {
            let name = format!("{} c={}", row.backend, row.concurrency);
            runs.push((format!("{name} service"), &row.service.load, &row.service.cpu));
            runs.push((format!("{name} naive"), &row.naive.load, &row.naive.cpu));
        }
        for (backend, paced) in &self.paced {
            runs.push((format!("{backend} paced"), &paced.load, &paced.cpu));
        }
        runs
    }
}

/// `target/`, where Cargo puts `target/tmp` for benches.
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_owned()
}
