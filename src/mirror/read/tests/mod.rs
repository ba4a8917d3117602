//! The read API's SQL against real databases: a migrated SQLite file always, and PostgreSQL when
//! `TEST_DATABASE_URL` is set (a database of its own per test, dropped afterwards).

mod filters;
mod paging;

use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgPool, SqlitePool};

use super::{Listing, postgres, sqlite};
use crate::query::{ListParams, ListQuery, ObjectSchema, parse_list};

pub(super) const OBJECT: &str = "deal";

/// The fields of the test object, in the metadata API's shape.
pub(super) fn schema() -> ObjectSchema {
    let options = |values: &[&str]| -> Value {
        values.iter().enumerate().map(|(i, v)| json!({"value": v, "position": i})).collect()
    };
    ObjectSchema::from_metadata(
        OBJECT,
        false,
        &json!([
            {"name": "id", "type": "UUID"},
            {"name": "createdAt", "type": "DATE_TIME"},
            {"name": "updatedAt", "type": "DATE_TIME"},
            {"name": "deletedAt", "type": "DATE_TIME"},
            {"name": "name", "type": "FULL_NAME"},
            {"name": "city", "type": "TEXT"},
            {"name": "emails", "type": "EMAILS"},
            {"name": "employees", "type": "NUMBER"},
            {"name": "stage", "type": "SELECT", "options": options(&["NEW", "SCREENING", "MEETING", "CUSTOMER"])},
            {"name": "amount", "type": "CURRENCY"},
            {"name": "closeDate", "type": "DATE_TIME"},
            {"name": "active", "type": "BOOLEAN"},
            {"name": "tags", "type": "MULTI_SELECT", "options": options(&["HOT", "COLD", "WARM"])},
            {"name": "company", "type": "RELATION", "relation": {
                "type": "MANY_TO_ONE", "targetObjectMetadata": {"nameSingular": "company"}
            }},
        ]),
    )
}

/// A record of the test object: `fields` over the system fields, `n` making the id and times.
pub(super) fn record(n: u32, fields: Value) -> Value {
    // Ids in an order of their own, unrelated to `n`.
    let id = format!("{:08x}-0000-4000-8000-{:012x}", n.wrapping_mul(2_654_435_761), n);
    let mut record = json!({
        "id": id,
        "createdAt": format!("2026-01-{:02}T08:00:00.000Z", n % 28 + 1),
        "updatedAt": format!("2026-02-01T00:00:{:02}.000Z", n % 60),
        "deletedAt": null,
    });
    if let (Value::Object(record), Value::Object(fields)) = (&mut record, fields) {
        record.extend(fields);
    }
    record
}

pub(super) fn id_of(record: &Value) -> String {
    record["id"].as_str().unwrap_or_default().to_owned()
}

pub(super) enum Db {
    Sqlite { pool: SqlitePool, _dir: tempfile::TempDir },
    Postgres { pool: PgPool, admin_url: String, name: String },
}

impl Db {
    /// A fresh, migrated database on every backend the environment offers.
    pub(super) async fn all() -> Vec<Db> {
        let mut dbs = Vec::new();
        let dir = tempfile::tempdir().expect("a temporary folder");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("read.db"))
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.expect("opening SQLite");
        sqlx::migrate!("migrations/sqlite").run(&pool).await.expect("migrating SQLite");
        dbs.push(Db::Sqlite { pool, _dir: dir });
        if let Some(admin_url) = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "twenty_mirror_read_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let mut admin =
                sqlx::PgConnection::connect(&admin_url).await.expect("connecting to TEST_DATABASE_URL");
            admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("creating a database");
            let options: sqlx::postgres::PgConnectOptions = admin_url.parse().expect("a PostgreSQL URL");
            let pool = PgPool::connect_with(options.database(&name)).await.expect("connecting");
            sqlx::migrate!("migrations/postgres").run(&pool).await.expect("migrating PostgreSQL");
            dbs.push(Db::Postgres { pool, admin_url, name });
        }
        dbs
    }

    pub(super) fn backend(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres { .. } => "postgres",
        }
    }

    /// Stores records as the mirror holds them: the life-cycle columns from the record.
    pub(super) async fn insert(&self, records: &[Value]) {
        for record in records {
            let timestamp = |key: &str| record[key].as_str().map(str::to_owned);
            let (id, data) = (id_of(record), record.to_string());
            let (updated, deleted) = (timestamp("updatedAt"), timestamp("deletedAt"));
            let result = match self {
                Db::Sqlite { pool, .. } => sqlx::query(
                    "INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, source) \
                     VALUES (?, ?, ?, ?, ?, 'reconcile')",
                )
                .bind(OBJECT)
                .bind(id)
                .bind(data)
                .bind(updated)
                .bind(deleted)
                .execute(pool)
                .await
                .map(drop),
                Db::Postgres { pool, .. } => sqlx::query(
                    "INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, source) \
                     VALUES ($1, $2, $3::jsonb, $4::timestamptz, $5::timestamptz, 'reconcile')",
                )
                .bind(OBJECT)
                .bind(id)
                .bind(data)
                .bind(updated)
                .bind(deleted)
                .execute(pool)
                .await
                .map(drop),
            };
            result.expect("inserting a record");
        }
    }

    /// Marks a record destroyed, as a `destroyed` event does.
    pub(super) async fn destroy(&self, id: &str) {
        let result = match self {
            Db::Sqlite { pool, .. } => sqlx::query(
                "UPDATE twenty_records SET destroyed_at = '2026-03-01T00:00:00.000Z' WHERE id = ?",
            )
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
            Db::Postgres { pool, .. } => {
                sqlx::query("UPDATE twenty_records SET destroyed_at = now() WHERE id = $1")
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(drop)
            }
        };
        result.expect("destroying a record");
    }

    pub(super) async fn list(&self, query: &ListQuery) -> Listing {
        let listing = match self {
            Db::Sqlite { pool, .. } => sqlite::listing(pool, OBJECT, query).await,
            Db::Postgres { pool, .. } => postgres::listing(pool, OBJECT, query).await,
        };
        listing.unwrap_or_else(|e| panic!("{}: listing failed: {e:?}", self.backend())).0
    }

    /// Lists with query-string parameters.
    pub(super) async fn get(&self, params: &[(&str, &str)]) -> Listing {
        let query = parse_list(&ListParams::from_pairs(params.iter().copied()), &schema())
            .unwrap_or_else(|e| panic!("{params:?} are invalid: {e}"));
        self.list(&query).await
    }

    /// The ids a filter selects, in the default order, and its `totalCount`.
    pub(super) async fn ids(&self, filter: &str) -> (Vec<String>, i64) {
        let listing = self.get(&[("filter", filter), ("limit", "200")]).await;
        (listing.page.records.iter().map(|r| r.id.clone()).collect(), listing.total_count)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Db::Postgres { admin_url, name, .. } = self else { return };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs outside any async context we can rely on: use a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                admin.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
                Ok::<_, sqlx::Error>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {dropped:?}");
        }
    }
}

/// The records of the tests, by number: nulls, empty texts, values of the wrong type, ties,
/// offsets and microseconds, a soft-deleted record (8) and a destroyed one (9).
pub(super) fn fixture() -> Vec<Value> {
    let mut records = vec![
        record(
            1,
            json!({
                "name": {"firstName": "Ada", "lastName": "Lovelace"}, "city": "Paris", "employees": 10,
                "stage": "MEETING", "amount": {"amountMicros": 125_000_000, "currencyCode": "USD"},
                "closeDate": "2026-01-01T10:00:00.123Z", "active": true, "tags": ["HOT"],
                "emails": {"primaryEmail": "ada@x.io", "additionalEmails": null}, "companyId": "c1",
            }),
        ),
        record(
            2,
            json!({
                "name": {"firstName": "Émile", "lastName": ""}, "city": "paris", "employees": 2.5,
                "stage": "NEW", "amount": {"amountMicros": "250000000", "currencyCode": ""},
                "closeDate": "2026-01-01T11:00:00.123+01:00", "active": false, "tags": ["COLD", "WARM"],
                "emails": {"primaryEmail": "", "additionalEmails": ["e@x.io"]},
            }),
        ),
        record(
            3,
            json!({
                "name": {"firstName": "", "lastName": null}, "city": null, "employees": null, "stage": null,
                "amount": null, "closeDate": null, "active": null, "tags": null, "emails": null,
            }),
        ),
        record(
            4,
            json!({
                "name": {"firstName": "zoe"}, "city": "", "employees": 1000, "stage": "CUSTOMER",
                "amount": {"amountMicros": null, "currencyCode": null},
                "closeDate": "2026-01-01T10:00:00.123456Z", "active": true, "tags": [],
            }),
        ),
        record(
            5,
            json!({
                "name": {"firstName": "Zoe"}, "city": "Zurich", "employees": "abc", "stage": "SCREENING",
                "amount": {"amountMicros": -5, "currencyCode": "EUR"}, "closeDate": "2025-12-31T23:59:59.999Z",
                "active": false, "tags": ["WARM"],
            }),
        ),
        record(
            6,
            json!({
                "name": {"firstName": "Bob_1"}, "city": "O'Brien (EU), 50% off", "employees": -3,
                "stage": "MEETING", "closeDate": "2026-03-01T00:00:00.000Z", "tags": ["HOT", "COLD"],
            }),
        ),
        record(
            7,
            json!({
                "name": {"firstName": "Ada", "lastName": "Byron"}, "city": "Paris", "employees": 10,
                "stage": "NEW", "closeDate": "2026-01-01T10:00:00.124Z", "active": true,
                "updatedAt": "2026-02-01T00:00:01.000Z",
            }),
        ),
        record(8, json!({"city": "Paris", "employees": 10, "deletedAt": "2026-02-02T00:00:00.000Z"})),
        record(9, json!({"city": "Paris", "employees": 10})),
        record(
            10,
            json!({
                "name": {"firstName": "ada"}, "employees": 7, "stage": "LEGACY", "closeDate": "garbage",
            }),
        ),
    ];
    records.sort_by_key(id_of);
    records
}

/// The id of fixture record `n`.
pub(super) fn nth(n: u32) -> String {
    id_of(&record(n, json!({})))
}

/// Every backend, each holding the fixture (record 9 destroyed).
pub(super) async fn seeded() -> Vec<Db> {
    let dbs = Db::all().await;
    for db in &dbs {
        db.insert(&fixture()).await;
        db.destroy(&nth(9)).await;
    }
    dbs
}

impl Db {
    /// Changes a record's `updatedAt`, as a later write would.
    pub(super) async fn touch(&self, id: &str, updated_at: &str) {
        let result = match self {
            Db::Sqlite { pool, .. } => sqlx::query(
                "UPDATE twenty_records SET data = json_set(data, '$.updatedAt', ?1), updated_at = ?1 WHERE id = ?2",
            )
            .bind(updated_at)
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
            Db::Postgres { pool, .. } => sqlx::query(
                "UPDATE twenty_records SET data = jsonb_set(data, '{updatedAt}', to_jsonb($1::text)), \
                 updated_at = $1::timestamptz WHERE id = $2",
            )
            .bind(updated_at)
            .bind(id)
            .execute(pool)
            .await
            .map(drop),
        };
        result.expect("updating a record");
    }
}
