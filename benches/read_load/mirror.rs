//! The mirror the bench reads: `person` records of about 1.1 to 2.2 KB (1.5 KB on average; every
//! 33rd soft-deleted), built by the database itself, and the `person` object as discovery would
//! have stored it, so that the read API serves it.

use serde_json::{Value, json};
use twenty_mirror::mirror::{ObjectRow, Pool, Store};

use crate::support::people::{POSTGRES_PEOPLE, SQLITE_PEOPLE};

/// `createdAt` and `updatedAt` of record `i` are this plus 7 i and 8 i seconds (2026-01-01).
pub const EPOCH_SECONDS: i64 = 1_767_225_600;

/// The fields of `person` as Twenty's metadata API describes them.
fn person_fields() -> Value {
    let field = |name: &str, kind: &str| json!({"name": name, "type": kind, "isActive": true});
    json!([
        field("id", "UUID"), field("createdAt", "DATE_TIME"), field("updatedAt", "DATE_TIME"),
        field("deletedAt", "DATE_TIME"), field("name", "FULL_NAME"), field("emails", "EMAILS"),
        field("phones", "PHONES"), field("linkedinLink", "LINKS"), field("xLink", "LINKS"),
        field("jobTitle", "TEXT"), field("city", "TEXT"), field("avatarUrl", "TEXT"),
        field("position", "POSITION"), field("createdBy", "ACTOR"), field("intro", "TEXT"),
        {"name": "company", "type": "RELATION", "isActive": true,
         "relation": {"type": "MANY_TO_ONE", "targetObjectMetadata": {"nameSingular": "company"}}},
    ])
}

/// Loads `records` people into a migrated store and records the object as discovered.
pub async fn load(store: &Store, records: usize) {
    let row = ObjectRow {
        name_singular: "person".into(),
        name_plural: "people".into(),
        label_singular: "Person".into(),
        label_plural: "People".into(),
        metadata_id: "00000000-0000-4000-8000-000000000001".into(),
        is_custom: false,
        fields: person_fields(),
        mirrored: true,
    };
    store.save_objects(&[row], chrono::Utc::now()).await.expect("saving the object");
    let records = records.to_string();
    match store.pool() {
        Pool::Sqlite(pool) => {
            // No ANALYZE: the service never runs it on SQLite, so its databases have no statistics.
            // With them, SQLite plans a statement again whenever a parameter its statistics could
            // weigh is bound anew, and every statement of the service binds the object.
            sqlx::raw_sql(&SQLITE_PEOPLE.replace("{records}", &records))
                .execute(pool)
                .await
                .expect("loading");
            // The load is 1.5 GB of WAL at a million records; copied back by the service's own
            // checkpoint, it would keep a core busy through the first measurements.
            sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await.expect("checkpointing");
        }
        Pool::Postgres(pool) => {
            sqlx::raw_sql(&POSTGRES_PEOPLE.replace("{records}", &records))
                .execute(pool)
                .await
                .expect("loading");
            sqlx::raw_sql("VACUUM ANALYZE twenty_records").execute(pool).await.expect("analyzing");
        }
    }
}

/// The id of record `i`.
pub fn id(i: usize) -> String {
    format!("{i:08}-0000-4000-8000-{i:012}")
}
