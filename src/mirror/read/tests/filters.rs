//! Twenty's filter semantics, on every backend.

use super::{Db, OBJECT, nth, schema, seeded};
use crate::mirror::read::{Dialect, page_statement, postgres, sqlite};
use crate::query::{ListParams, filter, parse_list};

/// Asserts that `filter` selects exactly the fixture records `expected`, and counts them.
async fn expect(db: &Db, filter: &str, expected: &[u32]) {
    let (ids, total) = db.ids(filter).await;
    let mut wanted: Vec<String> = expected.iter().map(|n| nth(*n)).collect();
    wanted.sort();
    let named = |ids: &[String]| -> Vec<u32> {
        ids.iter().map(|id| (1..=10).find(|n| &nth(*n) == id).unwrap_or(0)).collect()
    };
    assert_eq!(named(&ids), named(&wanted), "{}: {filter}", db.backend());
    assert_eq!(total, i64::try_from(expected.len()).unwrap(), "{}: totalCount of {filter}", db.backend());
}

#[tokio::test]
async fn not_and_neq_exclude_nulls() {
    for db in seeded().await {
        expect(&db, "city[eq]:Paris", &[1, 7]).await;
        expect(&db, "not(city[eq]:Paris)", &[2, 4, 5, 6]).await;
        expect(&db, "city[neq]:Paris", &[2, 4, 5, 6]).await;
        expect(&db, "not(not(city[eq]:Paris))", &[1, 7]).await;
    }
}

#[tokio::test]
async fn empty_text_counts_as_null_except_for_currency_codes() {
    for db in seeded().await {
        expect(&db, "city[is]:NULL", &[3, 4, 10]).await;
        expect(&db, "city[is]:NOT_NULL", &[1, 2, 4, 5, 6, 7]).await;
        expect(&db, r#"city[eq]:"""#, &[3, 4, 10]).await;
        expect(&db, "not(city[is]:NULL)", &[1, 2, 5, 6, 7]).await;
        expect(&db, "name.lastName[is]:NULL", &[2, 3, 4, 5, 6, 10]).await;
        expect(&db, "amount.currencyCode[is]:NULL", &[3, 4, 6, 7, 10]).await;
        expect(&db, r#"amount.currencyCode[eq]:"""#, &[2]).await;
        expect(&db, "emails.primaryEmail[is]:NULL", &[2, 3, 4, 5, 6, 7, 10]).await;
    }
}

#[tokio::test]
async fn soft_deleted_records_only_when_the_filter_mentions_deleted_at_and_destroyed_never() {
    for db in seeded().await {
        expect(&db, "employees[eq]:10", &[1, 7]).await;
        expect(&db, "or(employees[eq]:10,deletedAt[is]:NOT_NULL)", &[1, 7, 8]).await;
        expect(&db, "deletedAt[is]:NOT_NULL", &[8]).await;
        expect(&db, "deletedAt[gte]:2026-02-01", &[8]).await;
        expect(&db, "deletedAt[is]:NULL", &[1, 2, 3, 4, 5, 6, 7, 10]).await;
        let all = db.get(&[("limit", "200")]).await;
        assert_eq!(all.total_count, 8, "{}", db.backend());
    }
}

#[tokio::test]
async fn numbers_compare_as_numbers_and_other_values_as_null() {
    for db in seeded().await {
        expect(&db, "employees[gt]:5", &[1, 4, 7, 10]).await;
        expect(&db, "employees[lte]:2.5", &[2, 6]).await;
        expect(&db, r#"employees[gte]:"1e3""#, &[4]).await;
        expect(&db, "employees[is]:NULL", &[3, 5]).await;
        expect(&db, "amount.amountMicros[gte]:200000000", &[2]).await;
        expect(&db, "amount.amountMicros[lt]:0", &[5]).await;
        expect(&db, "employees[in]:[10,-3]", &[1, 6, 7]).await;
    }
}

#[tokio::test]
async fn booleans() {
    for db in seeded().await {
        expect(&db, "active[eq]:true", &[1, 4, 7]).await;
        expect(&db, "active[eq]:FALSE", &[2, 5]).await;
        expect(&db, "not(active[eq]:true)", &[2, 5]).await;
        expect(&db, "active[is]:NULL", &[3, 6, 10]).await;
    }
}

#[tokio::test]
async fn selects_compare_by_their_options_positions() {
    for db in seeded().await {
        // LEGACY is no longer an option: it comes after every option.
        expect(&db, "stage[gt]:SCREENING", &[1, 4, 6, 10]).await;
        expect(&db, "stage[lt]:MEETING", &[2, 5, 7]).await;
        expect(&db, "stage[eq]:NEW", &[2, 7]).await;
        expect(&db, "stage[neq]:NEW", &[1, 4, 5, 6, 10]).await;
        expect(&db, "stage[in]:[NEW,CUSTOMER]", &[2, 4, 7]).await;
    }
}

#[tokio::test]
async fn date_times_compare_to_the_millisecond_whatever_their_offset() {
    for db in seeded().await {
        expect(&db, r#"closeDate[eq]:"2026-01-01T10:00:00.123Z""#, &[1, 2, 4]).await;
        expect(&db, "closeDate[gt]:2026-01-01T10:00:00.123Z", &[6, 7]).await;
        expect(&db, "closeDate[lt]:2026-01-01", &[5]).await;
        expect(&db, "closeDate[is]:NULL", &[3, 10]).await;
        expect(&db, "updatedAt[gte]:2026-02-01T00:00:05Z", &[5, 6, 10]).await;
        expect(&db, "updatedAt[eq]:2026-02-01T01:00:01.000+01:00", &[1, 7]).await;
        expect(&db, "createdAt[lte]:2026-01-03", &[1]).await;
    }
}

#[tokio::test]
async fn a_created_at_that_is_no_date_time_is_written_and_reads_as_null() {
    for db in Db::all().await {
        // SQLite's strftime reads 'now' as the current time, which an index may not hold.
        let records: Vec<_> = ["now", "NOW", "2026-01-02T00:00:00.000Z"]
            .iter()
            .enumerate()
            .map(|(i, created)| {
                super::record(u32::try_from(i).unwrap() + 1, serde_json::json!({"createdAt": created}))
            })
            .collect();
        db.insert(&records).await;
        expect(&db, "createdAt[gte]:2000-01-01", &[3]).await;
        expect(&db, "createdAt[is]:NULL", &[1, 2]).await;
    }
}

#[tokio::test]
async fn lists_arrays_and_paths() {
    for db in seeded().await {
        let (one, seven) = (nth(1), nth(7));
        expect(&db, &format!("id[in]:[{one},{seven}]"), &[1, 7]).await;
        expect(&db, &format!("id[eq]:{one}"), &[1]).await;
        expect(&db, "city[in]:[Paris,Zurich]", &[1, 5, 7]).await;
        expect(&db, "city[in]:[]", &[]).await;
        expect(&db, "tags[containsAny]:[HOT]", &[1, 6]).await;
        expect(&db, "tags[containsAny]:[WARM,COLD]", &[2, 5, 6]).await;
        expect(&db, "not(tags[containsAny]:[HOT])", &[2, 4, 5]).await;
        expect(&db, "tags[is]:NULL", &[3, 7, 10]).await;
        expect(&db, "emails.primaryEmail[eq]:ada@x.io", &[1]).await;
        expect(&db, "companyId[eq]:c1", &[1]).await;
        expect(
            &db,
            "or(and(city[eq]:Paris,employees[eq]:10),not(stage[in]:[NEW,MEETING,SCREENING,CUSTOMER]))",
            &[1, 7, 10],
        )
        .await;
    }
}

#[tokio::test]
async fn like_is_case_sensitive_ilike_not_and_starts_with_is_literal() {
    for db in seeded().await {
        expect(&db, "city[like]:%aris", &[1, 2, 7]).await;
        expect(&db, "city[like]:P%", &[1, 7]).await;
        expect(&db, "city[like]:_aris", &[1, 2, 7]).await;
        expect(&db, "city[like]:Pari", &[]).await;
        expect(&db, "city[ilike]:p%", &[1, 2, 7]).await;
        expect(&db, "name.firstName[ilike]:ADA", &[1, 7, 10]).await;
        expect(&db, "name.firstName[like]:Ada", &[1, 7]).await;
        expect(&db, r#"city[startsWith]:"O'Brien (EU), 50%""#, &[6]).await;
        expect(&db, "city[startsWith]:50%", &[]).await;
        expect(&db, "city[endsWith]:%off", &[]).await;
        expect(&db, "city[like]:%off", &[6]).await;
        expect(&db, "city[endsWith]:50% off", &[6]).await;
        expect(&db, r"city[like]:%50\% off", &[6]).await;
        expect(&db, "city[like]:*", &[]).await;
        expect(&db, "name.firstName[like]:Bob_1", &[6]).await;
        expect(&db, "name.firstName[startsWith]:Bob_", &[6]).await;
        expect(&db, "name.firstName[startsWith]:Bo_", &[]).await;
    }
}

#[tokio::test]
async fn request_text_never_reaches_the_sql() {
    let hostile = r#"city[eq]:"x'); DROP TABLE twenty_records; --""#;
    let query =
        parse_list(&ListParams { filter: Some(hostile), ..ListParams::default() }, &schema()).unwrap();
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let statement = page_statement(dialect, OBJECT, &query).statement;
        assert!(!statement.sql.contains("DROP"), "{}", statement.sql);
    }
    for db in seeded().await {
        expect(&db, hostile, &[]).await;
        expect(&db, "city[like]:%'%", &[6]).await;
    }
}

#[tokio::test]
async fn the_largest_filters_run_on_every_backend() {
    let values = vec!["x"; filter::MAX_VALUES - 1].join(",");
    let nested = format!(
        "{}city[eq]:Paris{}",
        "not(not(".repeat(filter::MAX_NESTING / 2),
        "))".repeat(filter::MAX_NESTING / 2)
    );
    let many = vec!["employees[gt]:1"; filter::MAX_CONDITIONS].join(",");
    for db in seeded().await {
        expect(&db, &format!("city[in]:[{values},Zurich]"), &[5]).await;
        expect(&db, &nested, &[1, 7]).await;
        expect(&db, &many, &[1, 2, 4, 7, 10]).await;
    }
}

#[tokio::test]
async fn single_records_and_relation_targets_are_live_ones() {
    for db in seeded().await {
        let ids = [nth(1), nth(8), nth(9), nth(3), "missing".to_owned()];
        let (found, one, deleted) = match &db {
            Db::Sqlite { pool, .. } => (
                sqlite::records_by_ids(pool, OBJECT, &ids).await.unwrap(),
                sqlite::record(pool, OBJECT, &nth(1)).await.unwrap(),
                sqlite::record(pool, OBJECT, &nth(8)).await.unwrap(),
            ),
            Db::Postgres { pool, .. } => (
                postgres::records_by_ids(pool, OBJECT, &ids).await.unwrap(),
                postgres::record(pool, OBJECT, &nth(1)).await.unwrap(),
                postgres::record(pool, OBJECT, &nth(8)).await.unwrap(),
            ),
        };
        let mut found_ids: Vec<String> = found.iter().map(|(id, _)| id.clone()).collect();
        found_ids.sort();
        let mut live = vec![nth(1), nth(3)];
        live.sort();
        assert_eq!(found_ids, live, "{}", db.backend());
        let one: serde_json::Value = serde_json::from_str(&one.expect("record 1 is live")).unwrap();
        assert_eq!(one["city"], "Paris", "{}", db.backend());
        assert_eq!(deleted, None, "{}", db.backend());
    }
}
