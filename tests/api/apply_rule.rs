//! The apply rule seen from outside: whatever order, duplication or concurrency the deliveries come
//! in, the mirror ends at the newest state of each record.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use twenty_mirror::change::parse_timestamp;
use twenty_mirror::http::webhooks::parse_delivery;
use twenty_mirror::mirror::{Delivery, Pool, Store};

use crate::helpers::{TestApp, TestDb, at, delivery};

#[tokio::test]
async fn a_duplicate_delivery_is_a_no_op() {
    let app = TestApp::spawn().await;
    let body = delivery("person.created", "p1", 0, json!({"jobTitle": "CTO"}));
    assert_eq!(app.deliver_json(&body).await, (200, Some("applied".to_owned())));
    let first = app.record("person", "p1").await.expect("row");
    assert_eq!(app.deliver_json(&body).await, (200, Some("duplicate".to_owned())));
    let second = app.record("person", "p1").await.expect("row");
    assert_eq!(first, second, "the row is untouched, synced_at included");
}

#[tokio::test]
async fn an_older_update_after_a_newer_one_is_stale() {
    let app = TestApp::spawn().await;
    let newer = delivery("person.updated", "p1", 2_000, json!({"jobTitle": "CEO"}));
    let older = delivery("person.updated", "p1", 1_000, json!({"jobTitle": "CTO"}));
    assert_eq!(app.deliver_json(&newer).await, (200, Some("applied".to_owned())));
    assert_eq!(app.deliver_json(&older).await, (200, Some("stale".to_owned())));
    let row = app.record("person", "p1").await.expect("row");
    assert_eq!(row.data["jobTitle"], "CEO");
    assert_eq!(row.updated_at, parse_timestamp(&at(2_000)).unwrap());
}

#[tokio::test]
async fn a_soft_delete_keeps_the_data_and_a_late_update_cannot_undo_it() {
    let app = TestApp::spawn().await;
    app.deliver_json(&delivery("person.created", "p1", 0, json!({"jobTitle": "CTO"}))).await;
    let deleted = delivery("person.deleted", "p1", 2_000, json!({"jobTitle": "CTO"}));
    assert_eq!(app.deliver_json(&deleted).await, (200, Some("applied".to_owned())));
    let late = delivery("person.updated", "p1", 1_000, json!({"jobTitle": "VP"}));
    assert_eq!(app.deliver_json(&late).await, (200, Some("stale".to_owned())));
    let row = app.record("person", "p1").await.expect("row");
    assert_eq!(row.deleted_at, parse_timestamp(&at(2_000)));
    assert_eq!(row.data["jobTitle"], "CTO", "the data is kept");
    assert_eq!(row.destroyed_at, None);
}

#[tokio::test]
async fn a_bare_soft_delete_changes_the_row_s_stage_and_keeps_its_data() {
    let app = TestApp::spawn().await;
    app.deliver_json(&delivery("person.created", "p1", 0, json!({"jobTitle": "CTO"}))).await;
    // Some 2025 releases sent only `{id, deletedAt}`: no version, no data.
    let mut bare = delivery("person.deleted", "p1", 2_000, json!({}));
    bare["record"] = json!({"id": "p1", "deletedAt": at(2_000)});
    assert_eq!(app.deliver_json(&bare).await, (200, Some("applied".to_owned())));
    let row = app.record("person", "p1").await.expect("row");
    assert_eq!(row.deleted_at, parse_timestamp(&at(2_000)));
    assert_eq!(row.updated_at, parse_timestamp(&at(2_000)).unwrap(), "versioned by its deletedAt");
    assert_eq!(row.data["jobTitle"], "CTO", "the stored data is kept");
    assert_eq!(row.data["deletedAt"], Value::Null, "the data is the last full record's");
    assert_eq!(app.deliver_json(&bare).await, (200, Some("duplicate".to_owned())));
}

#[tokio::test]
async fn a_restore_clears_the_soft_delete() {
    let app = TestApp::spawn().await;
    app.deliver_json(&delivery("person.created", "p1", 0, json!({}))).await;
    app.deliver_json(&delivery("person.deleted", "p1", 1_000, json!({}))).await;
    let restored = delivery("person.restored", "p1", 2_000, json!({"city": "Paris"}));
    assert_eq!(app.deliver_json(&restored).await, (200, Some("applied".to_owned())));
    let row = app.record("person", "p1").await.expect("row");
    assert_eq!(row.deleted_at, None);
    assert_eq!(row.data["city"], "Paris");
}

#[tokio::test]
async fn a_destroy_leaves_a_tombstone_that_no_late_update_brings_back() {
    let app = TestApp::spawn().await;
    app.deliver_json(&delivery("person.created", "p1", 0, json!({"jobTitle": "CTO"}))).await;
    let destroyed = delivery("person.destroyed", "p1", 1_000, json!({"jobTitle": "CTO"}));
    assert_eq!(app.deliver_json(&destroyed).await, (200, Some("applied".to_owned())));
    for late in [
        delivery("person.updated", "p1", 500, json!({"jobTitle": "VP"})),
        delivery("person.updated", "p1", 1_000, json!({"jobTitle": "VP"})),
        delivery("person.restored", "p1", 1_000, json!({})),
    ] {
        assert_eq!(app.deliver_json(&late).await, (200, Some("stale".to_owned())));
    }
    let row = app.record("person", "p1").await.expect("tombstone");
    assert_eq!(row.destroyed_at, parse_timestamp(&at(1_010)), "dated by the event");
    assert_eq!(row.data["jobTitle"], "CTO");

    // A destroy for a record the mirror never saw still leaves a tombstone.
    let unseen = delivery("person.destroyed", "p2", 3_000, json!({}));
    assert_eq!(app.deliver_json(&unseen).await, (200, Some("applied".to_owned())));
    let late = delivery("person.updated", "p2", 2_000, json!({}));
    assert_eq!(app.deliver_json(&late).await, (200, Some("stale".to_owned())));
    assert!(app.record("person", "p2").await.expect("tombstone").destroyed_at.is_some());
}

#[tokio::test]
async fn fifty_concurrent_versions_of_one_record_leave_the_newest() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let mut deliveries = JoinSet::new();
    for version in 0..50_i64 {
        let app = app.clone();
        // Versions far apart in time but sent in a scrambled order.
        let ms = (version * 37 % 50) * 1_000;
        deliveries.spawn(async move {
            let body = delivery("person.updated", "p1", ms, json!({"version": ms}));
            app.deliver_json(&body).await
        });
    }
    let mut outcomes = BTreeMap::new();
    while let Some(result) = deliveries.join_next().await {
        let (status, outcome) = result.expect("a delivery task");
        assert_eq!(status, 200);
        *outcomes.entry(outcome.unwrap_or_default()).or_insert(0) += 1;
    }
    let row = app.record("person", "p1").await.expect("row");
    assert_eq!(row.data["version"], 49_000);
    assert_eq!(row.updated_at, parse_timestamp(&at(49_000)).unwrap());
    assert_eq!(outcomes.values().sum::<i32>(), 50);
    assert!(outcomes.get("applied").copied().unwrap_or(0) >= 1, "{outcomes:?}");
    assert_eq!(app.events().await.len(), 50, "each delivery logged with its outcome");
}

// ---- The property: any order, with duplicates, converges to the in-order mirror. ----

/// One event in a record's life, as Twenty would send it.
#[derive(Debug, Clone)]
struct Event {
    name: &'static str,
    id: String,
    version_ms: i64,
    body: Value,
}

/// A valid life of a record: created, then updates, soft deletes and restores, maybe destroyed.
fn history(id: String) -> impl Strategy<Value = Vec<Event>> {
    (prop::collection::vec((0..3_u8, 1..5_000_i64), 0..7), any::<bool>(), any::<bool>()).prop_map(
        move |(steps, destroy, old_delete_format)| {
            let mut events = Vec::new();
            let mut version = 0_i64;
            let mut deleted = false;
            let mut push = |name: &'static str, version: i64, title: String| {
                let mut body = delivery(name, &id, version, json!({ "jobTitle": title }));
                if name.ends_with(".deleted") && old_delete_format {
                    body["record"]["deletedAt"] = Value::Null;
                }
                events.push(Event { name, id: id.clone(), version_ms: version, body });
            };
            push("person.created", version, "v0".into());
            for (step, gap) in steps {
                version += gap;
                let title = format!("v{version}");
                match (step, deleted) {
                    (1, false) => {
                        deleted = true;
                        // The 2025 format carries the row before the delete, at its old version.
                        let at_version = if old_delete_format { version - gap } else { version };
                        push("person.deleted", at_version, title);
                    }
                    (_, true) => {
                        deleted = false;
                        push("person.restored", version, title);
                    }
                    (_, false) => push("person.updated", version, title),
                }
            }
            if destroy {
                let mut last = events.last().expect("a created event").clone();
                last.name = "person.destroyed";
                last.body["eventName"] = json!("person.destroyed");
                last.body["eventDate"] = json!(at(version + 60_000));
                events.push(last);
            }
            events
        },
    )
}

/// Several histories, their deliveries shuffled and some duplicated, cut into random batches.
fn scenario() -> impl Strategy<Value = (Vec<Event>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(0..3_usize, 1..4)
        .prop_flat_map(|ids| {
            let histories: Vec<_> = ids.iter().enumerate().map(|(n, _)| history(format!("r{n}"))).collect();
            histories
        })
        .prop_map(|histories| histories.into_iter().flatten().collect::<Vec<Event>>())
        .prop_flat_map(|events| {
            let n = events.len();
            let order = prop::collection::vec(0..n, n..n * 2).prop_flat_map(move |extra| {
                let mut all: Vec<usize> = (0..n).collect();
                all.extend(extra.into_iter().take(n / 2));
                Just(all).prop_shuffle()
            });
            let cuts = prop::collection::vec(1..6_usize, 1..20);
            (Just(events), order, cuts)
        })
}

fn parse(event: &Event) -> Delivery {
    parse_delivery(event.body.to_string().as_bytes(), chrono::Utc::now())
}

/// The mirror's rows for `ids` under `object`, without the columns that record when we wrote.
async fn snapshot(
    store: &Store,
    object: &str,
    ids: &[String],
) -> BTreeMap<String, Option<(Value, String, String, String)>> {
    let mut rows = BTreeMap::new();
    for id in ids {
        let row = store.fetch_record(object, id).await.expect("reading a row").map(|r| {
            (
                r.data,
                r.updated_at.to_rfc3339(),
                format!("{:?}", r.deleted_at),
                format!("{:?}", r.destroyed_at),
            )
        });
        rows.insert(id.clone(), row);
    }
    rows
}

fn retarget(mut delivery: Delivery, object: &str) -> Delivery {
    if let twenty_mirror::mirror::Disposition::Apply(change) = &mut delivery.disposition {
        change.object = object.to_owned();
    }
    delivery
}

#[test]
fn any_order_with_duplicates_converges_to_the_in_order_mirror() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (db, store) = runtime.block_on(async {
        let db = TestDb::new().await;
        let store = Store::connect(&db.url).await.expect("store");
        store.migrate().await.expect("migrate");
        (db, store)
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |((events, order, cuts) in scenario())| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (in_order, shuffled) = (format!("ordered{n}"), format!("shuffled{n}"));
        let ids: Vec<String> = {
            let mut ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
            ids.dedup();
            ids
        };
        let (expected, got) = runtime.block_on(async {
            for event in &events {
                store.record_deliveries(&[retarget(parse(event), &in_order)]).await.expect("in order");
            }
            let mut pending: Vec<Delivery> = order.iter().map(|&i| retarget(parse(&events[i]), &shuffled)).collect();
            for size in cuts.iter().cycle() {
                if pending.is_empty() {
                    break;
                }
                let rest = pending.split_off((*size).min(pending.len()));
                store.record_deliveries(&pending).await.expect("a shuffled batch");
                pending = rest;
            }
            (snapshot(&store, &in_order, &ids).await, snapshot(&store, &shuffled, &ids).await)
        });
        prop_assert_eq!(&expected, &got);
        // And in order, each record ends as its last event left it.
        for id in &ids {
            let last = events.iter().rfind(|e| &e.id == id).expect("an event");
            let (_, updated_at, deleted_at, destroyed_at) = expected[id].clone().expect("a row");
            prop_assert_eq!(updated_at, parse_timestamp(&at(last.version_ms)).unwrap().to_rfc3339());
            prop_assert_eq!(destroyed_at != "None", last.name == "person.destroyed");
            if last.name != "person.destroyed" {
                prop_assert_eq!(deleted_at != "None", last.name == "person.deleted", "{:?}", last);
            }
        }
    });
    drop(db);
}

/// A batch that shares one commit logs each delivery as its own row, in the batch's order, with
/// its own outcome and its body byte for byte (escapes, non-ASCII and line separators included).
#[tokio::test]
async fn a_batch_logs_every_delivery_in_order_with_its_own_outcome() {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.expect("store");
    store.migrate().await.expect("migrate");
    let created = delivery("person.created", "p1", 0, json!({"name": "Zoë \"Z\" \\ O'Brien\u{2028}台北"}));
    let newer = delivery("person.updated", "p3", 1_000, json!({"jobTitle": "CTO"})).to_string();
    store.record_deliveries(&[parse_delivery(newer.as_bytes(), chrono::Utc::now())]).await.expect("p3");
    let bodies = [
        created.to_string(),
        created.to_string(),
        delivery("person.updated", "p2", 1_000, json!({"jobTitle": "CTO"})).to_string(),
        json!({"eventName": "metadata.updated", "record": {}}).to_string(),
        "not json at all".to_owned(),
        delivery("person.updated", "p3", 500, json!({"jobTitle": "intern"})).to_string(),
    ];
    let batch: Vec<Delivery> =
        bodies.iter().map(|body| parse_delivery(body.as_bytes(), chrono::Utc::now())).collect();

    let outcomes = store.record_deliveries(&batch).await.expect("one commit");

    let outcomes: Vec<&str> = outcomes.iter().map(|o| o.as_str()).collect();
    assert_eq!(outcomes, ["applied", "duplicate", "applied", "ignored", "failed", "stale"]);
    let mut events = store.recent_events(bodies.len() as i64).await.expect("the log");
    events.reverse();
    let logged: Vec<(&str, &str)> = events.iter().map(|e| (e.outcome.as_str(), e.body.as_str())).collect();
    let expected: Vec<(&str, &str)> =
        outcomes.iter().copied().zip(bodies.iter().map(String::as_str)).collect();
    assert_eq!(logged, expected);
    assert_eq!(events[2].record_id.as_deref(), Some("p2"));
    assert_eq!(events[2].record_updated_at, Some(parse_timestamp(&at(1_000)).unwrap()));
    assert!(events[4].error.as_deref().is_some_and(|e| !e.is_empty()), "a failure says why");
    assert!(events.windows(2).all(|pair| pair[0].id < pair[1].id));
}

/// Re-planning the apply statement on every execution cost PostgreSQL about 1 ms a batch; every
/// pooled connection is set to reuse one plan. (SQLite has no plan cache to set.)
#[tokio::test]
async fn postgres_connections_reuse_one_plan_per_statement() {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.expect("store");
    let Pool::Postgres(pool) = store.pool() else { return };
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(pool).await.expect("a setting");
    assert_eq!(mode, "force_generic_plan");
}

/// Migration 0004: records and deliveries are compressed with lz4 where the server has it (the
/// Debian builds CI runs on do).
#[tokio::test]
async fn postgres_compresses_records_and_deliveries_with_lz4() {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.expect("store");
    let Pool::Postgres(pool) = store.pool() else { return };
    store.migrate().await.expect("migrations");
    let methods: Vec<(String, String)> = sqlx::query_as(
        "SELECT attrelid::regclass::text, attcompression::text FROM pg_attribute \
         WHERE (attrelid, attname) IN (('twenty_records'::regclass, 'data'), ('webhook_events'::regclass, 'body')) \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("reading column settings");
    assert_eq!(methods, [("twenty_records".into(), "l".into()), ("webhook_events".into(), "l".into())]);
}
