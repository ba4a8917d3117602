//! A fake Twenty server for tests: the REST and metadata API as `../shared/twenty-protocol.md`
//! describes them (sections 3, 4, 5 and 9), with a controllable record store, transactions that
//! commit late, a lagging read replica, rate limits and injected faults.
//!
//! ```ignore
//! let fake = FakeTwenty::start().await;
//! let person = fake.create("person", json!({"jobTitle": "CTO"}));
//! // GET {fake.url()}/rest/people with `Authorization: Bearer {FakeTwenty::API_KEY}`
//! ```
//!
//! The server runs on a thread of its own (an actix system) and stops when the `FakeTwenty` is
//! dropped. Every mutation is a synchronous `&self` method, usable from any test.
//!
//! This file holds the server and its controls; the rest is split by concern: `state` (tables,
//! rows, the replica's lag), `routes` (dispatch, one record), `records` (record lists), `filter`
//! (the `filter` grammar), `order` (`order_by` and cursors), `metadata` (objects and fields),
//! `schema` (the fields' types as filters and orderings see them),
//! `webhooks` (subscriptions), `limits` (rate limits and injected faults).

mod filter;
mod limits;
mod metadata;
mod order;
mod records;
mod routes;
mod schema;
mod state;
mod values;
mod webhooks;

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, web};
use serde_json::{Value, json};

use limits::Bucket;
use metadata::{ObjectMeta, object_id};
use state::{Row, State, merge};
use values::format_ms;

/// The `targetUrl` that [`webhook_body`] puts in its payloads.
pub const WEBHOOK_TARGET_URL: &str = "https://mirror.example.com/webhooks/twenty";
/// The `webhookId` that [`webhook_body`] puts in its payloads.
pub const WEBHOOK_ID: &str = "90056586-1228-4e03-a507-70140aa85c05";

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
    /// HTTP 429 as current releases send it: `Retry-After` of this many seconds, `X-RateLimit-*`
    /// and the structured body with `retryAfterSeconds`.
    RetryAfter(u64),
    /// The correct answer, but only after this delay.
    Delay(Duration),
    /// HTTP 200 with this body instead of the data, as a proxy, a login page or another server at
    /// the configured address might answer.
    Body(String),
    /// This HTTP status in Twenty's JSON error shape, its message quoting the request's
    /// `Authorization` header and body, as a careless server might: what the client reports must
    /// not repeat the API key or a subscription's secret.
    Quoting(u16),
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
                        App::new().app_data(data.clone()).default_service(web::to(routes::dispatch))
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
        state::lock(&self.state)
    }

    // ----- schema -----

    /// Switches the shape of `GET /rest/metadata/objects`.
    pub fn set_metadata_shape(&self, shape: MetadataShape) {
        self.lock().metadata_shape = shape;
    }

    /// `GET /rest/metadata/objects` answers at most `size` objects a page, following
    /// `starting_after` (the `endCursor` of the previous page); `None`: every object in one page.
    pub fn set_metadata_page_size(&self, size: Option<usize>) {
        self.lock().metadata_page_size = size;
    }

    /// Adds an active, non-system object with the standard fields plus `name` (TEXT).
    pub fn add_object(&self, singular: &str, plural: &str, is_custom: bool) {
        self.lock().add_object(ObjectMeta::new(singular, plural, is_custom, true, false));
    }

    /// Adds an active custom object with the standard fields, `name` (TEXT) and `fields`:
    /// definitions as the metadata API gives them, of which `name` and `type` are enough (the rest
    /// is filled in as [`FakeTwenty::add_field`] does).
    pub fn add_object_with_fields(&self, singular: &str, plural: &str, fields: Vec<Value>) {
        let mut meta = ObjectMeta::new(singular, plural, true, true, false);
        meta.fields.extend(fields.into_iter().map(|f| metadata::complete_field(singular, f)));
        self.lock().add_object(meta);
    }

    /// Adds a field to an object, as creating it in Twenty's settings does: `name` and `type` are
    /// enough; an id, a label, `isActive: true`, `isSystem: false`, `isCustom: true` and null
    /// `options` and `relation` are filled in where the definition does not say.
    pub fn add_field(&self, object: &str, field: Value) {
        let mut state = self.lock();
        let singular = state.resolve(object);
        let meta = state.object_mut(&singular);
        meta.fields.push(metadata::complete_field(&singular, field));
    }

    /// Sets a field's `isActive`, as deactivating it in Twenty's settings does.
    pub fn set_field_active(&self, object: &str, field: &str, active: bool) {
        let mut state = self.lock();
        let singular = state.resolve(object);
        let meta = state.object_mut(&singular);
        let Some(definition) = meta.fields.iter_mut().find(|f| f["name"] == field) else {
            panic!("fake Twenty: {singular} has no field {field}")
        };
        definition["isActive"] = Value::Bool(active);
    }

    /// Renames an object (`nameSingular` and `namePlural`); it keeps its id and its records.
    pub fn rename_object(&self, singular: &str, new_singular: &str, new_plural: &str) {
        self.lock().rename_object(singular, new_singular, new_plural);
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
    /// With the paged list shape, at most `size` subscriptions a page, following `starting_after`
    /// (the `endCursor` of the previous page); `None`: the whole list in one page.
    pub fn set_webhook_list_page_size(&self, size: Option<usize>) {
        self.lock().webhook_list_page_size = size;
    }

    /// Answers the next `times` requests to the subscription API (any method) with `fault`, queued
    /// after earlier injections there. Independent of [`FakeTwenty::inject`].
    pub fn inject_webhooks(&self, fault: Fault, times: usize) {
        if times > 0 {
            self.lock().webhook_faults.push_back((fault, times));
        }
    }

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
        self.lock().buckets =
            limits.iter().map(|&(limit, window)| Bucket::full(limit, window, now)).collect();
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

    /// Ends every record listing after `pages` pages with `hasNextPage: false` while `totalCount`
    /// still counts every row, as Twenty did before 2026-08-19 (twentyhq/twenty#24333); `None`
    /// pages to the end again.
    pub fn truncate_listings_after(&self, pages: Option<usize>) {
        self.lock().listing.truncate_after_pages = pages;
    }

    /// Answers the next `times` record listings that carry a cursor with 400 `INVALID_CURSOR`.
    pub fn reject_cursors(&self, times: usize) {
        self.lock().listing.cursor_rejections = times;
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
