//! The rows per object and the last delivery that the store keeps as rows are written (migration
//! 0007) always equal what counting the tables says.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use twenty_mirror::change::{Change, Source};
use twenty_mirror::mirror::{Mode, ObjectCounts, Pool, RunStatus, Store, Trigger};
use twenty_mirror::sync::reconciler::RunRequest;
use twenty_mirror::sync::replay::replay;

use crate::helpers::fake_twenty::FakeTwenty;
use crate::helpers::{TestApp, at, delivery, fresh_store, reconciler};

/// The counts a `GROUP BY` over the tables gives, in the shape the store keeps them.
async fn counted(store: &Store) -> Vec<ObjectCounts> {
    type Row = (String, i64, i64, i64);
    let stages = "SELECT object, \
                         sum(CASE WHEN deleted_at IS NULL AND destroyed_at IS NULL THEN 1 ELSE 0 END), \
                         sum(CASE WHEN deleted_at IS NOT NULL AND destroyed_at IS NULL THEN 1 ELSE 0 END), \
                         sum(CASE WHEN destroyed_at IS NOT NULL THEN 1 ELSE 0 END) \
                  FROM twenty_records GROUP BY object ORDER BY object";
    let last = "SELECT object, max(received_at) FROM webhook_events WHERE object IS NOT NULL GROUP BY object";
    let (rows, deliveries): (Vec<Row>, Vec<(String, DateTime<Utc>)>) = match store.pool() {
        Pool::Sqlite(pool) => {
            let rows = sqlx::query_as(stages).fetch_all(pool).await.expect("counting");
            let last: Vec<(String, String)> = sqlx::query_as(last).fetch_all(pool).await.expect("the last");
            let last = last.into_iter().map(|(o, at)| (o, at.parse().expect("a timestamp"))).collect();
            (rows, last)
        }
        Pool::Postgres(pool) => {
            let stages = stages.replace("sum(", "sum((").replace(" END)", " END))::bigint");
            let rows = sqlx::query_as(&stages).fetch_all(pool).await.expect("counting");
            (rows, sqlx::query_as(last).fetch_all(pool).await.expect("the last"))
        }
    };
    let mut counts: Vec<ObjectCounts> = rows
        .into_iter()
        .map(|(object, live, soft_deleted, destroyed)| ObjectCounts {
            object,
            live,
            soft_deleted,
            destroyed,
            last_webhook_at: None,
        })
        .collect();
    for (object, at) in deliveries {
        match counts.iter_mut().find(|c| c.object == object) {
            Some(c) => c.last_webhook_at = Some(at),
            None => {
                counts.push(ObjectCounts { object, last_webhook_at: Some(at), ..ObjectCounts::default() })
            }
        }
    }
    counts.sort_by(|a, b| a.object.cmp(&b.object));
    counts
}

async fn assert_kept_counts_are_true(store: &Store, when: &str) {
    let kept = store.object_counts().await.expect("the kept counts");
    assert_eq!(kept, counted(store).await, "{when}");
}

#[tokio::test]
async fn webhooks_and_replays_keep_the_counts_true() {
    let app = TestApp::spawn().await;
    for (event, id, ms) in [
        ("person.created", "a", 0),
        ("person.created", "b", 0),
        ("person.created", "c", 0),
        ("company.created", "x", 0),
        ("person.updated", "a", 10),
        ("person.deleted", "b", 20),
    ] {
        let (status, _) = app.deliver_json(&delivery(event, id, ms, json!({}))).await;
        assert_eq!(status, 200, "{event} {id}");
    }
    assert_kept_counts_are_true(&app.store, "after inserts, an update and a soft delete").await;
    assert_eq!(app.store.object_counts().await.unwrap()[1].soft_deleted, 1, "person b is soft-deleted");

    for (event, id, ms) in [("person.restored", "b", 30), ("person.destroyed", "c", 40)] {
        let (status, _) = app.deliver_json(&delivery(event, id, ms, json!({}))).await;
        assert_eq!(status, 200, "{event} {id}");
    }
    assert_kept_counts_are_true(&app.store, "after a restore and a destroy").await;

    // Deliveries for one record sent at once share group commits: several changes to one row.
    let bodies: Vec<_> = [("person.created", 100), ("person.deleted", 110), ("person.restored", 120)]
        .iter()
        .chain(&[("person.updated", 130), ("person.destroyed", 140)])
        .map(|(event, ms)| delivery(event, "d", *ms, json!({})))
        .collect();
    let answers = futures_util::future::join_all(bodies.iter().map(|b| app.deliver_json(b))).await;
    assert!(answers.iter().all(|(status, _)| *status == 200), "{answers:?}");
    assert_kept_counts_are_true(&app.store, "after concurrent changes to one row").await;

    let report = replay(&app.store, Utc::now() - chrono::Duration::hours(1), None).await.expect("a replay");
    assert!(report.deliveries >= 11, "{report:?}");
    assert_kept_counts_are_true(&app.store, "after a replay").await;
}

#[tokio::test]
async fn a_batch_with_several_changes_to_one_row_is_counted_once() {
    let (_db, store) = fresh_store().await;
    let version = |ms: i64, deleted: bool| {
        let deleted_at = if deleted { json!(at(ms)) } else { json!(null) };
        let record = json!({"id": "r", "updatedAt": at(ms), "deletedAt": deleted_at});
        Change::upsert("person", &record, Source::Webhook).expect("a change")
    };
    let other = Change::upsert("person", &json!({"id": "s", "updatedAt": at(0)}), Source::Webhook).unwrap();
    store.apply(&[version(0, false), version(10, true), other, version(20, false)]).await.expect("a batch");
    assert_kept_counts_are_true(&store, "after one batch").await;
    assert_eq!(store.object_counts().await.unwrap()[0].live, 2);
    store.apply(&[version(30, true), version(40, true)]).await.expect("a second batch");
    assert_kept_counts_are_true(&store, "after a batch that soft-deletes twice").await;
}

#[tokio::test]
async fn destroys_inferred_by_a_sweep_are_counted() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids: Vec<String> = (0..20)
        .map(|n| {
            fake.create("person", json!({"name": {"firstName": format!("P{n}")}}))["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    fake.soft_delete("person", &ids[0]);
    let rec = reconciler(&store, &fake, |_, s| s.overlap = Duration::ZERO);
    let first = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.error);
    assert_kept_counts_are_true(&store, "after the first sweep").await;

    fake.destroy("person", &ids[1]);
    fake.restore("person", &ids[0]);
    let full = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    assert_eq!((full.status, full.counts.destroyed), (RunStatus::Succeeded, 1), "{:?}", full.error);
    let kept = store.object_counts().await.unwrap();
    assert_eq!((kept[0].live, kept[0].soft_deleted, kept[0].destroyed), (19, 0, 1), "{kept:?}");
    assert_kept_counts_are_true(&store, "after a sweep inferred a destroy").await;
}

/// Migration 0007 starts the kept counts from what the mirror already held: rows in every stage and
/// deliveries stored before it ran.
#[tokio::test]
async fn the_migration_counts_the_rows_and_deliveries_already_there() {
    let db = crate::helpers::TestDb::new().await;
    let store = Store::connect(&db.url).await.expect("a store");
    let migrator = match store.pool() {
        Pool::Sqlite(_) => sqlx::migrate!("migrations/sqlite"),
        Pool::Postgres(_) => sqlx::migrate!("migrations/postgres"),
    };
    let before = sqlx::migrate::Migrator {
        migrations: migrator.migrations.iter().filter(|m| m.version < 7).cloned().collect(),
        ..migrator
    };
    let rows = "INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, destroyed_at, source, synced_at) \
                VALUES ('person', 'a', '{}', '2026-01-01T00:00:00.000Z', NULL, NULL, 'webhook', '2026-01-01T00:00:00.000Z'), \
                       ('person', 'b', '{}', '2026-01-01T00:00:00.000Z', NULL, NULL, 'webhook', '2026-01-01T00:00:00.000Z'), \
                       ('person', 'c', '{}', '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', NULL, 'webhook', '2026-01-02T00:00:00.000Z'), \
                       ('company', 'x', '{}', '2026-01-01T00:00:00.000Z', NULL, '2026-01-03T00:00:00.000Z', 'reconcile', '2026-01-03T00:00:00.000Z')";
    let events = "INSERT INTO webhook_events (received_at, event_name, object, record_id, outcome, body) \
                  VALUES ('2026-01-04T00:00:00.000Z', 'person.created', 'person', 'a', 'applied', '{}'), \
                         ('2026-01-05T00:00:00.000Z', 'opportunity.created', 'opportunity', 'o', 'failed', '{}')";
    match store.pool() {
        Pool::Sqlite(pool) => {
            before.run(pool).await.expect("migrating up to 0006");
            sqlx::raw_sql(&format!("{rows}; {events}")).execute(pool).await.expect("rows before 0007");
        }
        Pool::Postgres(pool) => {
            before.run(pool).await.expect("migrating up to 0006");
            sqlx::raw_sql(&format!("{rows}; {events}")).execute(pool).await.expect("rows before 0007");
        }
    }
    store.migrate().await.expect("applying 0007");

    let kept = store.object_counts().await.expect("the kept counts");
    assert_eq!(kept, counted(&store).await, "what 0007 found");
    let person = kept.iter().find(|c| c.object == "person").expect("person");
    assert_eq!((person.live, person.soft_deleted, person.destroyed), (2, 1, 0));
    assert!(kept.iter().any(|c| c.object == "opportunity" && c.live == 0 && c.last_webhook_at.is_some()));
}
