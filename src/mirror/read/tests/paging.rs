//! Orderings, keyset pages forward and back, and the indexes that serve them.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::DateTime;
use serde_json::{Value, json};
use sqlx::Row as _;

use super::{Db, OBJECT, fixture, id_of, nth, record, schema, seeded};
use crate::mirror::read::{Bind, Dialect, Listing, Statement, page_statement};
use crate::query::{Direction, ListParams, ListQuery, parse_list};

/// A sort value as the test computes it from the record itself.
#[derive(Debug, PartialEq, PartialOrd)]
enum Key {
    Text(String),
    Number(f64),
}

fn key_of(record: &Value, path: &str) -> Option<Key> {
    let value = path.split('.').try_fold(record, |value, segment| value.get(segment))?;
    match path {
        "employees" | "amount.amountMicros" => match value {
            Value::Number(n) => n.as_f64().map(Key::Number),
            Value::String(s) if s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().ok().map(Key::Number)
            }
            _ => None,
        },
        "stage" => {
            let options = ["NEW", "SCREENING", "MEETING", "CUSTOMER"];
            let stage = value.as_str()?;
            Some(Key::Number(options.iter().position(|o| *o == stage).unwrap_or(options.len()) as f64))
        }
        "closeDate" | "createdAt" | "updatedAt" | "deletedAt" => {
            let at = DateTime::parse_from_rfc3339(value.as_str()?).ok()?;
            Some(Key::Number(at.timestamp_millis() as f64))
        }
        "active" => value.as_bool().map(|b| Key::Number(f64::from(u8::from(b)))),
        _ => value.as_str().map(|s| Key::Text(s.to_owned())),
    }
}

/// The fixture's live records in the ordering `order_by`, as Twenty orders them.
fn expected_order(order_by: &str) -> Vec<String> {
    let query = parse(&[("order_by", order_by)]);
    let keys: Vec<(String, Direction)> = query.order.iter().map(|k| (k.leaf.dotted(), k.direction)).collect();
    let mut live: Vec<Value> =
        fixture().into_iter().filter(|r| r["deletedAt"].is_null() && id_of(r) != nth(9)).collect();
    live.sort_by(|a, b| {
        for (path, direction) in &keys {
            let ordering = match (key_of(a, path), key_of(b, path)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) if direction.nulls_first() => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) if direction.nulls_first() => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) if direction.is_descending() => {
                    y.partial_cmp(&x).unwrap_or(Ordering::Equal)
                }
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    });
    live.iter().map(id_of).collect()
}

fn parse(params: &[(&str, &str)]) -> ListQuery {
    parse_list(&ListParams::from_pairs(params.iter().copied()), &schema()).unwrap()
}

fn ids(listing: &Listing) -> Vec<String> {
    listing.page.records.iter().map(|r| r.id.clone()).collect()
}

const ORDERINGS: &[&str] = &[
    "id",
    "id[DescNullsLast]",
    "city",
    "city[AscNullsLast]",
    "city[DescNullsFirst]",
    "city[DescNullsLast]",
    "employees[DescNullsFirst]",
    "employees[AscNullsLast]",
    "stage",
    "stage[DescNullsLast]",
    "closeDate[AscNullsLast]",
    "closeDate[DescNullsFirst]",
    "active,employees[DescNullsLast]",
    "name.firstName[AscNullsLast],name.lastName[DescNullsFirst]",
    "amount.amountMicros[AscNullsLast],city",
    "updatedAt",
    "updatedAt[DescNullsLast]",
    "createdAt[DescNullsLast]",
    "deletedAt,city[DescNullsLast]",
];

#[tokio::test]
async fn orderings_put_nulls_where_asked_text_by_code_point_and_selects_by_position() {
    for db in seeded().await {
        for order_by in ORDERINGS {
            let listing = db.get(&[("order_by", order_by)]).await;
            assert_eq!(ids(&listing), expected_order(order_by), "{}: order_by={order_by}", db.backend());
        }
        // Code points: upper case, then lower case, then accented letters.
        let cities: Vec<Value> = db
            .get(&[("order_by", "city"), ("filter", "city[is]:NOT_NULL")])
            .await
            .page
            .records
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.data).unwrap()["city"].clone())
            .collect();
        assert_eq!(
            cities,
            [
                json!(""),
                json!("O'Brien (EU), 50% off"),
                json!("Paris"),
                json!("Paris"),
                json!("Zurich"),
                json!("paris")
            ]
        );
    }
}

/// Walks every page forward, then back from the last one, checking each page's flags.
async fn walk(db: &Db, order_by: &str, limit: usize) {
    let limit_text = limit.to_string();
    let context = format!("{}: order_by={order_by} limit={limit}", db.backend());
    let full = expected_order(order_by);
    let base = [("order_by", order_by), ("limit", limit_text.as_str())];
    let mut forward: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let last_page = loop {
        let mut params = base.to_vec();
        if let Some(cursor) = &cursor {
            params.push(("starting_after", cursor));
        }
        let listing = db.get(&params).await;
        assert_eq!(listing.total_count, full.len() as i64, "{context}");
        assert_eq!(listing.page.has_previous_page, cursor.is_some(), "{context}");
        assert!(listing.page.records.len() <= limit, "{context}");
        let page = ids(&listing);
        forward.extend(page.clone());
        if !listing.page.has_next_page {
            break page;
        }
        cursor = listing.page.end_cursor().map(str::to_owned);
        assert!(forward.len() <= full.len(), "{context}: the walk repeats records");
    };
    assert_eq!(forward, full, "{context}: forward");
    let mut backward: Vec<String> = Vec::new();
    // The cursor of the last page's first record: the end of a page that ends with it.
    let to_it = (full.len() - last_page.len() + 1).to_string();
    let mut cursor = db
        .get(&[("order_by", order_by), ("limit", to_it.as_str())])
        .await
        .page
        .end_cursor()
        .map(str::to_owned);
    while let Some(before) = cursor.take() {
        let mut params = base.to_vec();
        params.push(("ending_before", &before));
        let listing = db.get(&params).await;
        assert!(listing.page.has_next_page, "{context}: a backward page has a next page");
        assert_eq!(listing.total_count, full.len() as i64, "{context}");
        let mut page = ids(&listing);
        page.append(&mut backward);
        backward = page;
        if listing.page.has_previous_page {
            cursor = listing.page.start_cursor().map(str::to_owned);
        }
    }
    assert_eq!(backward, full[..full.len() - last_page.len()], "{context}: backward");
}

#[tokio::test]
async fn cursors_walk_forward_and_back_across_pages() {
    for db in seeded().await {
        for order_by in ORDERINGS {
            for limit in [1, 3] {
                walk(&db, order_by, limit).await;
            }
        }
    }
}

#[tokio::test]
async fn a_page_of_none_and_a_page_after_the_end() {
    for db in seeded().await {
        let none = db.get(&[("limit", "0")]).await;
        assert!(none.page.records.is_empty() && none.page.has_next_page, "{}", db.backend());
        assert_eq!(none.total_count, 8);
        let last = db.get(&[("limit", "200")]).await;
        let end = last.page.end_cursor().unwrap().to_owned();
        let after = db.get(&[("starting_after", &end)]).await;
        assert!(after.page.records.is_empty(), "{}", db.backend());
        assert!(!after.page.has_next_page && after.page.has_previous_page, "{}", db.backend());
        assert_eq!((after.page.start_cursor(), after.page.end_cursor()), (None, None));
        // A page of no rows has no meta columns: its count is read on its own, filtered or not.
        assert_eq!(after.total_count, 8, "{}", db.backend());
        let filter = ("filter", "city[eq]:Paris");
        let paris = db.get(&[filter, ("limit", "200")]).await;
        let end = paris.page.end_cursor().unwrap().to_owned();
        let after = db.get(&[filter, ("starting_after", &end)]).await;
        assert!(after.page.records.is_empty(), "{}", db.backend());
        assert_eq!((paris.total_count, after.total_count), (2, 2), "{}", db.backend());
    }
}

#[tokio::test]
async fn a_walk_across_writes_sees_every_unchanged_record_once() {
    for db in seeded().await {
        let full = expected_order("updatedAt");
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut cursor: Option<String> = None;
        let mut changed = Vec::new();
        for page_number in 0.. {
            let mut params = vec![("order_by", "updatedAt"), ("limit", "2")];
            if let Some(cursor) = &cursor {
                params.push(("starting_after", cursor.as_str()));
            }
            let listing = db.get(&params).await;
            for id in ids(&listing) {
                *seen.entry(id).or_default() += 1;
            }
            if page_number == 0 {
                // One record already read moves to the end, one not yet read moves behind the
                // cursor, and a new one arrives.
                let (read, unread) = (full[0].clone(), full[full.len() - 1].clone());
                db.touch(&read, "2026-02-03T00:00:00.000Z").await;
                db.touch(&unread, "2026-01-15T00:00:00.000Z").await;
                db.insert(&[record(42, json!({"updatedAt": "2026-02-04T00:00:00.000Z"}))]).await;
                changed.extend([read, unread]);
            }
            if !listing.page.has_next_page {
                break;
            }
            cursor = listing.page.end_cursor().map(str::to_owned);
        }
        for id in full.iter().filter(|id| !changed.contains(id)) {
            assert_eq!(seen.get(id), Some(&1), "{}: {id}", db.backend());
        }
        assert_eq!(seen.get(&nth(42)), Some(&1), "{}: the new record", db.backend());
    }
}

type Params<'a> = &'a [(&'a str, &'a str)];

/// The query plan of a page statement, as text.
async fn plan(db: &Db, statement: &Statement) -> String {
    let explain = |prefix: &str| format!("{prefix} {}", statement.sql);
    match db {
        Db::Sqlite { pool, .. } => {
            let sql = explain("EXPLAIN QUERY PLAN");
            let mut query = sqlx::query(&sql);
            for bind in &statement.binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text.as_str()),
                    Bind::Integer(n) => query.bind(*n),
                    other => panic!("no such bind in these statements: {other:?}"),
                };
            }
            let rows = query.fetch_all(pool).await.unwrap();
            rows.iter().map(|row| row.get::<String, _>(3)).collect::<Vec<_>>().join("\n")
        }
        Db::Postgres { pool, .. } => {
            // A handful of rows: left to itself the planner rightly reads the table and sorts it.
            // Discouraged from both (for this transaction only), it shows whether an index serves.
            // Statistics and a visibility map, as autovacuum keeps them.
            sqlx::query("VACUUM ANALYZE twenty_records").execute(pool).await.unwrap();
            let mut transaction = pool.begin().await.unwrap();
            for setting in ["SET LOCAL enable_seqscan = off", "SET LOCAL enable_sort = off"] {
                sqlx::query(setting).execute(&mut *transaction).await.unwrap();
            }
            let sql = explain("EXPLAIN");
            let mut query = sqlx::query(&sql);
            for bind in &statement.binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text.as_str()),
                    Bind::Integer(n) => query.bind(*n),
                    Bind::Instant(at) => query.bind(*at),
                    other => panic!("no such bind in these statements: {other:?}"),
                };
            }
            let rows = query.fetch_all(&mut *transaction).await.unwrap();
            rows.iter().map(|row| row.get::<String, _>(0)).collect::<Vec<_>>().join("\n")
        }
    }
}

#[tokio::test]
async fn pages_and_filters_on_system_fields_use_indexes() {
    for db in seeded().await {
        let dialect = match db {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres { .. } => Dialect::Postgres,
        };
        // Live records in id order: the primary key, or the deletedAt index's `deleted_at IS NULL`
        // range, which is in id order too.
        let by_id: &[&str] = if dialect == Dialect::Sqlite {
            &["sqlite_autoindex_twenty_records_1", "twenty_records_read_deleted_at"]
        } else {
            &["twenty_records_read_id", "twenty_records_read_deleted_at"]
        };
        let cases: [(Params, &[&str]); 6] = [
            (&[], by_id),
            (&[("order_by", "updatedAt")], &["twenty_records_read_updated_at"]),
            (
                &[("order_by", "updatedAt[DescNullsLast],id[DescNullsLast]")],
                &["twenty_records_read_updated_at"],
            ),
            (&[("order_by", "createdAt")], &["twenty_records_read_created_at"]),
            (
                &[("order_by", "deletedAt"), ("filter", "deletedAt[gte]:2026-01-01")],
                &["twenty_records_read_deleted_at"],
            ),
            (
                &[("filter", "updatedAt[gte]:2026-02-01T00:00:05Z"), ("order_by", "updatedAt")],
                &["twenty_records_read_updated_at"],
            ),
        ];
        // `totalCount` of the live records is the kept count: the page's statement counts nothing.
        let unfiltered = page_statement(dialect, OBJECT, &parse(&[])).statement;
        assert!(!unfiltered.sql.contains("COUNT("), "{}: {}", db.backend(), unfiltered.sql);
        for (params, indexes) in cases {
            let first = parse(params);
            let listing = db.list(&first).await;
            let mut after = params.to_vec();
            let cursor = listing.page.start_cursor().unwrap_or_default().to_owned();
            after.push(("starting_after", &cursor));
            for query in [first, parse(&after)] {
                let plan = plan(&db, &page_statement(dialect, OBJECT, &query).statement).await;
                let uses = indexes.iter().any(|index| plan.contains(index));
                assert!(uses, "{}: {params:?} should use one of {indexes:?}:\n{plan}", db.backend());
                assert!(
                    !plan.contains("TEMP B-TREE") && !plan.contains("Sort"),
                    "{}: {params:?} sorts:\n{plan}",
                    db.backend()
                );
            }
        }
    }
}

#[test]
fn a_keyset_on_never_null_columns_is_one_row_comparison() {
    let first = parse(&[("order_by", "updatedAt")]);
    let listing_cursor =
        crate::query::cursor::encode(&first.order, &[json!("2026-02-01T00:00:01.000Z"), json!("x")]);
    let query = parse(&[("order_by", "updatedAt"), ("starting_after", &listing_cursor)]);
    let sqlite = page_statement(Dialect::Sqlite, OBJECT, &query).statement;
    assert!(sqlite.sql.contains("((updated_at, id) > (?3, ?4))"), "{}", sqlite.sql);
    assert_eq!(sqlite.binds[2], Bind::Text("2026-02-01T00:00:01.000Z".into()));
    let postgres = page_statement(Dialect::Postgres, OBJECT, &query).statement;
    assert!(postgres.sql.contains(r#"((updated_at, id COLLATE "C") > ($3, $4))"#), "{}", postgres.sql);
    assert!(
        postgres.sql.ends_with(r#"ORDER BY updated_at ASC, id COLLATE "C" ASC LIMIT 61"#),
        "{}",
        postgres.sql
    );
    let backward = parse(&[("order_by", "updatedAt"), ("ending_before", &listing_cursor)]);
    let sqlite = page_statement(Dialect::Sqlite, OBJECT, &backward).statement;
    assert!(
        sqlite.sql.contains("((updated_at, id) < (?3, ?4)) ORDER BY updated_at DESC, id DESC"),
        "{}",
        sqlite.sql
    );
}

/// PostgreSQL plans a page's statement once per connection and reuses the plan, rather than
/// planning it again at every request: its `auto` plan cache keeps a plan for any values only when
/// that plan costs about what the plans for the values did.
#[tokio::test]
async fn postgresql_keeps_one_plan_for_a_page_statement() {
    for db in Db::all().await {
        let Db::Postgres { pool, admin_url, name } = &db else { continue };
        // Enough rows that a plan reading a tenth of them would cost far more than a page.
        sqlx::query(
            "INSERT INTO twenty_records (object, id, data, updated_at, source) \
             SELECT $1, lpad(i::text, 12, '0'), jsonb_build_object('id', lpad(i::text, 12, '0')), \
                    now(), 'reconcile' \
             FROM generate_series(1, 20000) AS i",
        )
        .bind(OBJECT)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("VACUUM ANALYZE twenty_records").execute(pool).await.unwrap();
        // One connection: prepared statements, and their plans, are a session's.
        let options: sqlx::postgres::PgConnectOptions = admin_url.parse().unwrap();
        let session = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.database(name))
            .await
            .unwrap();
        let first = parse(&[]);
        let after =
            parse(&[("starting_after", &crate::query::cursor::encode(&first.order, &[json!(nth(7))]))]);
        for query in [&first, &after] {
            for _ in 0..8 {
                crate::mirror::read::postgres::listing(&session, OBJECT, query).await.unwrap();
            }
            let sql = page_statement(Dialect::Postgres, OBJECT, query).statement.sql;
            let (generic, custom): (i64, i64) = sqlx::query_as(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            )
            .bind(&sql)
            .fetch_one(&session)
            .await
            .unwrap();
            assert!(generic > 0, "planned at every one of {custom} executions: {sql}");
        }
        session.close().await;
    }
}
