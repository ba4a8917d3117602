//! The reconciler against a fake Twenty that behaves as the protocol notes say Twenty does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use twenty_mirror::http::webhooks::parse_delivery;
use twenty_mirror::mirror::{Mode, RunStatus, Trigger};
use twenty_mirror::mirror::{Pool, Store};
use twenty_mirror::sync::reconciler::{ReconcileError, RunOutcome, RunRequest};

use crate::helpers::fake_twenty::{FakeTwenty, Fault, MetadataShape, webhook_body};
use crate::helpers::{assert_mirror_matches, eventually, fresh_store, reconciler, reconciler_with_shutdown};

fn person(n: usize) -> Value {
    json!({
        "name": {"firstName": format!("First{n}"), "lastName": format!("Last{n}")},
        "emails": {"primaryEmail": format!("p{n}@example.com"), "additionalEmails": null},
        "jobTitle": "Engineer",
        "city": "Paris",
    })
}

fn seed(fake: &FakeTwenty, people: usize, companies: usize) -> Vec<String> {
    for n in 0..companies {
        fake.create("company", json!({"name": format!("Company {n}")}));
    }
    (0..people).map(|n| fake.create("person", person(n))["id"].as_str().expect("an id").to_owned()).collect()
}

async fn run(store: &Store, fake: &FakeTwenty, mode: Mode) -> RunOutcome {
    reconciler(store, fake, |_, _| {})
        .reconcile_once(RunRequest::new(Trigger::Operator, mode))
        .await
        .expect("a run")
}

fn list_requests(fake: &FakeTwenty, path: &str) -> usize {
    fake.requests().iter().filter(|r| r.path == path).count()
}

#[tokio::test]
async fn a_first_sync_reads_everything_in_pages_and_mirrors_it() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    seed(&fake, 450, 3);
    let outcome = run(&store, &fake, Mode::Delta).await;
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    assert_eq!(outcome.counts.fetched, 453);
    assert_eq!(outcome.counts.inserted, 453);
    assert_eq!(outcome.counts.repaired, 453);
    assert!(outcome.objects.iter().all(|o| o.mode == Mode::Full), "no watermark yet: a full pass");
    assert_eq!(list_requests(&fake, "/rest/people"), 3, "450 people in pages of 200");
    assert_mirror_matches(&store, &fake, "person").await;
    assert_mirror_matches(&store, &fake, "company").await;

    let objects: Vec<String> =
        store.objects().await.unwrap().into_iter().filter(|o| o.mirrored).map(|o| o.name_singular).collect();
    assert_eq!(objects, ["company", "opportunity", "person"], "system and inactive objects are not mirrored");
    let run = store.run(outcome.run_id.unwrap()).await.unwrap().expect("the run row");
    assert_eq!(
        (run.status, run.trigger, run.counts),
        (RunStatus::Succeeded, Trigger::Operator, outcome.counts)
    );
    assert!(run.ended_at.is_some());
    let states = store.sync_states().await.unwrap();
    assert!(states.iter().all(|s| s.last_full_at.is_some() && s.last_run_id == outcome.run_id));
}

#[tokio::test]
async fn a_delta_pass_reads_what_changed_with_one_request_per_object_and_one_discovery_when_nothing_did() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids = seed(&fake, 50, 2);
    run(&store, &fake, Mode::Full).await;

    fake.reset_requests();
    let quiet = run(&store, &fake, Mode::Delta).await;
    assert_eq!(quiet.status, RunStatus::Succeeded);
    assert_eq!(quiet.counts.repaired, 0);
    // Discovery runs at every run, so that the typed views follow Twenty's schema.
    assert_eq!(fake.request_count(), 4, "one discovery, one request per object: {:?}", fake.requests());

    fake.update("person", &ids[0], json!({"jobTitle": "CTO"}));
    fake.update("person", &ids[1], json!({"city": "Lyon"}));
    fake.create("person", person(999));
    let delta = run(&store, &fake, Mode::Delta).await;
    assert_eq!((delta.counts.updated, delta.counts.inserted, delta.counts.repaired), (2, 1, 3));
    assert!(delta.counts.fetched < 60, "a delta reads the recent changes, not everything");
    assert_mirror_matches(&store, &fake, "person").await;
}

#[tokio::test]
async fn soft_deletes_restores_and_destroys_are_found_without_any_webhook() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids = seed(&fake, 20, 0);
    fake.soft_delete("person", &ids[1]);
    let rec = reconciler(&store, &fake, |_, s| s.overlap = Duration::ZERO);
    rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();

    fake.soft_delete("person", &ids[0]);
    fake.restore("person", &ids[1]);
    fake.destroy("person", &ids[2]);
    let delta = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Delta)).await.unwrap();
    assert_eq!((delta.counts.deleted, delta.counts.updated, delta.counts.destroyed), (1, 1, 0));
    let stored = store.run(delta.run_id.unwrap()).await.unwrap().expect("the run row").counts;
    assert_eq!(stored, delta.counts, "the run's row counts what the pages did");
    let deleted = store.fetch_record("person", &ids[0]).await.unwrap().unwrap();
    assert!(deleted.deleted_at.is_some());
    assert!(store.fetch_record("person", &ids[1]).await.unwrap().unwrap().deleted_at.is_none());

    let full = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    assert_eq!(full.status, RunStatus::Succeeded, "{:?}", full.error);
    assert_eq!((full.counts.destroyed, full.counts.repaired), (1, 1));
    let tombstone = store.fetch_record("person", &ids[2]).await.unwrap().expect("a tombstone");
    assert!(tombstone.destroyed_at.is_some());
    assert_eq!(tombstone.data["jobTitle"], "Engineer", "the last known data stays");
    assert_mirror_matches(&store, &fake, "person").await;
}

#[tokio::test]
async fn a_record_committed_late_with_an_older_updated_at_is_still_found() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids = seed(&fake, 5, 0);
    run(&store, &fake, Mode::Full).await;

    let slow = fake.begin(); // a transaction starts...
    tokio::time::sleep(Duration::from_millis(5)).await;
    fake.update("person", &ids[0], json!({"jobTitle": "committed first"}));
    run(&store, &fake, Mode::Delta).await; // ...the watermark passes its start...
    fake.commit_update(slow, "person", &ids[1], json!({"jobTitle": "committed late"})); // ...and it commits.
    let delta = run(&store, &fake, Mode::Delta).await;
    assert_eq!(delta.counts.updated, 1);
    assert_eq!(
        store.fetch_record("person", &ids[1]).await.unwrap().unwrap().data["jobTitle"],
        "committed late"
    );
    assert_mirror_matches(&store, &fake, "person").await;
}

#[tokio::test]
async fn a_lagging_read_replica_is_covered_by_the_overlap() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    seed(&fake, 5, 0);
    run(&store, &fake, Mode::Full).await;
    fake.set_replica_lag(Duration::from_millis(1_500));
    let hidden = fake.create("person", person(100));
    let newer = fake.create("person", person(101));
    let first = run(&store, &fake, Mode::Delta).await;
    assert_eq!(first.counts.inserted, 0, "the replica does not show them yet");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let second = run(&store, &fake, Mode::Delta).await;
    assert_eq!(second.counts.inserted, 2);
    for record in [hidden, newer] {
        assert!(store.fetch_record("person", record["id"].as_str().unwrap()).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn a_run_stopped_between_pages_resumes_and_loses_nothing() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    seed(&fake, 650, 0);
    let pages = Arc::new(AtomicUsize::new(0));
    let token = tokio_util::sync::CancellationToken::new();
    let stopping = reconciler_with_shutdown(&store, &fake, token.clone(), |_, s| {
        s.allowlist = Some(vec!["person".into()]);
    });
    let counter = pages.clone();
    let stopping = stopping.with_progress(Arc::new(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 1 {
            token.cancel(); // shutdown begins once the second page committed
        }
    }));
    let interrupted = stopping.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Delta)).await.unwrap();
    assert_eq!(interrupted.status, RunStatus::Failed);
    assert!(interrupted.error.as_deref().unwrap_or_default().contains("shutdown"));
    // The pages in flight when shutdown began (one on SQLite, up to two on PostgreSQL) commit whole.
    let committed = interrupted.counts.fetched;
    let in_flight = store.pages_in_flight() as i64;
    assert!((400..=400 + 200 * (in_flight - 1)).contains(&committed), "{committed} records committed");
    assert_eq!(committed % 200, 0, "pages commit whole");
    let watermark = store.sync_states().await.unwrap()[0].watermark;
    assert!(watermark.is_some(), "the checkpoint moved with the committed pages");

    fake.reset_requests();
    let resumed = run(&store, &fake, Mode::Delta).await;
    assert_eq!(resumed.status, RunStatus::Succeeded);
    assert_eq!(resumed.counts.inserted, 650 - committed, "only what was not committed before");
    assert_mirror_matches(&store, &fake, "person").await;
    let runs = store.runs(10).await.unwrap();
    assert_eq!(runs[1].status, RunStatus::Failed);
}

/// Makes every write of the row `id` fail, slowly on PostgreSQL (half a second), so that the pages
/// after it are applied, and committed, while its page is still in flight.
async fn fail_writes_of(store: &Store, id: &str) {
    match store.pool() {
        Pool::Postgres(pool) => {
            sqlx::raw_sql(
                format!(
                    "CREATE FUNCTION fail_one_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                         IF NEW.id = '{id}' THEN PERFORM pg_sleep(0.5); RAISE EXCEPTION 'injected'; END IF;
                         RETURN NEW;
                     END $$;
                     CREATE TRIGGER fail_one_row BEFORE INSERT OR UPDATE ON twenty_records
                         FOR EACH ROW EXECUTE FUNCTION fail_one_row();"
                )
                .as_str(),
            )
            .execute(pool)
            .await
            .expect("installing the trigger");
        }
        Pool::Sqlite(pool) => {
            sqlx::raw_sql(
                format!(
                    "CREATE TRIGGER fail_one_row BEFORE INSERT ON twenty_records WHEN NEW.id = '{id}'
                     BEGIN SELECT RAISE(ABORT, 'injected'); END;"
                )
                .as_str(),
            )
            .execute(pool)
            .await
            .expect("installing the trigger");
        }
    }
}

async fn stop_failing_writes(store: &Store) {
    let statement = "DROP TRIGGER fail_one_row ON twenty_records";
    match store.pool() {
        Pool::Postgres(pool) => sqlx::query(statement).execute(pool).await.map(drop),
        Pool::Sqlite(pool) => sqlx::query("DROP TRIGGER fail_one_row").execute(pool).await.map(drop),
    }
    .expect("dropping the trigger");
}

#[tokio::test]
async fn a_page_that_fails_after_later_pages_committed_leaves_the_watermark_before_it() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    seed(&fake, 1_000, 0);
    // The first record of the first page: pages are read by `updatedAt`, then `id`.
    let key = |r: &Value| (r["updatedAt"].as_str().unwrap().to_owned(), r["id"].as_str().unwrap().to_owned());
    let (oldest_version, oldest) = fake.records("person").iter().map(key).min().unwrap();
    fail_writes_of(&store, &oldest).await;
    let rec = reconciler(&store, &fake, |_, s| {
        s.overlap = Duration::ZERO;
        s.allowlist = Some(vec!["person".into()]);
    });
    let failed = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    let watermark = store.sync_states().await.unwrap().into_iter().find_map(|s| s.watermark);
    let oldest_version = chrono::DateTime::parse_from_rfc3339(&oldest_version).unwrap();
    assert!(
        watermark.is_none_or(|w| w < oldest_version),
        "the watermark ({watermark:?}) passed a page that did not commit ({oldest_version})"
    );

    stop_failing_writes(&store).await;
    let resumed = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Delta)).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_mirror_matches(&store, &fake, "person").await;
}

#[tokio::test]
async fn the_circuit_breaker_refuses_a_mass_destroy_after_an_empty_sweep() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids = seed(&fake, 30, 0);
    let rec = reconciler(&store, &fake, |_, s| s.overlap = Duration::ZERO);
    rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    for id in &ids[..10] {
        fake.destroy("person", id);
    }
    let refused = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    assert_eq!(refused.status, RunStatus::Failed);
    let error = refused.error.clone().unwrap_or_default();
    assert!(error.contains("refused to mark 10 of 30 person rows destroyed"), "{error}");
    assert_eq!(store.count_present("person").await.unwrap(), 30, "nothing destroyed");
    let run = store.run(refused.run_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(run.error.as_deref(), Some(error.as_str()));

    let forced = rec
        .reconcile_once(RunRequest { force: true, ..RunRequest::new(Trigger::Operator, Mode::Full) })
        .await
        .unwrap();
    assert_eq!(forced.status, RunStatus::Succeeded);
    assert_eq!(forced.counts.destroyed, 10);
    assert_mirror_matches(&store, &fake, "person").await;
}

#[tokio::test]
async fn a_sweep_that_fails_midway_destroys_nothing_and_keeps_the_watermark() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids = seed(&fake, 450, 0);
    let rec = reconciler(&store, &fake, |_, s| s.overlap = Duration::ZERO);
    rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    let watermark =
        store.sync_states().await.unwrap().into_iter().find(|s| s.object == "person").unwrap().watermark;
    fake.destroy("person", &ids[0]);

    // Every request of the sweep fails past the retry budget.
    fake.fail_always(Some(Fault::Status(503)));
    let failed = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(failed.error.as_deref().unwrap_or_default().contains("503"), "{:?}", failed.error);
    assert!(store.fetch_record("person", &ids[0]).await.unwrap().unwrap().destroyed_at.is_none());
    let after =
        store.sync_states().await.unwrap().into_iter().find(|s| s.object == "person").unwrap().watermark;
    assert_eq!(after, watermark, "the watermark does not move");

    fake.fail_always(None);
    let caught_up = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    assert_eq!(caught_up.status, RunStatus::Succeeded);
    assert_mirror_matches(&store, &fake, "person").await;
}

#[tokio::test]
async fn a_wrong_api_key_fails_fast_and_says_so() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let rec = reconciler(&store, &fake, |client, _| client.api_key = "wrong".to_owned().into());
    let started = Instant::now();
    let outcome = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Delta)).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failed);
    let error = outcome.error.unwrap_or_default();
    assert!(error.contains("API key") && error.contains("TWENTY_API_KEY"), "{error}");
    assert_eq!(fake.request_count(), 1, "a 401 is not retried");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn server_errors_rate_limits_and_slow_answers_are_retried() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    seed(&fake, 10, 0);
    run(&store, &fake, Mode::Full).await; // discovery done
    fake.update("person", fake.records("person")[0]["id"].as_str().unwrap(), json!({"city": "Nice"}));
    for fault in [
        Fault::Status(500),
        Fault::Status(429),
        Fault::LimitReached400,
        Fault::Delay(Duration::from_millis(300)),
    ] {
        fake.inject(fault.clone(), 2);
        let rec = reconciler(&store, &fake, |client, _| client.timeout = Duration::from_millis(150));
        let outcome = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Delta)).await.unwrap();
        assert_eq!(outcome.status, RunStatus::Succeeded, "{fault:?}: {:?}", outcome.error);
    }
    assert_mirror_matches(&store, &fake, "person").await;
}

#[tokio::test]
async fn the_client_paces_itself_under_the_limit_and_recovers_when_the_server_says_otherwise() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    seed(&fake, 1_000, 0);
    // Discovery and 5 pages, paced at 4 a second under a server that allows bursts of 5: unpaced,
    // the sixth request would be refused; paced (with room for scheduling jitter), none is.
    fake.set_rate_limit(5, Duration::from_secs(1));
    let paced = reconciler(&store, &fake, |client, s| {
        client.rate_limits = twenty_mirror::twenty::pacer::parse_rate_limits("4/s").unwrap();
        s.allowlist = Some(vec!["person".into()]);
    });
    let outcome = paced.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    assert!(fake.requests().iter().all(|r| r.status != 429), "{:?}", fake.requests());

    // Unpaced against a stricter server: 429s with no Retry-After, waited out.
    fake.set_rate_limit(2, Duration::from_secs(1));
    fake.reset_requests();
    let eager = reconciler(&store, &fake, |client, s| {
        client.retry.max_attempts = 8;
        s.allowlist = Some(vec!["person".into()]);
    });
    let outcome = eager.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    assert!(fake.requests().iter().any(|r| r.status == 429), "the server's limit was hit and handled");
}

#[tokio::test]
async fn both_metadata_shapes_are_understood() {
    for shape in [MetadataShape::Nested, MetadataShape::Flat] {
        let fake = FakeTwenty::start().await;
        fake.set_metadata_shape(shape);
        fake.add_object("websiteProperty", "websiteProperties", true);
        fake.create("websiteProperty", json!({"name": "landing"}));
        let (_db, store) = fresh_store().await;
        let outcome = run(&store, &fake, Mode::Full).await;
        assert_eq!(outcome.status, RunStatus::Succeeded, "{shape:?}");
        assert_mirror_matches(&store, &fake, "websiteProperty").await;
    }
}

#[tokio::test]
async fn the_allowlist_and_requested_objects_narrow_a_run() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    seed(&fake, 3, 3);
    let rec = reconciler(&store, &fake, |_, s| s.allowlist = Some(vec!["company".into()]));
    let outcome = rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    assert_eq!(outcome.objects.iter().map(|o| o.object.as_str()).collect::<Vec<_>>(), ["company"]);
    assert_eq!(store.count_present("person").await.unwrap(), 0);

    let everything = reconciler(&store, &fake, |_, _| {});
    everything.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    let only_people =
        RunRequest { objects: vec!["person".into()], ..RunRequest::new(Trigger::Operator, Mode::Delta) };
    let outcome = everything.reconcile_once(only_people).await.unwrap();
    assert_eq!(outcome.objects.len(), 1);
    let unknown =
        RunRequest { objects: vec!["spaceship".into()], ..RunRequest::new(Trigger::Operator, Mode::Delta) };
    let outcome = everything.reconcile_once(unknown).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Failed);
    assert!(outcome.error.unwrap_or_default().contains("spaceship"));
}

#[tokio::test]
async fn a_dry_run_reports_without_writing() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    seed(&fake, 10, 0);
    let rec = reconciler(&store, &fake, |_, s| s.overlap = Duration::ZERO);
    let dry = rec
        .reconcile_once(RunRequest { dry_run: true, ..RunRequest::new(Trigger::Operator, Mode::Full) })
        .await
        .unwrap();
    assert_eq!(dry.status, RunStatus::Succeeded);
    assert_eq!(dry.run_id, None);
    assert_eq!(dry.counts.inserted, 10, "what would change");
    assert_eq!(store.count_present("person").await.unwrap(), 0, "nothing written");
    assert!(store.runs(10).await.unwrap().is_empty());
    assert!(store.sync_states().await.unwrap().is_empty());

    rec.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.unwrap();
    let id = fake.records("person")[0]["id"].as_str().unwrap().to_owned();
    fake.destroy("person", &id);
    let dry = rec
        .reconcile_once(RunRequest {
            dry_run: true,
            force: true,
            ..RunRequest::new(Trigger::Operator, Mode::Full)
        })
        .await
        .unwrap();
    assert_eq!(dry.objects.iter().map(|o| o.missing).sum::<u64>(), 1);
    assert!(store.fetch_record("person", &id).await.unwrap().unwrap().destroyed_at.is_none());
}

#[tokio::test]
async fn one_reconciler_at_a_time_and_an_overlapping_request_gets_the_running_run() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    seed(&fake, 400, 0);
    fake.inject(Fault::Delay(Duration::from_millis(1500)), 1);
    let first = reconciler(&store, &fake, |_, _| {});
    let second = reconciler(&store, &fake, |_, _| {});
    let running =
        tokio::spawn(
            async move { first.reconcile_once(RunRequest::new(Trigger::Schedule, Mode::Full)).await },
        );
    let started =
        eventually(Duration::from_secs(10), || async { store.running_run().await.unwrap().is_some() }).await;
    assert!(started, "the first run started");
    match second.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Delta)).await {
        Err(ReconcileError::AlreadyRunning(Some(id))) => {
            let outcome = running.await.unwrap().unwrap();
            assert_eq!(outcome.run_id, Some(id), "the overlapping request is answered with the running run");
        }
        other => panic!("expected the running run, got {other:?}"),
    }
    let after = second.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Delta)).await.unwrap();
    assert_eq!(after.status, RunStatus::Succeeded, "the lock is released at the end");
}

#[tokio::test]
async fn repaired_counts_exactly_the_changes_whose_webhooks_were_dropped() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids = seed(&fake, 20, 0);
    run(&store, &fake, Mode::Full).await;

    let mut delivered = 0;
    for (n, id) in ids.iter().enumerate().take(10) {
        let (event, record) = match n % 3 {
            0 => ("person.updated", fake.update("person", id, json!({"jobTitle": format!("v{n}")}))),
            1 => ("person.deleted", fake.soft_delete("person", id)),
            _ => ("person.created", fake.create("person", person(100 + n))),
        };
        // Every other webhook is dropped on its way.
        if n % 2 == 0 {
            let body = webhook_body(event, &record, record["updatedAt"].as_str().unwrap());
            store
                .record_deliveries(&[parse_delivery(body.to_string().as_bytes(), chrono::Utc::now())])
                .await
                .unwrap();
            delivered += 1;
        }
    }
    let outcome = run(&store, &fake, Mode::Delta).await;
    assert_eq!(outcome.counts.repaired, 10 - delivered);
    assert!(outcome.counts.inserted > 0 && outcome.counts.unchanged > 0);
    let stored = store.run(outcome.run_id.unwrap()).await.unwrap().expect("the run row").counts;
    assert_eq!(stored, outcome.counts, "the run's row counts what the pages did");
    assert_mirror_matches(&store, &fake, "person").await;
}

// ---- Convergence: whatever the webhooks did, one reconcile makes the mirror equal Twenty. ----

mod convergence {
    use super::*;
    use proptest::prelude::*;
    use twenty_mirror::mirror::Delivery;

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Create,
        Update(usize),
        SoftDelete(usize),
        Restore(usize),
        Destroy(usize),
    }

    /// What happened to a change's webhook on its way.
    #[derive(Debug, Clone, Copy)]
    enum Fate {
        Dropped,
        Once,
        Twice,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => Just(Op::Create),
            3 => (0..64_usize).prop_map(Op::Update),
            1 => (0..64_usize).prop_map(Op::SoftDelete),
            1 => (0..64_usize).prop_map(Op::Restore),
            1 => (0..64_usize).prop_map(Op::Destroy),
        ]
    }

    fn fate() -> impl Strategy<Value = Fate> {
        prop_oneof![2 => Just(Fate::Dropped), 3 => Just(Fate::Once), 1 => Just(Fate::Twice)]
    }

    /// Applies `op` to the fake, as a user would in Twenty, and answers the webhook Twenty sends.
    fn perform(fake: &FakeTwenty, op: Op, n: usize) -> Option<Value> {
        let records = fake.records("person");
        let pick = |i: usize, soft_deleted: bool| {
            let candidates: Vec<&Value> =
                records.iter().filter(|r| r["deletedAt"].is_null() != soft_deleted).collect();
            (!candidates.is_empty())
                .then(|| candidates[i % candidates.len()]["id"].as_str().unwrap().to_owned())
        };
        let (event, record) = match op {
            Op::Create => ("person.created", fake.create("person", person(1_000 + n))),
            Op::Update(i) => (
                "person.updated",
                fake.update("person", &pick(i, false)?, json!({"jobTitle": format!("t{n}")})),
            ),
            Op::SoftDelete(i) => ("person.deleted", fake.soft_delete("person", &pick(i, false)?)),
            Op::Restore(i) => ("person.restored", fake.restore("person", &pick(i, true)?)),
            Op::Destroy(i) => {
                let id = pick(i, false).or_else(|| pick(i, true))?;
                ("person.destroyed", fake.destroy("person", &id))
            }
        };
        let event_date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Some(webhook_body(event, &record, &event_date))
    }

    fn deliveries(bodies: &[(Value, Fate)], order: &[usize]) -> Vec<Delivery> {
        let mut copies = Vec::new();
        for (body, fate) in bodies {
            let times = match fate {
                Fate::Dropped => 0,
                Fate::Once => 1,
                Fate::Twice => 2,
            };
            copies.extend(std::iter::repeat_n(body, times));
        }
        // Reordered: the strategy's permutation, cycled over however many copies there are.
        let mut shuffled: Vec<&Value> = Vec::with_capacity(copies.len());
        let mut taken = vec![false; copies.len()];
        for i in order.iter().copied().chain(0..copies.len()) {
            if i < copies.len() && !taken[i] {
                taken[i] = true;
                shuffled.push(copies[i]);
            }
        }
        shuffled.into_iter().map(|b| parse_delivery(b.to_string().as_bytes(), chrono::Utc::now())).collect()
    }

    #[test]
    fn one_reconcile_makes_the_mirror_equal_twenty_whatever_the_webhooks_did() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let config = ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() };
        proptest!(config, |(
            ops in prop::collection::vec((op(), fate()), 1..40),
            order in Just((0..80_usize).collect::<Vec<_>>()).prop_shuffle(),
            batch in 1..8_usize,
        )| {
            runtime.block_on(async {
                let fake = FakeTwenty::start().await;
                let (_db, store) = fresh_store().await;
                seed(&fake, 8, 0);
                let rec = reconciler(&store, &fake, |_, s| {
                    s.overlap = Duration::ZERO;
                    s.max_destroy_share = 1.0;
                    s.allowlist = Some(vec!["person".into()]);
                });
                rec.reconcile_once(RunRequest::new(Trigger::Schedule, Mode::Full)).await.unwrap();

                let bodies: Vec<(Value, Fate)> = ops
                    .iter()
                    .enumerate()
                    .filter_map(|(n, (op, fate))| perform(&fake, *op, n).map(|body| (body, *fate)))
                    .collect();
                for chunk in deliveries(&bodies, &order).chunks(batch) {
                    store.record_deliveries(chunk).await.unwrap();
                }
                let outcome = rec.reconcile_once(RunRequest::new(Trigger::Schedule, Mode::Full)).await.unwrap();
                assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
                assert_mirror_matches(&store, &fake, "person").await;
            });
        });
    }
}
