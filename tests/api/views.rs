//! The typed views as a reader sees them, on either backend: made by discovery at each reconcile
//! and after a `metadata.*` webhook, one column per field with its type, following Twenty's schema,
//! safe against hostile names, never taking a name the service did not create.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use twenty_mirror::mirror::{Mode, RunStatus, Store, Trigger};
use twenty_mirror::sync::status::status;
use twenty_mirror::sync::{RunOutcome, RunRequest};

use crate::helpers::binary::twenty_mirror;
use crate::helpers::fake_twenty::FakeTwenty;
use crate::helpers::views::Reader;
use crate::helpers::{Options, TestApp, TestDb, eventually, fresh_store, reconciler};

async fn reconcile(store: &Store, fake: &FakeTwenty, mode: Mode) -> RunOutcome {
    let outcome = reconciler(store, fake, |_, _| {})
        .reconcile_once(RunRequest::new(Trigger::Operator, mode))
        .await
        .expect("a run");
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    outcome
}

/// A field of every type of the protocol notes (section 6), beside the standard ones (`id`,
/// `createdAt`, `updatedAt`, `deletedAt`, `createdBy` ACTOR, `position`, `name`), and three that
/// are not columns.
fn every_type() -> Vec<Value> {
    let field = |name: &str, kind: &str| json!({"name": name, "type": kind});
    vec![
        field("note", "TEXT"),
        field("score", "NUMBER"),
        field("active", "BOOLEAN"),
        field("dueAt", "DATE_TIME"),
        field("birthday", "DATE"),
        field("stage", "SELECT"),
        field("tags", "MULTI_SELECT"),
        field("rating", "RATING"),
        field("amount", "CURRENCY"),
        field("fullName", "FULL_NAME"),
        field("emails", "EMAILS"),
        field("phones", "PHONES"),
        field("domainName", "LINKS"),
        field("address", "ADDRESS"),
        field("body", "RICH_TEXT_V2"),
        field("extra", "RAW_JSON"),
        field("aliases", "ARRAY"),
        field("externalId", "UUID"),
        json!({"name": "company", "type": "RELATION", "relation": {"type": "MANY_TO_ONE"}}),
        json!({"name": "tasks", "type": "RELATION", "relation": {"type": "ONE_TO_MANY"}}),
        field("searchVector", "TS_VECTOR"),
        json!({"name": "legacy", "type": "TEXT", "isActive": false}),
    ]
}

const COMPANY_ID: &str = "5b0c2f38-46c1-4b0e-9d8f-4b7c0f1d2e3a";

fn full_record() -> Value {
    json!({
        "createdAt": "2026-09-20T08:00:00.000Z",
        "createdBy": {"source": "MANUAL", "workspaceMemberId": "m-1", "name": "Ada Lovelace",
                      "context": {"provider": "google"}},
        "position": 1.5,
        "name": "Acme renewal",
        "note": "",
        "score": 12.5,
        "active": true,
        "dueAt": "2026-09-21T10:15:30.412Z",
        "birthday": "1990-05-17",
        "stage": "NEW",
        "tags": ["A", "B"],
        "rating": "RATING_3",
        "amount": {"amountMicros": "125000000", "currencyCode": "EUR"},
        "fullName": {"firstName": "Ada", "lastName": "Lovelace"},
        "emails": {"primaryEmail": "ada@example.com", "additionalEmails": ["a@example.org"]},
        "phones": {"primaryPhoneNumber": "612345678", "primaryPhoneCountryCode": "FR",
                   "primaryPhoneCallingCode": "+33", "additionalPhones": [{"number": "1"}]},
        "domainName": {"primaryLinkUrl": "https://acme.example", "primaryLinkLabel": "Acme",
                       "secondaryLinks": [{"url": "https://b.example", "label": "b"}]},
        "address": {"addressStreet1": "1 rue de Rivoli", "addressStreet2": null, "addressCity": "Paris",
                    "addressPostcode": "75001", "addressState": "IDF", "addressCountry": "France",
                    "addressLat": 48.8566, "addressLng": 2.3522},
        "body": {"blocknote": "[]", "markdown": "# Hi"},
        "extra": {"k": 1},
        "aliases": ["acme", "acme inc"],
        "externalId": "ext-1",
        "companyId": COMPANY_ID,
        "searchVector": "'acme':1",
        "legacy": "gone",
    })
}

/// Values of the wrong type for their fields: each column is NULL, the view still answers.
fn misfit_record() -> Value {
    json!({
        "note": 42,
        "score": "many",
        "active": "yes",
        "dueAt": "not a date",
        "birthday": "2026-02-30",
        "tags": "A",
        "amount": {"amountMicros": "12x", "currencyCode": "EUR"},
        "address": {"addressLat": "north"},
        "extra": null,
        "aliases": {"not": "an array"},
    })
}

/// `(column, on PostgreSQL, on SQLite)` of the full record.
fn expected_full() -> Vec<(&'static str, Value, Value)> {
    let same = |column, value: Value| (column, value.clone(), value);
    vec![
        same("name", json!("Acme renewal")),
        same("note", json!("")),
        same("score", json!(12.5)),
        ("active", json!(true), json!(1)),
        ("due_at", json!("2026-09-21T10:15:30.412+00:00"), json!("2026-09-21T10:15:30.412Z")),
        ("created_at", json!("2026-09-20T08:00:00+00:00"), json!("2026-09-20T08:00:00.000Z")),
        same("birthday", json!("1990-05-17")),
        same("stage", json!("NEW")),
        ("tags", json!(["A", "B"]), json!(r#"["A","B"]"#)),
        same("rating", json!("RATING_3")),
        same("amount_amount_micros", json!(125_000_000)),
        same("amount_currency_code", json!("EUR")),
        same("full_name_first_name", json!("Ada")),
        same("full_name_last_name", json!("Lovelace")),
        same("emails_primary_email", json!("ada@example.com")),
        ("emails_additional_emails", json!(["a@example.org"]), json!(r#"["a@example.org"]"#)),
        same("phones_primary_phone_number", json!("612345678")),
        same("phones_primary_phone_country_code", json!("FR")),
        same("phones_primary_phone_calling_code", json!("+33")),
        ("phones_additional_phones", json!([{"number": "1"}]), json!(r#"[{"number":"1"}]"#)),
        same("domain_name_primary_link_url", json!("https://acme.example")),
        same("domain_name_primary_link_label", json!("Acme")),
        (
            "domain_name_secondary_links",
            json!([{"url": "https://b.example", "label": "b"}]),
            json!(r#"[{"label":"b","url":"https://b.example"}]"#),
        ),
        same("address_address_street1", json!("1 rue de Rivoli")),
        same("address_address_street2", Value::Null),
        same("address_address_city", json!("Paris")),
        same("address_address_postcode", json!("75001")),
        same("address_address_state", json!("IDF")),
        same("address_address_country", json!("France")),
        same("address_address_lat", json!(48.8566)),
        same("address_address_lng", json!(2.3522)),
        same("created_by_source", json!("MANUAL")),
        same("created_by_workspace_member_id", json!("m-1")),
        same("created_by_name", json!("Ada Lovelace")),
        ("created_by_context", json!({"provider": "google"}), json!(r#"{"provider":"google"}"#)),
        same("position", json!(1.5)),
        same("body_blocknote", json!("[]")),
        same("body_markdown", json!("# Hi")),
        ("extra", json!({"k": 1}), json!(r#"{"k":1}"#)),
        ("aliases", json!(["acme", "acme inc"]), json!(r#"["acme","acme inc"]"#)),
        same("external_id", json!("ext-1")),
        same("company_id", json!(COMPANY_ID)),
        same("deleted_at", Value::Null),
    ]
}

/// PostgreSQL's type of each typed column (the others are text).
const POSTGRES_TYPES: &[(&str, &str)] = &[
    ("score", "double precision"),
    ("position", "double precision"),
    ("address_address_lat", "double precision"),
    ("address_address_lng", "double precision"),
    ("active", "boolean"),
    ("due_at", "timestamp with time zone"),
    ("created_at", "timestamp with time zone"),
    ("updated_at", "timestamp with time zone"),
    ("deleted_at", "timestamp with time zone"),
    ("birthday", "date"),
    ("amount_amount_micros", "bigint"),
    ("tags", "text[]"),
    ("aliases", "text[]"),
    ("emails_additional_emails", "jsonb"),
    ("extra", "jsonb"),
    ("created_by_context", "jsonb"),
    ("domain_name_secondary_links", "jsonb"),
    ("phones_additional_phones", "jsonb"),
];

#[tokio::test]
async fn every_field_type_lands_in_its_typed_column_and_a_misfit_is_null() {
    let fake = FakeTwenty::start().await;
    fake.add_object_with_fields("everything", "everythings", every_type());
    let full = fake.create("everything", full_record());
    let misfit = fake.create("everything", misfit_record());
    let deleted = fake.create("everything", json!({"name": "soft-deleted"}));
    fake.soft_delete("everything", deleted["id"].as_str().unwrap());
    let (db, store) = fresh_store().await;
    reconcile(&store, &fake, Mode::Full).await;

    let mut reader = Reader::open(&db).await;
    let views = reader.views().await;
    assert_eq!(views, ["company", "everything", "opportunity", "person"], "one view per mirrored object");
    let columns = reader.columns("everything").await;
    let names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    for not_a_column in ["tasks", "tasks_id", "search_vector", "legacy"] {
        assert!(!names.contains(&not_a_column), "{not_a_column} is not a column: {names:?}");
    }
    assert_eq!(names[0], "id");
    if reader.is_postgres() {
        for (column, kind) in POSTGRES_TYPES {
            let found = columns.iter().find(|(name, _)| name == column).map(|(_, t)| t.as_str());
            assert_eq!(found, Some(*kind), "{column}");
        }
        for (name, kind) in &columns {
            if !POSTGRES_TYPES.iter().any(|(column, _)| column == name) {
                assert_eq!(kind, "text", "{name}");
            }
        }
    } else {
        let relation = reader.relation("everything");
        let id = full["id"].as_str().unwrap();
        let types = reader
            .text(&format!(
                "SELECT typeof(score) || typeof(active) || typeof(amount_amount_micros) || typeof(due_at) \
                 || typeof(address_address_lat) FROM {relation} WHERE id = '{id}'"
            ))
            .await;
        assert_eq!(types.as_deref(), Some("realintegerintegertextreal"));
    }

    let rows = reader.rows("everything").await;
    let live = store.object_counts().await.unwrap().into_iter().find(|c| c.object == "everything").unwrap();
    assert_eq!(rows.len() as i64, live.live, "the view holds the live records, not the soft-deleted one");
    assert_eq!(rows.len(), 2);
    let row = |id: &Value| rows.iter().find(|r| r["id"] == *id).expect("the record's row").clone();
    let full_row = row(&full["id"]);
    for (column, on_postgres, on_sqlite) in expected_full() {
        let expected = if reader.is_postgres() { on_postgres } else { on_sqlite };
        assert_eq!(full_row[column], expected, "{column}");
    }
    let misfit_row = row(&misfit["id"]);
    assert_eq!(misfit_row["note"], json!("42"), "a number in a text field is its JSON text");
    for column in [
        "score",
        "active",
        "due_at",
        "birthday",
        "tags",
        "amount_amount_micros",
        "address_address_lat",
        "extra",
        "aliases",
        "full_name_first_name",
    ] {
        assert_eq!(misfit_row[column], Value::Null, "{column} of a misfit is NULL");
    }
    assert_eq!(misfit_row["amount_currency_code"], json!("EUR"));
}

#[tokio::test]
async fn the_views_follow_fields_added_and_deactivated_objects_renamed_and_objects_no_longer_mirrored() {
    let fake = FakeTwenty::start().await;
    let person = fake.create("person", json!({"city": "Paris", "jobTitle": "CTO"}));
    let (db, store) = fresh_store().await;
    reconcile(&store, &fake, Mode::Full).await;
    let mut before = Reader::open(&db).await;
    assert!(before.columns("person").await.iter().any(|(name, _)| name == "city"));

    fake.add_field("person", json!({"name": "linkedinLink", "type": "LINKS"}));
    fake.set_field_active("person", "city", false);
    fake.rename_object("opportunity", "deal", "deals");
    fake.update(
        "person",
        person["id"].as_str().unwrap(),
        json!({"linkedinLink": {"primaryLinkUrl": "https://l.in/a"}}),
    );
    // A delta pass discovers too.
    reconcile(&store, &fake, Mode::Delta).await;

    let mut reader = Reader::open(&db).await;
    let columns: Vec<String> = reader.columns("person").await.into_iter().map(|(name, _)| name).collect();
    assert!(columns.contains(&"linkedin_link_primary_link_url".to_owned()), "{columns:?}");
    assert!(!columns.contains(&"city".to_owned()), "a deactivated field disappears: {columns:?}");
    assert!(columns.contains(&"job_title".to_owned()));
    let rows = reader.rows("person").await;
    assert_eq!(rows[0]["linkedin_link_primary_link_url"], json!("https://l.in/a"));
    assert_eq!(reader.views().await, ["company", "deal", "person"], "the renamed object's view is renamed");

    // An object no longer mirrored (TWENTY_OBJECTS) loses its view.
    let narrowed = reconciler(&store, &fake, |_, settings| settings.allowlist = Some(vec!["person".into()]));
    let outcome = narrowed.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Delta)).await.unwrap();
    assert_eq!(outcome.status, RunStatus::Succeeded, "{:?}", outcome.error);
    assert_eq!(Reader::open(&db).await.views().await, ["person"]);
}

/// Names a hostile or careless Twenty server could send: quotes, semicolons, spaces, SQL keywords,
/// comment markers, and names past PostgreSQL's 63 bytes, two of them alike in their first 63.
fn hostile_fields() -> Vec<Value> {
    let long = "a".repeat(70);
    [
        "it's",
        "x\"; DROP TABLE twenty_records; --",
        "x; DROP TABLE twenty_records; --",
        "a;b",
        "first name",
        "select",
        "order",
        "from",
        "/* c */",
        &format!("{long}One"),
        &format!("{long}Two"),
    ]
    .iter()
    .map(|name| json!({"name": name, "type": "TEXT"}))
    .collect()
}

#[tokio::test]
async fn hostile_names_leave_the_mirrors_tables_intact() {
    let fake = FakeTwenty::start().await;
    fake.add_object_with_fields("hostile", "hostiles", hostile_fields());
    fake.add_object_with_fields("twenty_records", "twentyRecordsObjects", vec![]);
    fake.add_object_with_fields("drop table person; --", "dropTables", vec![]);
    let long = "a".repeat(70);
    fake.create(
        "hostile",
        json!({"it's": "quote", "a;b": "semicolon", "first name": "space", "select": "keyword", "order": "o",
               format!("{long}One"): "one", format!("{long}Two"): "two"}),
    );
    fake.create("twenty_records", json!({"name": "collides"}));
    let (db, store) = fresh_store().await;
    let outcome = reconcile(&store, &fake, Mode::Full).await;

    let mut reader = Reader::open(&db).await;
    let records = reader.integer("SELECT count(*) FROM twenty_records").await;
    assert_eq!(records, outcome.counts.fetched, "every record is still in twenty_records");
    let views = reader.views().await;
    assert!(views.contains(&"twenty_records_2".to_owned()), "{views:?}");
    assert!(views.contains(&"drop_table_person_".to_owned()), "{views:?}");
    assert!(views.contains(&"person".to_owned()));

    let columns: Vec<String> = reader.columns("hostile").await.into_iter().map(|(name, _)| name).collect();
    for name in
        ["it_s", "x_drop_table_twenty_records_", "a_b", "first_name", "select", "order", "from", "_c_"]
    {
        assert!(columns.iter().any(|c| c == name), "{name} in {columns:?}");
    }
    let views = store.views().await.unwrap();
    let plan = views.iter().find(|v| v.name == "hostile").and_then(|v| v.plan.as_ref()).unwrap();
    let skipped: Vec<&str> = plan.skipped.iter().map(|s| s.field.as_str()).collect();
    assert!(
        skipped.contains(&"x\"; DROP TABLE twenty_records; --"),
        "a name with a double quote is skipped: {skipped:?}"
    );
    let long_columns: Vec<&String> = columns.iter().filter(|c| c.starts_with("aaaa")).collect();
    assert_eq!(long_columns.len(), 2, "two long names stay two columns: {columns:?}");
    assert!(long_columns.iter().all(|c| c.len() <= 63), "{long_columns:?}");
    let row = reader.rows("hostile").await.remove(0);
    assert_eq!(
        (row["select"].as_str(), row["order"].as_str(), row["first_name"].as_str()),
        (Some("keyword"), Some("o"), Some("space"))
    );
    let (one, two) = (&row[long_columns[0].as_str()], &row[long_columns[1].as_str()]);
    assert_eq!([one.as_str(), two.as_str()].iter().flatten().count(), 2);
    assert_ne!(one, two);
    let rows = reader.rows("twenty_records_2").await;
    assert_eq!(rows[0]["name"], json!("collides"));
}

#[tokio::test]
async fn a_table_the_service_did_not_create_keeps_its_name_and_status_says_so() {
    let fake = FakeTwenty::start().await;
    fake.create("person", json!({"city": "Lyon"}));
    let (db, store) = fresh_store().await;
    let mut reader = Reader::open(&db).await;
    let theirs = reader.relation("person");
    reader.execute(&format!("CREATE TABLE {theirs} (note text)")).await;
    reader.execute(&format!("INSERT INTO {theirs} (note) VALUES ('mine')")).await;
    reconcile(&store, &fake, Mode::Full).await;
    reconcile(&store, &fake, Mode::Delta).await;

    let mut reader = Reader::open(&db).await;
    assert_eq!(reader.text(&format!("SELECT note FROM {theirs}")).await.as_deref(), Some("mine"));
    let views = reader.views().await;
    assert!(views.contains(&"person_2".to_owned()) && !views.contains(&"person".to_owned()), "{views:?}");
    assert_eq!(reader.integer(&format!("SELECT count(*) FROM {}", reader.relation("person_2"))).await, 1);

    let report = status(&store, Utc::now()).await.unwrap();
    let person = report.objects.iter().find(|o| o.object == "person").unwrap();
    let company = report.objects.iter().find(|o| o.object == "company").unwrap();
    let (person_view, company_view) =
        if db.is_postgres() { ("twenty.person_2", "twenty.company") } else { ("person_2", "company") };
    assert_eq!(person.view.as_deref(), Some(person_view));
    let note = person.view_note.as_deref().unwrap_or_default();
    assert!(note.contains("did not create"), "{note}");
    assert_eq!((company.view.as_deref(), company.view_note.as_deref()), (Some(company_view), None));
    let table = report.to_table();
    assert!(table.contains(&format!("{person_view} (*)")) && table.contains("did not create"), "{table}");
}

fn app_options(fake: &FakeTwenty) -> Options {
    Options::default()
        .var("TWENTY_API_URL", fake.url())
        .var("TWENTY_API_KEY", FakeTwenty::API_KEY)
        .var("RECONCILE_INTERVAL", "off")
        .var("FULL_SWEEP_INTERVAL", "off")
}

fn metadata_event(name: &str) -> Value {
    json!({
        "targetUrl": crate::helpers::fake_twenty::WEBHOOK_TARGET_URL,
        "eventName": name,
        "workspaceId": FakeTwenty::WORKSPACE_ID,
        "webhookId": crate::helpers::fake_twenty::WEBHOOK_ID,
        "eventDate": "2026-09-21T10:20:02.877Z",
        "event": {"name": "linkedinLink"},
    })
}

fn metadata_requests(fake: &FakeTwenty) -> usize {
    fake.requests().iter().filter(|r| r.path == "/rest/metadata/objects").count()
}

#[tokio::test]
async fn a_burst_of_metadata_webhooks_makes_one_rediscovery() {
    let fake = FakeTwenty::start().await;
    let app = TestApp::spawn_with(app_options(&fake)).await;
    assert_eq!(metadata_requests(&fake), 0, "no run at boot with the schedule off");
    fake.add_field("person", json!({"name": "linkedinLink", "type": "LINKS"}));
    for event in [
        "metadata.fieldMetadata.created",
        "metadata.fieldMetadata.updated",
        "metadata.objectMetadata.updated",
    ] {
        let (status, outcome) = app.deliver_json(&metadata_event(event)).await;
        assert_eq!((status, outcome.as_deref()), (200, Some("ignored")));
    }
    let db = &app.db;
    let made = eventually(Duration::from_secs(10), || async move {
        let mut reader = Reader::open(db).await;
        reader.columns("person").await.iter().any(|(name, _)| name == "linkedin_link_primary_link_url")
    })
    .await;
    assert!(made, "the rediscovery made the person view with the new field");
    tokio::time::sleep(twenty_mirror::sync::rediscovery::DEBOUNCE * 2).await;
    assert_eq!(metadata_requests(&fake), 1, "one rediscovery for the burst: {:?}", fake.requests());
    assert_eq!(fake.request_count(), 1, "a rediscovery reads no records");
}

#[tokio::test]
async fn without_the_reconciler_a_metadata_webhook_is_acknowledged_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (status, outcome) = app.deliver_json(&metadata_event("metadata.objectMetadata.created")).await;
    assert_eq!((status, outcome.as_deref()), (200, Some("ignored")));
    tokio::time::sleep(twenty_mirror::sync::rediscovery::DEBOUNCE * 2).await;
    assert!(Reader::open(&app.db).await.views().await.is_empty());
    assert_eq!(app.events().await.len(), 1, "the delivery is in the event log");
}

#[tokio::test]
async fn the_views_command_lists_columns_and_types_and_prints_the_statements() {
    let fake = FakeTwenty::start().await;
    let db = TestDb::new().await;
    let empty = twenty_mirror().env("DATABASE_URL", &db.url).arg("views").output().expect("running views");
    assert_eq!(empty.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no typed views yet"));
    fake.create("person", json!({"name": {"firstName": "Ada"}}));
    let reconciled = twenty_mirror()
        .env("DATABASE_URL", &db.url)
        .env("TWENTY_API_URL", fake.url())
        .env("TWENTY_API_KEY", FakeTwenty::API_KEY)
        .arg("reconcile")
        .output()
        .expect("running reconcile");
    assert_eq!(reconciled.status.code(), Some(0), "{}", String::from_utf8_lossy(&reconciled.stderr));
    let log = String::from_utf8_lossy(&reconciled.stderr);
    let skip = log.lines().find(|l| l.contains("a field is not a column of its view")).unwrap_or_default();
    assert!(
        skip.contains("\"people\"") && skip.contains("one-to-many"),
        "the run logs what was skipped: {log}"
    );

    let listed = twenty_mirror().env("DATABASE_URL", &db.url).arg("views").output().expect("running views");
    assert_eq!(listed.status.code(), Some(0), "{}", String::from_utf8_lossy(&listed.stderr));
    let text = String::from_utf8_lossy(&listed.stdout);
    let person = if db.is_postgres() { "twenty.person" } else { "person" };
    assert!(text.contains(&format!("{person} (object person,")), "{text}");
    let first_name = text.lines().find(|l| l.trim_start().starts_with("name_first_name")).unwrap_or_default();
    assert!(first_name.contains("name.firstName (FULL_NAME)"), "{text}");
    let with_type = |column: &str, kind: &str| {
        text.lines().any(|l| l.trim_start().starts_with(column) && l.contains(kind))
    };
    let (timestamp, double) = if db.is_postgres() {
        ("timestamp with time zone", "double precision")
    } else {
        ("TEXT (UTC", "REAL")
    };
    assert!(with_type("created_at", timestamp) && with_type("position", double), "{text}");
    assert!(text.contains("not a column: people ("), "company's one-to-many relation: {text}");

    let sql =
        twenty_mirror().env("DATABASE_URL", &db.url).args(["views", "--sql"]).output().expect("views --sql");
    assert_eq!(sql.status.code(), Some(0));
    let statements = String::from_utf8_lossy(&sql.stdout);
    let create = if db.is_postgres() {
        "CREATE VIEW twenty.\"person\" AS SELECT"
    } else {
        "CREATE VIEW main.\"person\" AS SELECT"
    };
    assert!(statements.contains(create), "{statements}");
    assert_eq!(statements.matches("CREATE VIEW").count(), 3, "{statements}");

    let broken = twenty_mirror()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .arg("views")
        .output()
        .unwrap();
    assert_eq!(broken.status.code(), Some(1), "a database that does not answer is a failure");
}

#[tokio::test]
async fn a_discovery_that_changes_nothing_leaves_the_views_alone_and_a_new_field_replaces_its_view() {
    let fake = FakeTwenty::start().await;
    let (db, store) = fresh_store().await;
    let rec = reconciler(&store, &fake, |_, _| {});
    rec.discover().await.expect("a discovery");
    let unchanged = store.save_objects(&store.objects().await.unwrap(), Utc::now()).await.unwrap();
    assert!(
        unchanged.views.iter().all(|v| v.outcome == twenty_mirror::mirror::views::ViewOutcome::Unchanged)
    );
    fake.add_field("company", json!({"name": "tier", "type": "SELECT"}));
    rec.discover().await.expect("a discovery");
    let stored = store.objects().await.unwrap();
    let company = stored.iter().find(|o| o.name_singular == "company").unwrap();
    assert!(company.fields.as_array().unwrap().iter().any(|f| f["name"] == "tier"));
    let columns = Reader::open(&db).await.columns("company").await;
    assert!(columns.iter().any(|(name, _)| name == "tier"));
}
