//! A fake Twenty server for tests: the REST and metadata API as `../shared/twenty-protocol.md`
//! describes them (sections 3, 4 and 5), with a controllable record store, transactions that commit
//! late, a lagging read replica, rate limits and injected faults.
//!
//! ```ignore
//! let fake = FakeTwenty::start().await;
//! let person = fake.create("person", json!({"jobTitle": "CTO"}));
//! // GET {fake.url()}/rest/people with `Authorization: Bearer {FakeTwenty::API_KEY}`
//! ```
//!
//! The server runs on a thread of its own (an actix system) and stops when the `FakeTwenty` is
//! dropped. Every mutation is a synchronous `&self` method, usable from any test.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::TcpListener;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The `targetUrl` that [`webhook_body`] puts in its payloads.
pub const WEBHOOK_TARGET_URL: &str = "https://mirror.example.com/webhooks/twenty";
/// The `webhookId` that [`webhook_body`] puts in its payloads.
pub const WEBHOOK_ID: &str = "90056586-1228-4e03-a507-70140aa85c05";

const DEFAULT_LIMIT: usize = 60;
const MAX_LIMIT: usize = 200;

/// The two shapes of `GET /rest/metadata/objects` (protocol notes, section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataShape {
    /// `{"data":{"objects":[…]},"pageInfo":…,"totalCount":n}` (the default).
    Nested,
    /// `{"data":[…],"pageInfo":…,"totalCount":n}`.
    Flat,
}

/// A failure the fake answers record list and get-one requests with, instead of the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// This HTTP status. 401 and 429 carry the bodies Twenty sends for them, 502/503/504 an HTML page
    /// as a reverse proxy would, anything else Twenty's JSON error shape.
    Status(u16),
    /// HTTP 400 "Limit reached …", as older releases answered a rate-limited request.
    LimitReached400,
    /// The correct answer, but only after this delay.
    Delay(Duration),
}

/// A transaction started by [`FakeTwenty::begin`]: what it commits gets its start time as `updatedAt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tx {
    start_ms: i64,
}

impl Tx {
    /// The transaction's start time, as Twenty writes `updatedAt`.
    pub fn started_at(&self) -> String {
        format_ms(self.start_ms)
    }
}

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    pub method: String,
    /// The path without the query string, e.g. `/rest/people`.
    pub path: String,
    /// The raw (still percent-encoded) query string, empty when there was none.
    pub query: String,
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

/// A running fake Twenty server. Dropping it stops the server.
pub struct FakeTwenty {
    state: Arc<Mutex<State>>,
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeTwenty {
    /// The only bearer token the fake accepts.
    pub const API_KEY: &'static str = "fake-twenty-api-key";
    /// The workspace id used in webhook payloads.
    pub const WORKSPACE_ID: &'static str = "872cfcf1-c79f-42bc-877d-5829f06eb3f9";

    /// Starts a server on `127.0.0.1` and a free port, with the standard schema and no records.
    pub async fn start() -> FakeTwenty {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fake Twenty server");
        let port = listener.local_addr().expect("the fake's address").port();
        let state = Arc::new(Mutex::new(State::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        std::thread::Builder::new()
            .name(format!("fake-twenty-{port}"))
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let data = web::Data::from(shared);
                    let server = HttpServer::new(move || {
                        App::new().app_data(data.clone()).default_service(web::to(dispatch))
                    })
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .listen(listener)
                    .expect("listening")
                    .run();
                    let handle = server.handle();
                    actix_web::rt::spawn(async move {
                        // Resolves when the FakeTwenty (the sender) is dropped.
                        let _ = stop_rx.await;
                        handle.stop(false).await;
                    });
                    let _ = ready_tx.send(());
                    let _ = server.await;
                })
            })
            .expect("spawning the fake Twenty thread");
        ready_rx.await.expect("the fake Twenty server failed to start");
        FakeTwenty { state, url: format!("http://127.0.0.1:{port}"), _stop: stop_tx }
    }

    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // ----- schema -----

    /// Switches the shape of `GET /rest/metadata/objects`.
    pub fn set_metadata_shape(&self, shape: MetadataShape) {
        self.lock().metadata_shape = shape;
    }

    /// Adds an active, non-system object with the standard fields plus `name` (TEXT).
    pub fn add_object(&self, singular: &str, plural: &str, is_custom: bool) {
        self.lock().add_object(ObjectMeta::new(singular, plural, is_custom, true, false));
    }

    // ----- records -----

    /// Creates a record now: a generated uuid-like `id`, `createdAt` = `updatedAt` = the clock,
    /// `deletedAt` null, then `fields` merged on top (they may override any of these, `id` too).
    /// Returns the record as a `created` webhook would carry it.
    pub fn create(&self, object: &str, fields: Value) -> Value {
        let mut state = self.lock();
        let ms = state.tick();
        state.create_at(object, ms, fields)
    }

    /// Merges `fields` into the record and sets `updatedAt`. Returns the row after the change.
    pub fn update(&self, object: &str, id: &str, fields: Value) -> Value {
        let mut state = self.lock();
        let ms = state.tick();
        state.modify(object, id, ms, |record| merge(record, fields))
    }

    /// Soft-deletes: sets `deletedAt` and `updatedAt` to the clock. Returns the row after the change.
    pub fn soft_delete(&self, object: &str, id: &str) -> Value {
        let mut state = self.lock();
        let ms = state.tick();
        state.modify(object, id, ms, |record| {
            record.insert("deletedAt".into(), Value::String(format_ms(ms)));
        })
    }

    /// Restores a soft-deleted record: clears `deletedAt`, sets `updatedAt`. Returns the row after.
    pub fn restore(&self, object: &str, id: &str) -> Value {
        let mut state = self.lock();
        let ms = state.tick();
        state.modify(object, id, ms, |record| {
            record.insert("deletedAt".into(), Value::Null);
        })
    }

    /// Hard-deletes the record. Returns the row as it was before (what `destroyed` carries).
    pub fn destroy(&self, object: &str, id: &str) -> Value {
        let mut state = self.lock();
        let table = state.table_mut(object);
        match table.remove(id, Instant::now()) {
            Some(row) => row.value.clone(),
            None => panic!("fake Twenty: no {} record {id} to destroy", table.meta_singular),
        }
    }

    /// Starts a transaction: captures a start time from the clock (later mutations get later times).
    pub fn begin(&self) -> Tx {
        Tx { start_ms: self.lock().tick() }
    }

    /// Commits an update of `tx` now, with `updatedAt` = the transaction's start: the record appears
    /// with an `updatedAt` older than records already committed.
    pub fn commit_update(&self, tx: Tx, object: &str, id: &str, fields: Value) -> Value {
        self.lock().modify(object, id, tx.start_ms, |record| merge(record, fields))
    }

    /// Commits a creation of `tx` now, with `createdAt` = `updatedAt` = the transaction's start.
    pub fn commit_create(&self, tx: Tx, object: &str, fields: Value) -> Value {
        self.lock().create_at(object, tx.start_ms, fields)
    }

    /// Inserts prepared records (each should have `id` and `updatedAt`; missing `id`, `createdAt`,
    /// `updatedAt`, `deletedAt` are filled in). Existing ids are replaced. The clock moves past the
    /// newest `updatedAt` inserted, so later mutations stay strictly newer.
    pub fn bulk_insert(&self, object: &str, records: Vec<Value>) {
        let mut state = self.lock();
        let now_ms = state.tick();
        let now_text = format_ms(now_ms);
        let committed = Instant::now();
        let mut newest = now_ms;
        let singular = state.resolve(object);
        let mut next_ids = Vec::new();
        let missing_ids = records.iter().filter(|r| r.get("id").is_none()).count();
        for _ in 0..missing_ids {
            next_ids.push(state.next_id());
        }
        let table = state.tables.get_mut(&singular).expect("a table per object");
        for mut record in records {
            let map = record.as_object_mut().expect("fake Twenty: bulk_insert takes JSON objects");
            if !map.contains_key("id") {
                map.insert("id".into(), Value::String(next_ids.pop().expect("an id")));
            }
            for key in ["createdAt", "updatedAt"] {
                map.entry(key).or_insert_with(|| Value::String(now_text.clone()));
            }
            map.entry("deletedAt").or_insert(Value::Null);
            let row = Row::new(record);
            newest = newest.max(row.updated_ms);
            table.put(row, committed);
        }
        state.last_ms = state.last_ms.max(newest);
    }

    /// The committed records of `object` (singular or plural name), soft-deleted ones included,
    /// sorted by id: what the mirror must hold after a reconcile. Ignores the replica lag.
    pub fn records(&self, object: &str) -> Vec<Value> {
        let state = self.lock();
        state.table(object).by_id.values().map(|row| row.value.clone()).collect()
    }

    /// One committed record (soft-deleted too), ignoring the replica lag.
    pub fn record(&self, object: &str, id: &str) -> Option<Value> {
        self.lock().table(object).by_id.get(id).map(|row| row.value.clone())
    }

    /// Makes list and get-one requests see the data as it was committed `lag` ago (zero: no lag).
    pub fn set_replica_lag(&self, lag: Duration) {
        self.lock().replica_lag = lag;
    }

    // ----- webhook subscriptions -----

    /// `GET …/webhooks` answers `{"data":[…],"pageInfo":…,"totalCount":n}` instead of a plain array.
    pub fn set_webhook_list_paged(&self, paged: bool) {
        self.lock().webhook_list_paged = paged;
    }

    /// Serves the subscription API under `/rest/webhooks` (older servers) and answers 404 under
    /// `/rest/metadata/webhooks`.
    pub fn set_legacy_webhooks_path(&self, legacy: bool) {
        self.lock().legacy_webhooks_path = legacy;
    }

    /// The current subscriptions, in creation order.
    pub fn webhooks(&self) -> Vec<Value> {
        self.lock().webhooks.clone()
    }

    // ----- rate limits and faults -----

    /// One token bucket of capacity `limit`, refilled continuously at `limit / window`, for the
    /// authenticated requests (all routes). Replaces any previous limits and starts full.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        self.set_rate_limits(&[(limit, window)]);
    }

    /// Several buckets at once (a request must find a token in each); an empty slice removes limits.
    pub fn set_rate_limits(&self, limits: &[(u32, Duration)]) {
        let now = Instant::now();
        self.lock().buckets = limits
            .iter()
            .map(|&(limit, window)| Bucket { limit, window, tokens: f64::from(limit), refilled_at: now })
            .collect();
    }

    /// Over the limit, answer HTTP 400 "Limit reached …" (older releases) instead of 429.
    pub fn set_limit_reached_as_400(&self, as_400: bool) {
        self.lock().limit_reached_as_400 = as_400;
    }

    /// Answers the next `times` record list/get requests with `fault` (queued after earlier
    /// injections).
    pub fn inject(&self, fault: Fault, times: usize) {
        if times > 0 {
            self.lock().faults.push_back((fault, times));
        }
    }

    /// Answers every record list/get request with `fault` until called with `None`. Takes precedence
    /// over injected faults, which it does not consume.
    pub fn fail_always(&self, fault: Option<Fault>) {
        self.lock().fail_always = fault;
    }

    // ----- observability -----

    /// Every request answered so far (since the last reset), in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.lock().requests.clone()
    }

    /// How many requests were answered (since the last reset).
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// Forgets the logged requests.
    pub fn reset_requests(&self) {
        self.lock().requests.clear();
    }
}

/// A webhook payload as Twenty sends it: `nameSingular` is taken from `event_name`
/// (`person.updated` → `person`); `objectMetadata.id` matches the fake's metadata.
pub fn webhook_body(event_name: &str, record: &Value, event_date: &str) -> Value {
    let singular = event_name.split_once('.').map_or(event_name, |(object, _)| object);
    json!({
        "targetUrl": WEBHOOK_TARGET_URL,
        "eventName": event_name,
        "objectMetadata": {"id": object_id(singular), "nameSingular": singular},
        "workspaceId": FakeTwenty::WORKSPACE_ID,
        "webhookId": WEBHOOK_ID,
        "eventDate": event_date,
        "record": record,
    })
}

/// `a=1&b=x%20y`: a percent-encoded query string (reqwest's `query` feature is not enabled here).
pub fn encode_query(pairs: &[(&str, &str)]) -> String {
    fn encode(text: &str, out: &mut String) {
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(name, &mut out);
        out.push('=');
        encode(value, &mut out);
    }
    out
}

// ======================================================================================= state

struct State {
    objects: Vec<ObjectMeta>,
    tables: HashMap<String, Table>,
    last_ms: i64,
    id_counter: u64,
    replica_lag: Duration,
    metadata_shape: MetadataShape,
    webhooks: Vec<Value>,
    webhook_list_paged: bool,
    legacy_webhooks_path: bool,
    buckets: Vec<Bucket>,
    limit_reached_as_400: bool,
    faults: VecDeque<(Fault, usize)>,
    fail_always: Option<Fault>,
    requests: Vec<LoggedRequest>,
}

struct Bucket {
    limit: u32,
    window: Duration,
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let per_sec = f64::from(self.limit) / self.window.as_secs_f64().max(1e-9);
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(f64::from(self.limit));
        self.refilled_at = now;
    }

    fn describe(&self) -> String {
        format!("Limit reached ({} tokens per {} ms)", self.limit, self.window.as_millis())
    }
}

impl State {
    fn new() -> State {
        let mut state = State {
            objects: Vec::new(),
            tables: HashMap::new(),
            last_ms: 0,
            id_counter: 0,
            replica_lag: Duration::ZERO,
            metadata_shape: MetadataShape::Nested,
            webhooks: Vec::new(),
            webhook_list_paged: false,
            legacy_webhooks_path: false,
            buckets: Vec::new(),
            limit_reached_as_400: false,
            faults: VecDeque::new(),
            fail_always: None,
            requests: Vec::new(),
        };
        for (singular, plural, active, system) in [
            ("person", "people", true, false),
            ("company", "companies", true, false),
            ("opportunity", "opportunities", true, false),
            ("workspaceMember", "workspaceMembers", true, true),
            ("legacyThing", "legacyThings", false, false),
        ] {
            state.add_object(ObjectMeta::new(singular, plural, false, active, system));
        }
        state
    }

    fn add_object(&mut self, meta: ObjectMeta) {
        assert!(
            !self.objects.iter().any(|o| o.singular == meta.singular || o.plural == meta.plural),
            "fake Twenty: object {} already exists",
            meta.singular
        );
        self.tables.insert(meta.singular.clone(), Table::new(&meta.singular));
        self.objects.push(meta);
    }

    /// The clock: now in ms, strictly after the previous tick.
    fn tick(&mut self) -> i64 {
        let ms = Utc::now().timestamp_millis().max(self.last_ms + 1);
        self.last_ms = ms;
        ms
    }

    fn next_id(&mut self) -> String {
        self.id_counter += 1;
        uuid_from(format!("record:{}", self.id_counter).as_bytes())
    }

    fn resolve(&self, object: &str) -> String {
        match self.objects.iter().find(|o| o.singular == object || o.plural == object) {
            Some(meta) => meta.singular.clone(),
            None => panic!("fake Twenty: unknown object {object}"),
        }
    }

    fn table(&self, object: &str) -> &Table {
        &self.tables[&self.resolve(object)]
    }

    fn table_mut(&mut self, object: &str) -> &mut Table {
        let singular = self.resolve(object);
        self.tables.get_mut(&singular).expect("a table per object")
    }

    fn create_at(&mut self, object: &str, ms: i64, fields: Value) -> Value {
        let id = self.next_id();
        let at = format_ms(ms);
        let mut record = json!({"id": id, "createdAt": at, "updatedAt": at, "deletedAt": null});
        merge(record.as_object_mut().expect("an object"), fields);
        self.table_mut(object).put(Row::new(record.clone()), Instant::now());
        record
    }

    fn modify(
        &mut self,
        object: &str,
        id: &str,
        ms: i64,
        change: impl FnOnce(&mut Map<String, Value>),
    ) -> Value {
        let table = self.table_mut(object);
        let Some(current) = table.by_id.get(id) else {
            panic!("fake Twenty: no {} record {id}", table.meta_singular)
        };
        let mut record = current.value.clone();
        let map = record.as_object_mut().expect("records are objects");
        map.insert("updatedAt".into(), Value::String(format_ms(ms)));
        change(map);
        table.put(Row::new(record.clone()), Instant::now());
        record
    }

    fn object_by_plural(&self, plural: &str) -> Option<&ObjectMeta> {
        self.objects.iter().find(|o| o.plural == plural && o.is_active)
    }

    /// Takes a token from every bucket, or answers the over-the-limit response.
    fn throttle(&mut self) -> Option<HttpResponse> {
        let now = Instant::now();
        for bucket in &mut self.buckets {
            bucket.refill(now);
        }
        if let Some(empty) = self.buckets.iter().find(|b| b.tokens < 1.0) {
            let message = empty.describe();
            return Some(if self.limit_reached_as_400 {
                error(400, "BadRequestException", message)
            } else {
                error(429, "TooManyRequestsException", message)
            });
        }
        for bucket in &mut self.buckets {
            bucket.tokens -= 1.0;
        }
        None
    }

    fn take_fault(&mut self) -> Option<Fault> {
        if let Some(fault) = &self.fail_always {
            return Some(fault.clone());
        }
        let (fault, remaining) = self.faults.front_mut()?;
        let fault = fault.clone();
        *remaining -= 1;
        if *remaining == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }
}

fn merge(record: &mut Map<String, Value>, fields: Value) {
    match fields {
        Value::Object(fields) => record.extend(fields),
        Value::Null => {}
        other => panic!("fake Twenty: fields must be a JSON object, not {other}"),
    }
}

// ======================================================================================= records

/// One version of a record, with its timestamps parsed once.
struct Row {
    id: Arc<str>,
    value: Value,
    updated_ms: i64,
    created_ms: Option<i64>,
    deleted_ms: Option<i64>,
}

impl Row {
    fn new(value: Value) -> Row {
        let id: Arc<str> = match value.get("id") {
            Some(Value::String(id)) => Arc::from(id.as_str()),
            other => panic!("fake Twenty: a record needs a string id, not {other:?}"),
        };
        let timestamp = |key: &str| value.get(key).and_then(Value::as_str).and_then(parse_timestamp);
        let Some(updated_ms) = timestamp("updatedAt") else {
            panic!("fake Twenty: record {id} needs an RFC 3339 updatedAt, not {:?}", value.get("updatedAt"))
        };
        let created_ms = timestamp("createdAt");
        let deleted_ms = timestamp("deletedAt");
        Row { id, value, updated_ms, created_ms, deleted_ms }
    }

    fn is_soft_deleted(&self) -> bool {
        !matches!(self.value.get("deletedAt"), None | Some(Value::Null))
    }

    /// The parsed value of a timestamp column, when `path` is one.
    fn cached_timestamp(&self, path: &[String]) -> Option<Option<i64>> {
        match path {
            [field] if field == "updatedAt" => Some(Some(self.updated_ms)),
            [field] if field == "createdAt" && self.created_ms.is_some() => Some(self.created_ms),
            [field] if field == "deletedAt" && (self.deleted_ms.is_some() || !self.is_soft_deleted()) => {
                Some(self.deleted_ms)
            }
            _ => None,
        }
    }

    fn field(&self, path: &[String]) -> Option<&Value> {
        let mut value = &self.value;
        for segment in path {
            value = value.get(segment)?;
        }
        Some(value)
    }
}

struct Version {
    committed: Instant,
    row: Option<Arc<Row>>,
}

struct Table {
    meta_singular: String,
    /// The committed records, soft-deleted included.
    by_id: BTreeMap<Arc<str>, Arc<Row>>,
    /// The same, in `updatedAt, id` order.
    by_updated: BTreeMap<(i64, Arc<str>), Arc<Row>>,
    /// Every version committed, for the replica lag (`None`: destroyed).
    history: HashMap<Arc<str>, Vec<Version>>,
    /// Bumped on every change; keys the count cache.
    generation: u64,
    counts: HashMap<String, (u64, usize)>,
}

impl Table {
    fn new(singular: &str) -> Table {
        Table {
            meta_singular: singular.to_owned(),
            by_id: BTreeMap::new(),
            by_updated: BTreeMap::new(),
            history: HashMap::new(),
            generation: 0,
            counts: HashMap::new(),
        }
    }

    fn put(&mut self, row: Row, committed: Instant) {
        let row = Arc::new(row);
        if let Some(old) = self.by_id.insert(row.id.clone(), row.clone()) {
            self.by_updated.remove(&(old.updated_ms, old.id.clone()));
        }
        self.by_updated.insert((row.updated_ms, row.id.clone()), row.clone());
        self.history.entry(row.id.clone()).or_default().push(Version { committed, row: Some(row) });
        self.generation += 1;
    }

    fn remove(&mut self, id: &str, committed: Instant) -> Option<Arc<Row>> {
        let old = self.by_id.remove(id)?;
        self.by_updated.remove(&(old.updated_ms, old.id.clone()));
        self.history.entry(old.id.clone()).or_default().push(Version { committed, row: None });
        self.generation += 1;
        Some(old)
    }

    /// The rows a replica `lag` behind sees (soft-deleted included), unsorted.
    fn lagging_rows(&self, lag: Duration) -> Vec<Arc<Row>> {
        let Some(cutoff) = Instant::now().checked_sub(lag) else { return Vec::new() };
        self.history
            .values()
            .filter_map(|versions| versions.iter().rev().find(|v| v.committed <= cutoff))
            .filter_map(|version| version.row.clone())
            .collect()
    }

    fn lagging_row(&self, id: &str, lag: Duration) -> Option<Arc<Row>> {
        if lag.is_zero() {
            return self.by_id.get(id).cloned();
        }
        let cutoff = Instant::now().checked_sub(lag)?;
        self.history.get(id)?.iter().rev().find(|v| v.committed <= cutoff)?.row.clone()
    }
}

// ======================================================================================= metadata

struct ObjectMeta {
    id: String,
    singular: String,
    plural: String,
    is_custom: bool,
    is_active: bool,
    is_system: bool,
    fields: Vec<Value>,
}

impl ObjectMeta {
    fn new(singular: &str, plural: &str, is_custom: bool, is_active: bool, is_system: bool) -> ObjectMeta {
        ObjectMeta {
            id: object_id(singular),
            singular: singular.to_owned(),
            plural: plural.to_owned(),
            is_custom,
            is_active,
            is_system,
            fields: fields_of(singular, plural, is_custom),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "nameSingular": self.singular,
            "namePlural": self.plural,
            "labelSingular": label(&self.singular),
            "labelPlural": label(&self.plural),
            "description": null,
            "icon": if self.is_custom { "IconBox" } else { "IconUser" },
            "isCustom": self.is_custom,
            "isActive": self.is_active,
            "isSystem": self.is_system,
            "isRemote": false,
            "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:00.000Z",
            "fields": self.fields,
        })
    }
}

fn object_id(singular: &str) -> String {
    uuid_from(format!("object:{singular}").as_bytes())
}

/// `jobTitle` → `Job title`, `people` → `People`.
fn label(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn fields_of(singular: &str, plural: &str, is_custom: bool) -> Vec<Value> {
    let field = |name: &str, kind: &str, nullable: bool, system: bool| {
        json!({
            "id": uuid_from(format!("field:{singular}.{name}").as_bytes()),
            "name": name,
            "label": label(name),
            "type": kind,
            "isNullable": nullable,
            "isActive": true,
            "isSystem": system,
            "isCustom": is_custom && !matches!(name, "id" | "createdAt" | "updatedAt" | "deletedAt"),
            "defaultValue": null,
            "options": null,
            "relation": null,
        })
    };
    let relation = |name: &str, kind: &str, target: (&str, &str), target_field: &str| {
        let mut value = field(name, "RELATION", true, false);
        value["relation"] = json!({
            "type": kind,
            "sourceObjectMetadata": {"id": object_id(singular), "nameSingular": singular, "namePlural": plural},
            "targetObjectMetadata": {"id": object_id(target.0), "nameSingular": target.0, "namePlural": target.1},
            "sourceFieldMetadata": {"id": uuid_from(format!("field:{singular}.{name}").as_bytes()), "name": name},
            "targetFieldMetadata": {
                "id": uuid_from(format!("field:{}.{target_field}", target.0).as_bytes()),
                "name": target_field,
            },
        });
        value
    };
    let mut fields = vec![
        field("id", "UUID", false, true),
        field("createdAt", "DATE_TIME", false, false),
        field("updatedAt", "DATE_TIME", false, false),
        field("deletedAt", "DATE_TIME", true, false),
        field("createdBy", "ACTOR", false, false),
        field("position", "POSITION", false, true),
    ];
    match singular {
        "person" => fields.extend([
            field("name", "FULL_NAME", true, false),
            field("emails", "EMAILS", true, false),
            field("phones", "PHONES", true, false),
            field("jobTitle", "TEXT", false, false),
            field("city", "TEXT", false, false),
            relation("company", "MANY_TO_ONE", ("company", "companies"), "people"),
        ]),
        "company" => fields.extend([
            field("name", "TEXT", false, false),
            field("domainName", "LINKS", true, false),
            field("employees", "NUMBER", true, false),
            field("address", "ADDRESS", true, false),
            relation("people", "ONE_TO_MANY", ("person", "people"), "company"),
        ]),
        "opportunity" => {
            let mut stage = field("stage", "SELECT", false, false);
            stage["options"] = json!(
                ["NEW", "SCREENING", "MEETING", "PROPOSAL", "CUSTOMER"]
                    .iter()
                    .enumerate()
                    .map(|(i, value)| json!({
                        "id": uuid_from(format!("option:opportunity.stage.{value}").as_bytes()),
                        "value": value,
                        "label": label(&value.to_lowercase()),
                        "position": i,
                        "color": "blue",
                    }))
                    .collect::<Vec<_>>()
            );
            fields.extend([
                field("name", "TEXT", false, false),
                field("amount", "CURRENCY", true, false),
                field("closeDate", "DATE_TIME", true, false),
                stage,
                relation("company", "MANY_TO_ONE", ("company", "companies"), "opportunities"),
            ]);
        }
        "workspaceMember" => fields.extend([
            field("name", "FULL_NAME", false, false),
            field("userEmail", "TEXT", false, false),
            field("colorScheme", "TEXT", false, false),
        ]),
        _ => fields.push(field("name", "TEXT", true, false)),
    }
    fields
}

// ======================================================================================= HTTP

type Shared = Mutex<State>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn dispatch(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let at = Instant::now();
    let response = route(&req, &body, &shared).await;
    lock(&shared).requests.push(LoggedRequest {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        status: response.status().as_u16(),
        at,
    });
    response
}

enum Route {
    Objects,
    Webhooks(Option<String>),
    List(String),
    Get(String, String),
    NotFound,
}

async fn route(req: &HttpRequest, body: &[u8], shared: &Shared) -> HttpResponse {
    let expected = format!("Bearer {}", FakeTwenty::API_KEY);
    let authorized =
        req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    if !authorized {
        return unauthorized();
    }
    let segments: Vec<&str> = match req.path().strip_prefix("/rest/") {
        Some(rest) => rest.split('/').filter(|s| !s.is_empty()).collect(),
        None => Vec::new(),
    };
    let (route, fault) = {
        let mut state = lock(shared);
        if let Some(refusal) = state.throttle() {
            return refusal;
        }
        let webhooks_base: &[&str] =
            if state.legacy_webhooks_path { &["webhooks"] } else { &["metadata", "webhooks"] };
        let route = match segments.as_slice() {
            ["metadata", "objects"] => Route::Objects,
            _ if segments.starts_with(webhooks_base) && segments.len() <= webhooks_base.len() + 1 => {
                Route::Webhooks(segments.get(webhooks_base.len()).map(|id| (*id).to_owned()))
            }
            ["metadata", ..] => Route::NotFound,
            [plural] => Route::List((*plural).to_owned()),
            [plural, id] => Route::Get((*plural).to_owned(), (*id).to_owned()),
            _ => Route::NotFound,
        };
        let reads_records = matches!(route, Route::List(_) | Route::Get(..)) && req.method() == "GET";
        let fault = if reads_records { state.take_fault() } else { None };
        (route, fault)
    };
    match fault {
        Some(Fault::Delay(delay)) => actix_web::rt::time::sleep(delay).await,
        Some(fault) => return fault_response(&fault),
        None => {}
    }
    let method = req.method().as_str();
    match route {
        Route::Objects if method == "GET" => objects(&lock(shared)),
        Route::Webhooks(id) => webhooks(&mut lock(shared), method, id.as_deref(), body),
        Route::List(plural) if method == "GET" => list(shared, &plural, req.query_string()),
        Route::Get(plural, id) if method == "GET" => get_one(&lock(shared), &plural, &id),
        Route::List(_) | Route::Get(..) => {
            error(501, "NotImplemented", format!("the fake Twenty server does not implement {method} here"))
        }
        Route::Objects | Route::NotFound => {
            error(404, "NotFoundException", format!("Cannot {method} {}", req.path()))
        }
    }
}

fn error(status: u16, name: &str, message: impl Into<String>) -> HttpResponse {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code).json(json!({"statusCode": status, "error": name, "messages": [message.into()]}))
}

fn unauthorized() -> HttpResponse {
    error(401, "Unauthorized", "Token invalid.")
}

fn fault_response(fault: &Fault) -> HttpResponse {
    match fault {
        Fault::Status(401) => unauthorized(),
        Fault::Status(429) => {
            error(429, "TooManyRequestsException", "Limit reached (100 tokens per 60000 ms)")
        }
        Fault::LimitReached400 => {
            error(400, "BadRequestException", "Limit reached (100 tokens per 60000 ms)")
        }
        &Fault::Status(status @ (502..=504)) => {
            let code = StatusCode::from_u16(status).expect("a valid status");
            let reason = code.canonical_reason().unwrap_or("Error");
            HttpResponse::build(code).insert_header((CONTENT_TYPE, "text/html")).body(format!(
                "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n\
                 <center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
            ))
        }
        &Fault::Status(status) => {
            let name = match status {
                400 => "BadRequestException",
                403 => "ForbiddenException",
                404 => "NotFoundException",
                500 => "InternalServerErrorException",
                _ => "HttpException",
            };
            let message = StatusCode::from_u16(status)
                .ok()
                .and_then(|code| code.canonical_reason())
                .unwrap_or("Injected fault");
            error(status, name, message)
        }
        Fault::Delay(_) => unreachable!("a delay is not an answer"),
    }
}

fn objects(state: &State) -> HttpResponse {
    let objects: Vec<Value> = state.objects.iter().map(ObjectMeta::to_json).collect();
    let page_info = json!({
        "hasNextPage": false,
        "hasPreviousPage": false,
        "startCursor": state.objects.first().map(|o| hex::encode(&o.id)),
        "endCursor": state.objects.last().map(|o| hex::encode(&o.id)),
    });
    let total = objects.len();
    let data = match state.metadata_shape {
        MetadataShape::Nested => json!({"objects": objects}),
        MetadataShape::Flat => Value::Array(objects),
    };
    HttpResponse::Ok().json(json!({"data": data, "pageInfo": page_info, "totalCount": total}))
}

fn get_one(state: &State, plural: &str, id: &str) -> HttpResponse {
    let Some(meta) = state.object_by_plural(plural) else { return object_not_found(plural) };
    let table = &state.tables[&meta.singular];
    match table.lagging_row(id, state.replica_lag) {
        Some(row) if !row.is_soft_deleted() => {
            HttpResponse::Ok().json(json!({"data": {meta.singular.as_str(): row.value}}))
        }
        _ => error(404, "NotFoundException", format!("Record {id} not found")),
    }
}

fn object_not_found(plural: &str) -> HttpResponse {
    error(404, "NotFoundException", format!("Object '{plural}' not found"))
}

// ----- webhook subscriptions -----

fn webhooks(state: &mut State, method: &str, id: Option<&str>, body: &[u8]) -> HttpResponse {
    let position = |state: &State, id: &str| state.webhooks.iter().position(|w| w["id"] == id);
    match (method, id) {
        ("GET", None) => {
            let list = state.webhooks.clone();
            if state.webhook_list_paged {
                let cursor = |w: Option<&Value>| w.map(|w| hex::encode(w["id"].as_str().unwrap_or_default()));
                HttpResponse::Ok().json(json!({
                    "data": list,
                    "pageInfo": {
                        "hasNextPage": false,
                        "hasPreviousPage": false,
                        "startCursor": cursor(list.first()),
                        "endCursor": cursor(list.last()),
                    },
                    "totalCount": list.len(),
                }))
            } else {
                HttpResponse::Ok().json(list)
            }
        }
        ("POST", None) => {
            let input = match webhook_input(body, true) {
                Ok(input) => input,
                Err(message) => return error(400, "BadRequestException", message),
            };
            let now = format_ms(Utc::now().timestamp_millis());
            let id = state.next_id();
            let secret = match input.get("secret") {
                Some(Value::String(secret)) => secret.clone(),
                _ => hex::encode(&Sha256::digest(format!("secret:{id}").as_bytes())[..16]),
            };
            let subscription = json!({
                "id": id,
                "targetUrl": input["targetUrl"],
                "operations": input.get("operations").cloned().unwrap_or_else(|| json!(["*.*"])),
                "description": input.get("description").cloned().unwrap_or(Value::Null),
                "secret": secret,
                "createdAt": now,
                "updatedAt": now,
            });
            state.webhooks.push(subscription.clone());
            HttpResponse::Created().json(subscription)
        }
        ("GET", Some(id)) => match position(state, id) {
            Some(i) => HttpResponse::Ok().json(&state.webhooks[i]),
            // Twenty answers a missing subscription with 200 and an empty body.
            None => HttpResponse::Ok().finish(),
        },
        ("PATCH", Some(id)) => {
            let Some(i) = position(state, id) else { return webhook_not_found(id) };
            let input = match webhook_input(body, false) {
                Ok(input) => input,
                Err(message) => return error(400, "BadRequestException", message),
            };
            let subscription = &mut state.webhooks[i];
            for (key, value) in input {
                subscription[key.as_str()] = value;
            }
            subscription["updatedAt"] = json!(format_ms(Utc::now().timestamp_millis()));
            HttpResponse::Ok().json(&*subscription)
        }
        ("DELETE", Some(id)) => match position(state, id) {
            Some(i) => HttpResponse::Ok().json(state.webhooks.remove(i)),
            None => webhook_not_found(id),
        },
        _ => error(404, "NotFoundException", format!("Cannot {method} webhooks")),
    }
}

fn webhook_not_found(id: &str) -> HttpResponse {
    error(404, "NotFoundException", format!("Webhook with id {id} not found"))
}

/// The accepted keys of a subscription body, checked.
fn webhook_input(body: &[u8], creating: bool) -> Result<Map<String, Value>, String> {
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(body) else {
        return Err("the body must be a JSON object".into());
    };
    let mut accepted = Map::new();
    for (key, value) in input {
        let valid = match key.as_str() {
            "targetUrl" => value.as_str().is_some_and(|url| url.starts_with("http")),
            "operations" => value.as_array().is_some_and(|ops| ops.iter().all(Value::is_string)),
            "description" => value.is_string() || value.is_null(),
            "secret" => value.is_string(),
            _ => continue,
        };
        if !valid {
            return Err(format!("invalid {key}"));
        }
        accepted.insert(key, value);
    }
    if creating && !accepted.contains_key("targetUrl") {
        return Err("targetUrl is required".into());
    }
    Ok(accepted)
}

// ----- record lists -----

struct OrderItem {
    path: Vec<String>,
    desc: bool,
    nulls_first: bool,
}

struct ListQuery {
    limit: usize,
    order: Vec<OrderItem>,
    filter: Option<Filter>,
    filter_text: String,
    include_deleted: bool,
    after: Option<Vec<SortVal>>,
    before: Option<Vec<SortVal>>,
}

fn bad_request(message: impl Into<String>) -> HttpResponse {
    error(400, "BadRequestException", message)
}

fn parse_list_query(query: &str) -> Result<ListQuery, String> {
    let params = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|e| format!("invalid query string: {e}"))?
        .into_inner();
    let param = |name: &str| params.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let limit = match param("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => {
            let limit: i64 =
                text.trim().parse().map_err(|_| format!("limit must be an integer, not {text:?}"))?;
            usize::try_from(limit).map_err(|_| "limit must not be negative".to_owned())?.min(MAX_LIMIT)
        }
    };
    let mut order = Vec::new();
    if let Some(text) = param("order_by").filter(|t| !t.trim().is_empty()) {
        for item in text.split(',') {
            let item = item.trim();
            let (field, direction) = match item.split_once('[') {
                Some((field, rest)) => {
                    let direction =
                        rest.strip_suffix(']').ok_or_else(|| format!("invalid order_by {item:?}"))?;
                    (field, direction)
                }
                None => (item, "AscNullsFirst"),
            };
            let (desc, nulls_first) = match direction {
                "AscNullsFirst" => (false, true),
                "AscNullsLast" => (false, false),
                "DescNullsFirst" => (true, true),
                "DescNullsLast" => (true, false),
                _ => return Err(format!("invalid order_by direction {direction:?}")),
            };
            if field.is_empty() || !field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                return Err(format!("invalid order_by field {field:?}"));
            }
            order.push(OrderItem { path: field.split('.').map(str::to_owned).collect(), desc, nulls_first });
        }
    }
    if !order.iter().any(|item| item.path == ["id"]) {
        order.push(OrderItem { path: vec!["id".into()], desc: false, nulls_first: true });
    }
    let filter_text = param("filter").unwrap_or_default().to_owned();
    let filter = if filter_text.trim().is_empty() { None } else { Some(Filter::parse(&filter_text)?) };
    let cursor = |name: &str| -> Result<Option<Vec<SortVal>>, String> {
        let Some(text) = param(name) else { return Ok(None) };
        let values = decode_cursor(text).ok_or_else(|| format!("invalid cursor {text:?}"))?;
        if values.len() != order.len() {
            return Err(format!("cursor {text:?} does not match the order_by"));
        }
        Ok(Some(values.iter().map(|v| SortVal::of(Some(v))).collect()))
    };
    let after = cursor("starting_after")?;
    let before = cursor("ending_before")?;
    if after.is_some() && before.is_some() {
        return Err("starting_after and ending_before cannot be used together".into());
    }
    Ok(ListQuery {
        limit,
        order,
        include_deleted: filter_text.contains("deletedAt"),
        filter,
        filter_text,
        after,
        before,
    })
}

fn encode_cursor(row: &Row, order: &[OrderItem]) -> String {
    let values: Vec<Value> =
        order.iter().map(|item| row.field(&item.path).cloned().unwrap_or(Value::Null)).collect();
    hex::encode(Value::Array(values).to_string())
}

fn decode_cursor(text: &str) -> Option<Vec<Value>> {
    let bytes = hex::decode(text.trim()).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Array(values) => Some(values),
        _ => None,
    }
}

/// A sortable value: timestamps as instants, numbers as numbers, anything else by its text.
#[derive(Clone, Debug, PartialEq)]
enum SortVal {
    Null,
    Bool(bool),
    Num(f64),
    Time(i64),
    Text(String),
}

impl SortVal {
    fn of(value: Option<&Value>) -> SortVal {
        match value {
            None | Some(Value::Null) => SortVal::Null,
            Some(Value::Bool(b)) => SortVal::Bool(*b),
            Some(Value::Number(n)) => SortVal::Num(n.as_f64().unwrap_or(f64::NAN)),
            Some(Value::String(s)) => {
                parse_timestamp(s).map_or_else(|| SortVal::Text(s.clone()), SortVal::Time)
            }
            Some(other) => SortVal::Text(other.to_string()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortVal::Null => 0,
            SortVal::Bool(_) => 1,
            SortVal::Num(_) => 2,
            SortVal::Time(_) => 3,
            SortVal::Text(_) => 4,
        }
    }

    fn cmp_non_null(&self, other: &SortVal) -> Ordering {
        match (self, other) {
            (SortVal::Bool(a), SortVal::Bool(b)) => a.cmp(b),
            (SortVal::Num(a), SortVal::Num(b)) => a.total_cmp(b),
            (SortVal::Time(a), SortVal::Time(b)) => a.cmp(b),
            (SortVal::Text(a), SortVal::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

fn compare_keys(a: &[SortVal], b: &[SortVal], order: &[OrderItem]) -> Ordering {
    for ((x, y), item) in a.iter().zip(b).zip(order) {
        let ordering = match (x == &SortVal::Null, y == &SortVal::Null) {
            (true, true) => Ordering::Equal,
            (true, false) if item.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if item.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) if item.desc => y.cmp_non_null(x),
            (false, false) => x.cmp_non_null(y),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

fn sort_key(row: &Row, order: &[OrderItem]) -> Vec<SortVal> {
    order
        .iter()
        .map(|item| match row.cached_timestamp(&item.path) {
            Some(Some(ms)) => SortVal::Time(ms),
            _ => SortVal::of(row.field(&item.path)),
        })
        .collect()
}

struct Page {
    rows: Vec<Arc<Row>>,
    total: usize,
    has_next: bool,
    has_previous: bool,
}

fn list(shared: &Shared, plural: &str, query: &str) -> HttpResponse {
    let query = match parse_list_query(query) {
        Ok(query) => query,
        Err(message) => return bad_request(message),
    };
    let (page, singular_plural) = {
        let mut state = lock(shared);
        let Some(meta) = state.object_by_plural(plural) else { return object_not_found(plural) };
        let singular = meta.singular.clone();
        let lag = state.replica_lag;
        let table = state.tables.get_mut(&singular).expect("a table per object");
        let page = if lag.is_zero() { fast_page(table, &query) } else { None };
        let page = match page {
            Some(page) => page,
            None => {
                let rows = if lag.is_zero() {
                    table.by_id.values().cloned().collect()
                } else {
                    table.lagging_rows(lag)
                };
                sorted_page(rows, &query)
            }
        };
        (page, plural.to_owned())
    };
    let page_info = json!({
        "hasNextPage": page.has_next,
        "hasPreviousPage": page.has_previous,
        "startCursor": page.rows.first().map(|row| encode_cursor(row, &query.order)),
        "endCursor": page.rows.last().map(|row| encode_cursor(row, &query.order)),
    });
    // Written by hand so that the records are serialised in place, not cloned into a new Value.
    let mut body = Vec::with_capacity(256 + page.rows.len() * 1024);
    body.extend_from_slice(b"{\"data\":{");
    serde_json::to_writer(&mut body, &singular_plural).expect("serialising");
    body.extend_from_slice(b":[");
    for (i, row) in page.rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut body, &row.value).expect("serialising");
    }
    body.extend_from_slice(format!("]}},\"totalCount\":{},\"pageInfo\":", page.total).as_bytes());
    serde_json::to_writer(&mut body, &page_info).expect("serialising");
    body.push(b'}');
    HttpResponse::Ok().content_type("application/json; charset=utf-8").body(body)
}

fn matches_query(row: &Row, query: &ListQuery) -> bool {
    (query.include_deleted || !row.is_soft_deleted())
        && query.filter.as_ref().is_none_or(|f| f.eval(row) == Some(true))
}

/// Takes up to `limit` matching rows from `rows` (already in page order), and whether more match.
fn take_page<'a>(rows: impl Iterator<Item = &'a Arc<Row>>, query: &ListQuery) -> (Vec<Arc<Row>>, bool) {
    let mut page = Vec::with_capacity(query.limit.min(MAX_LIMIT));
    let mut more = false;
    for row in rows.filter(|row| matches_query(row, query)) {
        if page.len() == query.limit {
            more = true;
            break;
        }
        page.push(row.clone());
    }
    (page, more)
}

/// Pages straight from an index for the orders `id` and `updatedAt, id` (ascending), without sorting;
/// `None` for other orders.
fn fast_page(table: &mut Table, query: &ListQuery) -> Option<Page> {
    let by_updated = match query.order.as_slice() {
        [id] if id.path == ["id"] && !id.desc => false,
        [updated, id] if updated.path == ["updatedAt"] && !updated.desc && id.path == ["id"] && !id.desc => {
            true
        }
        _ => return None,
    };
    // A cursor always ends with the id; with `updatedAt` it starts with an instant.
    let bound = |key: &[SortVal]| -> Option<(i64, Arc<str>)> {
        let id = match key.last()? {
            SortVal::Text(id) => Arc::from(id.as_str()),
            _ => return None,
        };
        let updated = match key.first()? {
            SortVal::Time(ms) => *ms,
            _ if !by_updated => 0,
            _ => return None,
        };
        Some((updated, id))
    };
    let after = match &query.after {
        Some(key) => Some(bound(key)?),
        None => None,
    };
    let before = match &query.before {
        Some(key) => Some(bound(key)?),
        None => None,
    };
    let (mut rows, more) = match (&after, &before, by_updated) {
        (_, Some((_, id)), false) => take_page(
            table.by_id.range::<str, _>((Bound::Unbounded, Bound::Excluded(&**id))).rev().map(|(_, r)| r),
            query,
        ),
        (_, Some(key), true) => take_page(table.by_updated.range(..key.clone()).rev().map(|(_, r)| r), query),
        (Some((_, id)), None, false) => take_page(
            table.by_id.range::<str, _>((Bound::Excluded(&**id), Bound::Unbounded)).map(|(_, r)| r),
            query,
        ),
        (Some(key), None, true) => take_page(
            table.by_updated.range((Bound::Excluded(key.clone()), Bound::Unbounded)).map(|(_, r)| r),
            query,
        ),
        (None, None, false) => take_page(table.by_id.values(), query),
        (None, None, true) => take_page(table.by_updated.values(), query),
    };
    let (has_next, has_previous) = if before.is_some() {
        rows.reverse();
        (true, more)
    } else {
        (more, after.is_some())
    };
    let total = match table.counts.get(&query.filter_text) {
        Some(&(generation, count)) if generation == table.generation => count,
        _ => {
            let count = table.by_id.values().filter(|row| matches_query(row, query)).count();
            if table.counts.len() > 64 {
                table.counts.clear();
            }
            table.counts.insert(query.filter_text.clone(), (table.generation, count));
            count
        }
    };
    Some(Page { rows, total, has_next, has_previous })
}

/// Filters, sorts and pages any set of rows (any order, and the replica's view).
fn sorted_page(rows: Vec<Arc<Row>>, query: &ListQuery) -> Page {
    let mut keyed: Vec<(Vec<SortVal>, Arc<Row>)> = rows
        .into_iter()
        .filter(|row| matches_query(row, query))
        .map(|row| (sort_key(&row, &query.order), row))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare_keys(a, b, &query.order));
    let total = keyed.len();
    let (start, end, has_next, has_previous) = if let Some(before) = &query.before {
        let end = keyed.partition_point(|(key, _)| compare_keys(key, before, &query.order) == Ordering::Less);
        let start = end.saturating_sub(query.limit);
        (start, end, end < total, start > 0)
    } else {
        let start = match &query.after {
            Some(after) => {
                keyed.partition_point(|(key, _)| compare_keys(key, after, &query.order) != Ordering::Greater)
            }
            None => 0,
        };
        let end = (start + query.limit).min(total);
        (start, end, end < total, query.after.is_some())
    };
    let rows = keyed.drain(start..end).map(|(_, row)| row).collect();
    Page { rows, total, has_next, has_previous }
}

// ----- filters -----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Is,
    In,
    Like,
    Ilike,
    StartsWith,
}

#[derive(Debug)]
struct Operand {
    text: String,
    time: Option<i64>,
    number: Option<f64>,
}

impl Operand {
    fn new(text: String) -> Operand {
        let time = parse_timestamp(&text).or_else(|| {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_millis())
        });
        let number = text.parse::<f64>().ok().filter(|n| n.is_finite());
        Operand { text, time, number }
    }
}

#[derive(Debug)]
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Condition { path: Vec<String>, op: Op, operands: Vec<Operand>, null: Option<bool> },
}

impl Filter {
    /// Twenty's `filter` syntax; the error is the 400 message.
    fn parse(text: &str) -> Result<Filter, String> {
        let mut parser = FilterParser { text, pos: 0 };
        let mut list = parser.list(None)?;
        parser.skip_ws();
        if parser.pos != text.len() {
            return Err(format!("invalid filter {text:?}: unexpected character at {}", parser.pos));
        }
        Ok(if list.len() == 1 { list.remove(0) } else { Filter::And(list) })
    }

    /// SQL's three-valued logic: `None` is unknown (a comparison with NULL).
    fn eval(&self, row: &Row) -> Option<bool> {
        match self {
            Filter::And(items) => {
                let mut result = Some(true);
                for item in items {
                    match item.eval(row) {
                        Some(false) => return Some(false),
                        None => result = None,
                        Some(true) => {}
                    }
                }
                result
            }
            Filter::Or(items) => {
                let mut result = Some(false);
                for item in items {
                    match item.eval(row) {
                        Some(true) => return Some(true),
                        None => result = None,
                        Some(false) => {}
                    }
                }
                result
            }
            Filter::Not(item) => item.eval(row).map(|b| !b),
            Filter::Condition { path, op, operands, null } => {
                let cached = row.cached_timestamp(path);
                let value = row.field(path).filter(|v| !v.is_null());
                if *op == Op::Is {
                    return Some(value.is_none() == null.unwrap_or(true));
                }
                let value = value?;
                let compare = |operand: &Operand| -> Option<Ordering> {
                    if let (Some(Some(ms)), Some(time)) = (cached, operand.time) {
                        return Some(ms.cmp(&time));
                    }
                    compare_value(value, operand)
                };
                match op {
                    Op::Eq => compare(&operands[0]).map(|o| o == Ordering::Equal),
                    Op::Neq => compare(&operands[0]).map(|o| o != Ordering::Equal),
                    Op::Gt => compare(&operands[0]).map(|o| o == Ordering::Greater),
                    Op::Gte => compare(&operands[0]).map(|o| o != Ordering::Less),
                    Op::Lt => compare(&operands[0]).map(|o| o == Ordering::Less),
                    Op::Lte => compare(&operands[0]).map(|o| o != Ordering::Greater),
                    Op::In => {
                        let mut result = Some(false);
                        for operand in operands {
                            match compare(operand) {
                                Some(Ordering::Equal) => return Some(true),
                                None => result = None,
                                Some(_) => {}
                            }
                        }
                        result
                    }
                    Op::Like | Op::Ilike | Op::StartsWith => {
                        let text = match value {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            Value::Bool(b) => b.to_string(),
                            _ => return None,
                        };
                        let pattern = &operands[0].text;
                        Some(match op {
                            Op::StartsWith => text.starts_with(pattern.as_str()),
                            Op::Like => like(&text, pattern),
                            _ => like(&text.to_lowercase(), &pattern.to_lowercase()),
                        })
                    }
                    Op::Is => unreachable!("handled above"),
                }
            }
        }
    }
}

/// A record value against a filter operand: instants when both are timestamps, numbers when the
/// value is a number, text otherwise. `None` when they cannot be compared.
fn compare_value(value: &Value, operand: &Operand) -> Option<Ordering> {
    match value {
        Value::String(s) => match (operand.time, parse_timestamp(s)) {
            (Some(time), Some(ms)) => Some(ms.cmp(&time)),
            _ => Some(s.as_str().cmp(operand.text.as_str())),
        },
        Value::Number(n) => n.as_f64()?.partial_cmp(&operand.number?),
        Value::Bool(b) => match operand.text.to_ascii_lowercase().as_str() {
            "true" => Some(b.cmp(&true)),
            "false" => Some(b.cmp(&false)),
            _ => None,
        },
        _ => None,
    }
}

/// SQL `LIKE`: `%` any run, `_` any one character.
fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let (mut t, mut p) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '%' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((bp, bt)) = backtrack {
            p = bp + 1;
            t = bt + 1;
            backtrack = Some((bp, bt + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '%')
}

struct FilterParser<'a> {
    text: &'a str,
    pos: usize,
}

impl FilterParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("invalid filter {:?}: {what} at position {}", self.text, self.pos))
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(&format!("expected '{}'", char::from(byte)))
        }
    }

    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// Comma-separated expressions up to `close` (consumed) or the end.
    fn list(&mut self, close: Option<u8>) -> Result<Vec<Filter>, String> {
        let mut items = vec![self.expression()?];
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    items.push(self.expression()?);
                }
                next if next == close => {
                    if close.is_some() {
                        self.pos += 1;
                    }
                    return Ok(items);
                }
                _ => return self.fail("expected ',' or the end of the list"),
            }
        }
    }

    fn expression(&mut self) -> Result<Filter, String> {
        let name = self.word().to_owned();
        if name.is_empty() {
            return self.fail("expected a field name or and/or/not");
        }
        self.skip_ws();
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let mut items = self.list(Some(b')'))?;
                match name.as_str() {
                    "and" => Ok(Filter::And(items)),
                    "or" => Ok(Filter::Or(items)),
                    "not" if items.len() == 1 => Ok(Filter::Not(Box::new(items.remove(0)))),
                    "not" => self.fail("not() takes one condition"),
                    _ => self.fail(&format!("unknown combinator {name:?}")),
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let op_name = self.word().to_owned();
                let op = match op_name.as_str() {
                    "eq" => Op::Eq,
                    "neq" => Op::Neq,
                    "gt" => Op::Gt,
                    "gte" => Op::Gte,
                    "lt" => Op::Lt,
                    "lte" => Op::Lte,
                    "is" => Op::Is,
                    "in" => Op::In,
                    "like" => Op::Like,
                    "ilike" => Op::Ilike,
                    "startsWith" => Op::StartsWith,
                    _ => return self.fail(&format!("unknown operator {op_name:?}")),
                };
                self.expect(b']')?;
                self.expect(b':')?;
                self.skip_ws();
                let path: Vec<String> = name.split('.').map(str::to_owned).collect();
                if path.iter().any(String::is_empty) {
                    return self.fail(&format!("invalid field {name:?}"));
                }
                match op {
                    Op::In => {
                        self.expect(b'[')?;
                        let mut operands = Vec::new();
                        self.skip_ws();
                        if self.peek() == Some(b']') {
                            self.pos += 1;
                        } else {
                            loop {
                                operands.push(Operand::new(self.scalar(b",]")?));
                                self.skip_ws();
                                match self.peek() {
                                    Some(b',') => self.pos += 1,
                                    Some(b']') => {
                                        self.pos += 1;
                                        break;
                                    }
                                    _ => return self.fail("expected ',' or ']'"),
                                }
                            }
                        }
                        Ok(Filter::Condition { path, op, operands, null: None })
                    }
                    Op::Is => {
                        let null = match self.scalar(b",)")?.as_str() {
                            "NULL" => true,
                            "NOT_NULL" => false,
                            other => return self.fail(&format!("is takes NULL or NOT_NULL, not {other:?}")),
                        };
                        Ok(Filter::Condition { path, op, operands: Vec::new(), null: Some(null) })
                    }
                    _ => {
                        let operand = Operand::new(self.scalar(b",)")?);
                        Ok(Filter::Condition { path, op, operands: vec![operand], null: None })
                    }
                }
            }
            _ => self.fail("expected '(' or '['"),
        }
    }

    /// A double-quoted string (`\"` and `\\` escapes) or bare text up to one of `ends`.
    fn scalar(&mut self, ends: &[u8]) -> Result<String, String> {
        self.skip_ws();
        if self.peek() == Some(b'"') {
            self.pos += 1;
            let mut out = String::new();
            let mut chars = self.text[self.pos..].char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        self.pos += i + 1;
                        return Ok(out);
                    }
                    '\\' => match chars.next() {
                        Some((_, escaped)) => out.push(escaped),
                        None => break,
                    },
                    c => out.push(c),
                }
            }
            return self.fail("unterminated string");
        }
        let start = self.pos;
        while self.peek().is_some_and(|b| !ends.contains(&b)) {
            self.pos += 1;
        }
        let value = self.text[start..self.pos].trim();
        if value.is_empty() {
            return self.fail("expected a value");
        }
        Ok(value.to_owned())
    }
}

// ======================================================================================= helpers

fn parse_timestamp(text: &str) -> Option<i64> {
    // Cheap pre-check: RFC 3339 timestamps start with `dddd-dd-ddT`.
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || !(bytes[10] == b'T' || bytes[10] == b't' || bytes[10] == b' ')
    {
        return None;
    }
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

fn format_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .expect("a representable timestamp")
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A uuid-v4-shaped id derived from `seed`: deterministic, in no particular order.
fn uuid_from(seed: &[u8]) -> String {
    let digest = Sha256::digest(seed);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let h = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
