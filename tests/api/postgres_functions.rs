//! The SQL functions the migrations define, under the plans PostgreSQL may choose for them.

use sqlx::{Connection, Executor, Row};

use crate::helpers::fresh_store;

/// A value off Twenty's canonical format takes `twenty_mirror_instant`'s slow path, whose
/// EXCEPTION block a parallel worker cannot run: forced into a parallel plan, the query must still
/// answer (migration 0009).
#[tokio::test]
async fn the_date_time_function_answers_under_a_parallel_plan() {
    let (db, store) = fresh_store().await;
    if !db.is_postgres() {
        return; // SQLite has no parallel plans and no such function.
    }
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connecting");
    conn.execute("SET force_parallel_mode = on").await.expect("forcing parallel plans");
    let rows = sqlx::query(
        "SELECT twenty_mirror_instant(v) AS instant
         FROM (VALUES ('2026-09-21 10:15:30.412+00:00'), ('2026-02-30T00:00:00Z'), ('not a date')) AS t(v)
         ORDER BY v",
    )
    .fetch_all(&mut conn)
    .await
    .expect("the query answers under a parallel plan");
    let instants: Vec<Option<String>> = rows.iter().map(|row| row.get("instant")).collect();
    assert_eq!(instants, [None, Some("2026-09-21T10:15:30.412Z".to_owned()), None]);
}
