//! The mirror the bench reads: `person` records of about 1.1 to 2.2 KB (1.5 KB on average; every
//! 33rd soft-deleted), built by the database itself, and the `person` object as discovery would
//! have stored it, so that the read API serves it.

use serde_json::{Value, json};
use twenty_mirror::mirror::{ObjectRow, Pool, Store};

/// The records, the same on both backends (those of `views_load`). Record `i` has id
/// `{i:08}-0000-4000-8000-{i:012}`, `createdAt` 2026-01-01 plus 7 i seconds, `updatedAt` plus 8 i.
const SQLITE_PEOPLE: &str = r#"
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {records})
INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, destroyed_at, source)
SELECT 'person', id, json_object(
    'id', id,
    'name', json_object('firstName', 'First' || (i % 100), 'lastName', 'Last' || (i % 300)),
    'emails', json_object('primaryEmail', 'p' || i || '@example.com', 'additionalEmails', json('[]')),
    'phones', json_object('primaryPhoneNumber', printf('6%08d', (i * 7919) % 100000000),
        'primaryPhoneCountryCode', 'FR', 'primaryPhoneCallingCode', '+33', 'additionalPhones', json('[]')),
    'linkedinLink', json_object('primaryLinkUrl', 'https://www.linkedin.com/in/p' || i, 'primaryLinkLabel', '',
        'secondaryLinks', json('[]')),
    'xLink', json_object('primaryLinkUrl', '', 'primaryLinkLabel', '', 'secondaryLinks', json('[]')),
    'jobTitle', CASE i % 4 WHEN 0 THEN 'CEO' WHEN 1 THEN 'CTO' WHEN 2 THEN 'Engineer' ELSE 'Sales' END,
    'city', CASE i % 12 WHEN 0 THEN 'Paris' WHEN 1 THEN 'Lyon' WHEN 2 THEN 'Berlin' WHEN 3 THEN 'London'
        WHEN 4 THEN 'Madrid' WHEN 5 THEN 'Milano' WHEN 6 THEN 'Amsterdam' WHEN 7 THEN 'New York'
        WHEN 8 THEN 'San Francisco' WHEN 9 THEN 'Montréal' WHEN 10 THEN 'Lisboa' ELSE 'Warszawa' END,
    'avatarUrl', '',
    'position', i,
    'companyId', printf('%08d-0000-4000-8000-%012d', i % 500, i % 500),
    'createdBy', json_object('source', 'MANUAL', 'workspaceMemberId', printf('%08d-0000-4000-8000-000000000000', i % 12),
        'name', 'Member', 'context', json('{}')),
    'createdAt', strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i * 7, 'unixepoch'),
    'updatedAt', updated_at,
    'deletedAt', deleted_at,
    'intro', replace(printf('%.*c', 10 + i % 25, '#'), '#', 'met at the conference interested in pricing ')
), updated_at, deleted_at, NULL, 'reconcile'
FROM (SELECT i, printf('%08d-0000-4000-8000-%012d', i, i) AS id,
             strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i * 8, 'unixepoch') AS updated_at,
             CASE WHEN i % 33 = 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i * 8, 'unixepoch') END AS deleted_at
      FROM n)
"#;

const POSTGRES_PEOPLE: &str = r#"
INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, destroyed_at, source)
SELECT 'person', id, jsonb_build_object(
    'id', id,
    'name', jsonb_build_object('firstName', 'First' || (i % 100), 'lastName', 'Last' || (i % 300)),
    'emails', jsonb_build_object('primaryEmail', 'p' || i || '@example.com', 'additionalEmails', '[]'::jsonb),
    'phones', jsonb_build_object('primaryPhoneNumber', '6' || lpad(((i * 7919) % 100000000)::text, 8, '0'),
        'primaryPhoneCountryCode', 'FR', 'primaryPhoneCallingCode', '+33', 'additionalPhones', '[]'::jsonb),
    'linkedinLink', jsonb_build_object('primaryLinkUrl', 'https://www.linkedin.com/in/p' || i,
        'primaryLinkLabel', '', 'secondaryLinks', '[]'::jsonb),
    'xLink', jsonb_build_object('primaryLinkUrl', '', 'primaryLinkLabel', '', 'secondaryLinks', '[]'::jsonb),
    'jobTitle', (ARRAY['CEO', 'CTO', 'Engineer', 'Sales'])[1 + i % 4],
    'city', (ARRAY['Paris', 'Lyon', 'Berlin', 'London', 'Madrid', 'Milano', 'Amsterdam', 'New York',
        'San Francisco', 'Montréal', 'Lisboa', 'Warszawa'])[1 + i % 12],
    'avatarUrl', '',
    'position', i,
    'companyId', lpad((i % 500)::text, 8, '0') || '-0000-4000-8000-' || lpad((i % 500)::text, 12, '0'),
    'createdBy', jsonb_build_object('source', 'MANUAL',
        'workspaceMemberId', lpad((i % 12)::text, 8, '0') || '-0000-4000-8000-000000000000',
        'name', 'Member', 'context', '{}'::jsonb),
    'createdAt', to_char(to_timestamp(1767225600 + i * 7) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'updatedAt', to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'deletedAt', to_char(deleted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'intro', repeat('met at the conference interested in pricing ', 10 + (i % 25)::int)
), updated_at, deleted_at, NULL, 'reconcile'
FROM (SELECT i, lpad(i::text, 8, '0') || '-0000-4000-8000-' || lpad(i::text, 12, '0') AS id,
             to_timestamp(1767225600 + i * 8) AS updated_at,
             CASE WHEN i % 33 = 0 THEN to_timestamp(1767225600 + i * 8) END AS deleted_at
      FROM generate_series(1::bigint, {records}) AS i) AS n
"#;

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
            sqlx::raw_sql(&SQLITE_PEOPLE.replace("{records}", &records))
                .execute(pool)
                .await
                .expect("loading");
            sqlx::raw_sql("ANALYZE").execute(pool).await.expect("analyzing");
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
