//! The fake's data: the objects, a table of rows per object, every committed version of each row
//! (for a read replica that lags), the clock that stamps `updatedAt`, and the server's settings.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::limits::{Bucket, Usage};
use super::metadata::ObjectMeta;
use super::values::{format_ms, parse_timestamp, uuid_from};
use super::{Fault, LoggedRequest, MetadataShape};

/// The state the handlers share with the [`FakeTwenty`](super::FakeTwenty) that controls them.
pub(super) type Shared = Mutex<State>;

/// The state, even after a panic while it was locked (a test misusing the fake) poisoned the mutex.
pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) struct State {
    pub(super) objects: Vec<ObjectMeta>,
    pub(super) tables: HashMap<String, Table>,
    pub(super) last_ms: i64,
    id_counter: u64,
    pub(super) replica_lag: Duration,
    pub(super) metadata_shape: MetadataShape,
    pub(super) metadata_page_size: Option<usize>,
    pub(super) webhooks: Vec<Value>,
    pub(super) webhook_list_paged: bool,
    pub(super) webhook_list_page_size: Option<usize>,
    pub(super) webhook_faults: VecDeque<(Fault, usize)>,
    pub(super) legacy_webhooks_path: bool,
    pub(super) buckets: Vec<Bucket>,
    pub(super) usage: Usage,
    pub(super) limit_reached_as_400: bool,
    pub(super) faults: VecDeque<(Fault, usize)>,
    pub(super) fail_always: Option<Fault>,
    pub(super) requests: Vec<LoggedRequest>,
    pub(super) listing: super::records::ListingQuirks,
}

impl State {
    pub(super) fn new() -> State {
        let mut state = State {
            objects: Vec::new(),
            tables: HashMap::new(),
            last_ms: 0,
            id_counter: 0,
            replica_lag: Duration::ZERO,
            metadata_shape: MetadataShape::Nested,
            metadata_page_size: None,
            webhooks: Vec::new(),
            webhook_list_paged: false,
            webhook_list_page_size: None,
            webhook_faults: VecDeque::new(),
            legacy_webhooks_path: false,
            buckets: Vec::new(),
            usage: Usage::default(),
            limit_reached_as_400: false,
            faults: VecDeque::new(),
            fail_always: None,
            requests: Vec::new(),
            listing: Default::default(),
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

    pub(super) fn add_object(&mut self, meta: ObjectMeta) {
        assert!(
            !self.objects.iter().any(|o| o.singular == meta.singular || o.plural == meta.plural),
            "fake Twenty: object {} already exists",
            meta.singular
        );
        self.tables.insert(meta.singular.clone(), Table::new(&meta.singular));
        self.objects.push(meta);
    }

    pub(super) fn object_mut(&mut self, singular: &str) -> &mut ObjectMeta {
        match self.objects.iter_mut().find(|o| o.singular == singular) {
            Some(meta) => meta,
            None => panic!("fake Twenty: unknown object {singular}"),
        }
    }

    pub(super) fn rename_object(&mut self, singular: &str, new_singular: &str, new_plural: &str) {
        assert!(
            !self.objects.iter().any(|o| o.singular == new_singular || o.plural == new_plural),
            "fake Twenty: object {new_singular} already exists"
        );
        let meta = self.object_mut(singular);
        meta.singular = new_singular.to_owned();
        meta.plural = new_plural.to_owned();
        let mut table = self.tables.remove(singular).expect("a table per object");
        table.meta_singular = new_singular.to_owned();
        self.tables.insert(new_singular.to_owned(), table);
    }

    /// The clock: now in ms, strictly after the previous tick.
    pub(super) fn tick(&mut self) -> i64 {
        let ms = Utc::now().timestamp_millis().max(self.last_ms + 1);
        self.last_ms = ms;
        ms
    }

    pub(super) fn next_id(&mut self) -> String {
        self.id_counter += 1;
        uuid_from(format!("record:{}", self.id_counter).as_bytes())
    }

    pub(super) fn resolve(&self, object: &str) -> String {
        match self.objects.iter().find(|o| o.singular == object || o.plural == object) {
            Some(meta) => meta.singular.clone(),
            None => panic!("fake Twenty: unknown object {object}"),
        }
    }

    pub(super) fn table(&self, object: &str) -> &Table {
        &self.tables[&self.resolve(object)]
    }

    pub(super) fn table_mut(&mut self, object: &str) -> &mut Table {
        let singular = self.resolve(object);
        self.tables.get_mut(&singular).expect("a table per object")
    }

    pub(super) fn create_at(&mut self, object: &str, ms: i64, fields: Value) -> Value {
        let id = self.next_id();
        let at = format_ms(ms);
        let mut record = json!({"id": id, "createdAt": at, "updatedAt": at, "deletedAt": null});
        merge(record.as_object_mut().expect("an object"), fields);
        self.table_mut(object).put(Row::new(record.clone()), Instant::now());
        record
    }

    pub(super) fn modify(
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

    pub(super) fn object_by_plural(&self, plural: &str) -> Option<&ObjectMeta> {
        self.objects.iter().find(|o| o.plural == plural && o.is_active)
    }
}

pub(super) fn merge(record: &mut Map<String, Value>, fields: Value) {
    match fields {
        Value::Object(fields) => record.extend(fields),
        Value::Null => {}
        other => panic!("fake Twenty: fields must be a JSON object, not {other}"),
    }
}

/// One version of a record, with its timestamps parsed once.
pub(super) struct Row {
    pub(super) id: Arc<str>,
    pub(super) value: Value,
    pub(super) updated_ms: i64,
    created_ms: Option<i64>,
    deleted_ms: Option<i64>,
}

impl Row {
    pub(super) fn new(value: Value) -> Row {
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

    pub(super) fn is_soft_deleted(&self) -> bool {
        !matches!(self.value.get("deletedAt"), None | Some(Value::Null))
    }

    /// The parsed value of a timestamp column, when `path` is one.
    pub(super) fn cached_timestamp(&self, path: &[String]) -> Option<Option<i64>> {
        match path {
            [field] if field == "updatedAt" => Some(Some(self.updated_ms)),
            [field] if field == "createdAt" && self.created_ms.is_some() => Some(self.created_ms),
            [field] if field == "deletedAt" && (self.deleted_ms.is_some() || !self.is_soft_deleted()) => {
                Some(self.deleted_ms)
            }
            _ => None,
        }
    }

    pub(super) fn field(&self, path: &[String]) -> Option<&Value> {
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

pub(super) struct Table {
    pub(super) meta_singular: String,
    /// The committed records, soft-deleted included.
    pub(super) by_id: BTreeMap<Arc<str>, Arc<Row>>,
    /// The same, in `updatedAt, id` order.
    pub(super) by_updated: BTreeMap<(i64, Arc<str>), Arc<Row>>,
    /// Every version committed, for the replica lag (`None`: destroyed).
    history: HashMap<Arc<str>, Vec<Version>>,
    /// Bumped on every change; keys the count cache.
    pub(super) generation: u64,
    pub(super) counts: HashMap<String, (u64, usize)>,
}

impl Table {
    pub(super) fn new(singular: &str) -> Table {
        Table {
            meta_singular: singular.to_owned(),
            by_id: BTreeMap::new(),
            by_updated: BTreeMap::new(),
            history: HashMap::new(),
            generation: 0,
            counts: HashMap::new(),
        }
    }

    pub(super) fn put(&mut self, row: Row, committed: Instant) {
        let row = Arc::new(row);
        if let Some(old) = self.by_id.insert(row.id.clone(), row.clone()) {
            self.by_updated.remove(&(old.updated_ms, old.id.clone()));
        }
        self.by_updated.insert((row.updated_ms, row.id.clone()), row.clone());
        self.history.entry(row.id.clone()).or_default().push(Version { committed, row: Some(row) });
        self.generation += 1;
    }

    pub(super) fn remove(&mut self, id: &str, committed: Instant) -> Option<Arc<Row>> {
        let old = self.by_id.remove(id)?;
        self.by_updated.remove(&(old.updated_ms, old.id.clone()));
        self.history.entry(old.id.clone()).or_default().push(Version { committed, row: None });
        self.generation += 1;
        Some(old)
    }

    /// The rows a replica `lag` behind sees (soft-deleted included), unsorted.
    pub(super) fn lagging_rows(&self, lag: Duration) -> Vec<Arc<Row>> {
        let Some(cutoff) = Instant::now().checked_sub(lag) else { return Vec::new() };
        self.history
            .values()
            .filter_map(|versions| versions.iter().rev().find(|v| v.committed <= cutoff))
            .filter_map(|version| version.row.clone())
            .collect()
    }

    pub(super) fn lagging_row(&self, id: &str, lag: Duration) -> Option<Arc<Row>> {
        if lag.is_zero() {
            return self.by_id.get(id).cloned();
        }
        let cutoff = Instant::now().checked_sub(lag)?;
        self.history.get(id)?.iter().rev().find(|v| v.committed <= cutoff)?.row.clone()
    }
}
