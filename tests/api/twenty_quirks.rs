//! The run against Twenty's less friendly answers: an exhausted quota, listings that end before
//! their `totalCount`, and cursors Twenty rejects.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use twenty_mirror::mirror::{Mode, RunStatus, Store, Trigger};
use twenty_mirror::sync::reconciler::{RunOutcome, RunRequest};
use twenty_mirror::sync::scheduler::{self, Schedule};

use crate::helpers::fake_twenty::FakeTwenty;
use crate::helpers::{assert_mirror_matches, fresh_store, reconciler};

fn seed_people(fake: &FakeTwenty, people: usize) -> Vec<String> {
    (0..people)
        .map(|n| {
            let person = fake.create("person", json!({"jobTitle": format!("Engineer {n}")}));
            person["id"].as_str().expect("an id").to_owned()
        })
        .collect()
}

/// A run of `mode` with no overlap, so that rows written just before are destroy candidates.
async fn run(store: &Store, fake: &FakeTwenty, mode: Mode, force: bool) -> RunOutcome {
    let request = RunRequest { force, ..RunRequest::new(Trigger::Operator, mode) };
    reconciler(store, fake, |_, s| s.overlap = Duration::ZERO).reconcile_once(request).await.expect("a run")
}

#[tokio::test]
async fn an_exhausted_quota_stops_the_run_at_once_and_destroys_nothing() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids = seed_people(&fake, 450);
    assert_eq!(run(&store, &fake, Mode::Full, false).await.status, RunStatus::Succeeded);
    fake.destroy("person", &ids[0]);

    fake.reset_requests();
    // Discovery and two pages, then the quota is spent.
    fake.set_quota(3, None);
    let outcome = run(&store, &fake, Mode::Full, true).await;
    assert_eq!(outcome.status, RunStatus::Failed);
    let error = outcome.error.as_deref().unwrap_or_default();
    assert!(error.contains("quota is exhausted"), "{error}");
    assert_eq!(outcome.quota_exhausted.map(|q| q.retry_after), Some(None));
    let requests = fake.requests();
    let after_refusal = requests.iter().skip_while(|r| r.status != 402).count();
    assert_eq!(
        after_refusal,
        1,
        "nothing after the refusal: {:?}",
        requests.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(outcome.counts.destroyed, 0);
    assert_eq!(store.count_present("person").await.unwrap(), 450, "nothing destroyed");
}

#[tokio::test]
async fn a_full_pass_that_read_less_than_twenty_counts_destroys_nothing_even_forced() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids = seed_people(&fake, 450);
    assert_eq!(run(&store, &fake, Mode::Full, false).await.status, RunStatus::Succeeded);
    for id in &ids[..5] {
        fake.destroy("person", id);
    }

    fake.truncate_listings_after(Some(1));
    for force in [false, true] {
        let outcome = run(&store, &fake, Mode::Full, force).await;
        assert_eq!(outcome.status, RunStatus::Failed, "force: {force}");
        let error = outcome.error.as_deref().unwrap_or_default();
        assert!(error.contains("person read 200 distinct records but Twenty counts 445"), "{error}");
        assert!(error.contains("nothing was marked destroyed"), "{error}");
        assert_eq!(outcome.counts.destroyed, 0);
        assert_eq!(store.count_present("person").await.unwrap(), 450, "force: {force}");
    }

    fake.truncate_listings_after(None);
    let outcome = run(&store, &fake, Mode::Full, false).await;
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    assert_eq!(outcome.counts.destroyed, 5);
    assert_mirror_matches(&store, &fake, "person").await;
}

#[tokio::test]
async fn a_delta_pass_that_ends_early_is_not_complete_and_the_next_one_reads_the_rest() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids = seed_people(&fake, 450);
    assert_eq!(run(&store, &fake, Mode::Full, false).await.status, RunStatus::Succeeded);
    let last_delta = |states: Vec<twenty_mirror::mirror::SyncState>| {
        states.into_iter().find(|s| s.object == "person").and_then(|s| s.last_delta_at)
    };
    let before = last_delta(store.sync_states().await.unwrap());
    for id in &ids {
        fake.update("person", id, json!({"city": "Lyon"}));
    }

    fake.truncate_listings_after(Some(1));
    let outcome = run(&store, &fake, Mode::Delta, false).await;
    assert_eq!(outcome.status, RunStatus::Failed);
    let error = outcome.error.as_deref().unwrap_or_default();
    assert!(error.contains("the delta pass of person read 200"), "{error}");
    assert!(error.contains("the next run reads the rest"), "{error}");
    assert_eq!(last_delta(store.sync_states().await.unwrap()), before, "not recorded as a complete pass");

    fake.truncate_listings_after(None);
    let outcome = run(&store, &fake, Mode::Delta, false).await;
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    let person = outcome.objects.iter().find(|o| o.object == "person").expect("person's pass");
    assert!(person.counts.fetched >= 250 && person.counts.fetched < 450, "from the watermark: {person:?}");
    assert_mirror_matches(&store, &fake, "person").await;
    assert!(last_delta(store.sync_states().await.unwrap()) > before);
}

#[tokio::test]
async fn a_rejected_cursor_restarts_the_pass_from_its_checkpoint() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    let ids = seed_people(&fake, 450);
    fake.reject_cursors(1);
    let outcome = run(&store, &fake, Mode::Full, false).await;
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    assert_eq!(fake.requests().iter().filter(|r| r.status == 400).count(), 1);
    assert_mirror_matches(&store, &fake, "person").await;

    for id in &ids {
        fake.update("person", id, json!({"city": "Nantes"}));
    }
    fake.reject_cursors(1);
    let outcome = run(&store, &fake, Mode::Delta, false).await;
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    assert_mirror_matches(&store, &fake, "person").await;

    fake.reject_cursors(10);
    let outcome = run(&store, &fake, Mode::Full, false).await;
    assert_eq!(outcome.status, RunStatus::Failed, "restarts are bounded");
    assert!(
        outcome.error.as_deref().unwrap_or_default().contains("different orderBy"),
        "{:?}",
        outcome.error
    );
}

#[tokio::test]
async fn the_scheduler_waits_out_an_exhausted_quota_instead_of_trying_every_interval() {
    let fake = FakeTwenty::start().await;
    let (_db, store) = fresh_store().await;
    seed_people(&fake, 3);
    fake.set_quota(0, None);
    let reconciler = reconciler(&store, &fake, |_, _| {});
    let schedule = Schedule { delta_every: Some(Duration::from_millis(20)), full_every: None };
    let shutdown = CancellationToken::new();
    let scheduled = tokio::spawn(scheduler::run(reconciler, store.clone(), schedule, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    shutdown.cancel();
    scheduled.await.expect("the scheduler stops");
    let refusals = fake.requests().iter().filter(|r| r.status == 402).count();
    assert_eq!(refusals, 1, "one run, then a back-off of a minute, not a run every 20 ms");
    let runs = store.runs(100).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_exits_non_zero_when_the_quota_stopped_the_run() {
    let fake = FakeTwenty::start().await;
    seed_people(&fake, 3);
    let db = crate::helpers::TestDb::new().await;
    fake.set_quota(0, None);
    let mut command = crate::helpers::binary::twenty_mirror();
    command
        .env("DATABASE_URL", &db.url)
        .env("TWENTY_API_URL", fake.url())
        .env("TWENTY_API_KEY", FakeTwenty::API_KEY)
        .env("TWENTY_RATE_LIMIT", "off")
        .arg("reconcile");
    let output = tokio::task::block_in_place(|| command.output()).expect("running reconcile");
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("failed") && stdout.contains("quota is exhausted"), "{stdout}");
}
