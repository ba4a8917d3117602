//! What the views must do, on every backend the harness gives.

use serde_json::{Value, json};

use super::super::{ColumnKind, NameConflict, SkipReason, ViewOutcome};
use super::{Life, TestDb, normalized, outcomes};

/// A field definition as the metadata API gives it (and the suite's fake Twenty serves it).
fn field(name: &str, kind: &str) -> Value {
    json!({
        "id": format!("field-{name}"),
        "name": name,
        "label": name,
        "type": kind,
        "isNullable": true,
        "isActive": true,
        "isSystem": false,
        "isCustom": false,
        "defaultValue": null,
        "options": null,
        "relation": null,
    })
}

fn relation(name: &str, kind: &str) -> Value {
    let mut value = field(name, "RELATION");
    value["relation"] = json!({"type": kind, "targetObjectMetadata": {"nameSingular": "company"}});
    value
}

fn standard_fields() -> Vec<Value> {
    vec![
        field("id", "UUID"),
        field("createdAt", "DATE_TIME"),
        field("updatedAt", "DATE_TIME"),
        field("deletedAt", "DATE_TIME"),
    ]
}

/// An object with a field of every type of the protocol notes.
fn every_type() -> Value {
    let mut fields = standard_fields();
    fields.extend([
        field("createdBy", "ACTOR"),
        field("position", "POSITION"),
        field("title", "TEXT"),
        field("externalId", "UUID"),
        field("employees", "NUMBER"),
        field("ratio", "NUMERIC"),
        field("isVip", "BOOLEAN"),
        field("closeDate", "DATE_TIME"),
        field("birthday", "DATE"),
        field("stage", "SELECT"),
        field("tags", "MULTI_SELECT"),
        field("score", "RATING"),
        field("amount", "CURRENCY"),
        field("name", "FULL_NAME"),
        field("emails", "EMAILS"),
        field("phones", "PHONES"),
        field("domainName", "LINKS"),
        field("address", "ADDRESS"),
        field("notes", "RICH_TEXT_V2"),
        field("payload", "RAW_JSON"),
        field("aliases", "ARRAY"),
        relation("company", "MANY_TO_ONE"),
        relation("people", "ONE_TO_MANY"),
        field("searchVector", "TS_VECTOR"),
    ]);
    Value::Array(fields)
}

fn full_record(id: &str) -> Value {
    json!({
        "id": id,
        "createdAt": "2026-09-20T08:00:00.000Z",
        "updatedAt": "2026-09-21T10:15:30.412Z",
        "deletedAt": null,
        "createdBy": {"source": "API", "workspaceMemberId": "wm-1", "name": "Import key", "context": {"provider": "x"}},
        "position": 3.5,
        "title": "",
        "externalId": "0b6c52a4-2a3e-4d7e-9a51-0f7d3c1e9b11",
        "employees": 250,
        "ratio": "0.125",
        "isVip": true,
        "closeDate": "2026-12-31T23:59:59.999+01:00",
        "birthday": "1990-02-28",
        "stage": "MEETING",
        "tags": ["A", "B"],
        "score": "RATING_4",
        "amount": {"amountMicros": "125000000", "currencyCode": "USD"},
        "name": {"firstName": "Ada", "lastName": "Lovelace"},
        "emails": {"primaryEmail": "ada@example.com", "additionalEmails": ["a@b.c"]},
        "phones": {
            "primaryPhoneNumber": "612345678",
            "primaryPhoneCountryCode": "FR",
            "primaryPhoneCallingCode": "+33",
            "additionalPhones": [],
        },
        "domainName": {
            "primaryLinkUrl": "https://example.com",
            "primaryLinkLabel": "",
            "secondaryLinks": [{"url": "https://x.example", "label": "x"}],
        },
        "address": {
            "addressStreet1": "1 Main St",
            "addressStreet2": null,
            "addressCity": "Paris",
            "addressPostcode": "75001",
            "addressState": "",
            "addressCountry": "France",
            "addressLat": 48.85,
            "addressLng": 2,
        },
        "notes": {"blocknote": "[{\"type\":\"paragraph\"}]", "markdown": "**hi**"},
        "payload": {"nested": [1, 2]},
        "aliases": ["x"],
        "companyId": "c-1",
        "searchVector": "'ada':1",
    })
}

#[tokio::test]
async fn every_field_type_and_sub_field_lands_in_its_column_with_its_type() {
    use ColumnKind::*;
    let expected: &[(&str, ColumnKind, Value)] = &[
        ("id", Text, json!("r1")),
        ("created_at", Timestamp, json!("2026-09-20T08:00:00.000Z")),
        ("updated_at", Timestamp, json!("2026-09-21T10:15:30.412Z")),
        ("deleted_at", Timestamp, json!(null)),
        ("created_by_source", Text, json!("API")),
        ("created_by_workspace_member_id", Text, json!("wm-1")),
        ("created_by_name", Text, json!("Import key")),
        ("created_by_context", Json, json!({"provider": "x"})),
        ("position", Double, json!(3.5)),
        ("title", Text, json!("")),
        ("external_id", Text, json!("0b6c52a4-2a3e-4d7e-9a51-0f7d3c1e9b11")),
        ("employees", Double, json!(250.0)),
        ("ratio", Double, json!(0.125)),
        ("is_vip", Boolean, json!(true)),
        ("close_date", Timestamp, json!("2026-12-31T22:59:59.999Z")),
        ("birthday", Date, json!("1990-02-28")),
        ("stage", Text, json!("MEETING")),
        ("tags", TextArray, json!(["A", "B"])),
        ("score", Text, json!("RATING_4")),
        ("amount_amount_micros", BigInt, json!(125_000_000)),
        ("amount_currency_code", Text, json!("USD")),
        ("name_first_name", Text, json!("Ada")),
        ("name_last_name", Text, json!("Lovelace")),
        ("emails_primary_email", Text, json!("ada@example.com")),
        ("emails_additional_emails", Json, json!(["a@b.c"])),
        ("phones_primary_phone_number", Text, json!("612345678")),
        ("phones_primary_phone_country_code", Text, json!("FR")),
        ("phones_primary_phone_calling_code", Text, json!("+33")),
        ("phones_additional_phones", Json, json!([])),
        ("domain_name_primary_link_url", Text, json!("https://example.com")),
        ("domain_name_primary_link_label", Text, json!("")),
        ("domain_name_secondary_links", Json, json!([{"url": "https://x.example", "label": "x"}])),
        ("address_address_street1", Text, json!("1 Main St")),
        ("address_address_street2", Text, json!(null)),
        ("address_address_city", Text, json!("Paris")),
        ("address_address_postcode", Text, json!("75001")),
        ("address_address_state", Text, json!("")),
        ("address_address_country", Text, json!("France")),
        ("address_address_lat", Double, json!(48.85)),
        ("address_address_lng", Double, json!(2.0)),
        ("notes_blocknote", Text, json!("[{\"type\":\"paragraph\"}]")),
        ("notes_markdown", Text, json!("**hi**")),
        ("payload", Json, json!({"nested": [1, 2]})),
        ("aliases", TextArray, json!(["x"])),
        ("company_id", Text, json!("c-1")),
    ];
    for db in TestDb::all().await {
        db.insert("deal", full_record("r1"), Life::Live).await;
        let report = db.replace(&[("deal", every_type())]).await;
        assert_eq!(outcomes(&report), [("deal", &ViewOutcome::Created)], "{}", db.backend());
        let plan = &report.views[0].plan;
        let planned: Vec<_> = plan.columns.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        let wanted: Vec<_> = expected.iter().map(|(name, kind, _)| (*name, *kind)).collect();
        assert_eq!(planned, wanted);
        let skipped: Vec<_> = plan.skipped.iter().map(|s| (s.field.as_str(), s.reason.clone())).collect();
        assert_eq!(skipped, [("people", SkipReason::OneToMany), ("searchVector", SkipReason::SearchVector)]);

        let rows = db.rows("deal").await;
        assert_eq!(rows.len(), 1);
        let columns: Vec<&String> = rows[0].keys().collect();
        assert_eq!(columns.len(), expected.len(), "{}: {columns:?}", db.backend());
        for (name, kind, value) in expected {
            let read = rows[0].get(*name).unwrap_or_else(|| panic!("{}: no column {name}", db.backend()));
            assert_eq!(&normalized(&db, *kind, read), value, "{}: {name}", db.backend());
        }
    }
}

#[tokio::test]
async fn values_of_the_wrong_type_are_null_and_the_view_still_answers() {
    // Every typed field of `every_type`, each record giving all of them one ill-fitting value.
    // `createdAt` too: on PostgreSQL its column is the record's own, computed on write (0010).
    let typed = [
        "position",
        "employees",
        "ratio",
        "isVip",
        "closeDate",
        "createdAt",
        "birthday",
        "tags",
        "payload",
        "aliases",
    ];
    let hostile = [
        json!("not a value"),
        json!(""),
        json!(42),
        json!(-1.5e300),
        json!(true),
        json!({"a": 1}),
        json!(["a", 1, null, ["b"]]),
        json!("2026-02-30T10:15:30.412Z"),
        json!("2026-09-21T25:00:00.000Z"),
        json!("2026-09-21T10:15:30.412+16:00"),
        json!("294277-01-01T00:00:00.000Z"),
        json!("10:15:30+02:00"),
        json!("2025-02-29"),
        json!("99999999-01-01"),
        json!("1e400"),
        json!("NaN"),
        json!("-9223372036854775808"),
        json!("12345678901234567890"),
        json!("now"),
    ];
    for db in TestDb::all().await {
        for (i, value) in hostile.iter().enumerate() {
            let mut record = full_record(&format!("h{i:02}"));
            for key in typed {
                record[key] = value.clone();
            }
            record["amount"]["amountMicros"] = value.clone();
            record["address"]["addressLat"] = value.clone();
            db.insert("deal", record, Life::Live).await;
        }
        let mut out_of_range = full_record("z1");
        out_of_range["employees"] = json!("__huge__");
        out_of_range["amount"]["amountMicros"] = json!(1e18);
        out_of_range["closeDate"] = json!("2026-09-21");
        let text = out_of_range.to_string().replace("\"__huge__\"", "1e400");
        db.insert_text("deal", &text, Life::Live).await;
        db.insert("deal", full_record("z2"), Life::Live).await;
        db.replace(&[("deal", every_type())]).await;

        // Every row reads, with every column.
        let rows = db.rows("deal").await;
        assert_eq!(rows.len(), hostile.len() + 2, "{}", db.backend());
        let value = |id: &str, column: &str, kind| {
            let row = rows.iter().find(|r| r["id"][1] == json!(id)).expect("the row");
            normalized(&db, kind, &row[column])
        };
        use ColumnKind::*;
        // A string that is no number, date or boolean is NULL in the typed columns.
        for column in ["employees", "ratio", "position", "address_address_lat"] {
            assert_eq!(value("h00", column, Double), Value::Null, "{}: {column}", db.backend());
        }
        assert_eq!(value("h00", "is_vip", Boolean), Value::Null);
        assert_eq!(value("h00", "close_date", Timestamp), Value::Null);
        assert_eq!(value("h00", "birthday", Date), Value::Null);
        assert_eq!(value("h00", "amount_amount_micros", BigInt), Value::Null);
        assert_eq!(value("h00", "tags", TextArray), Value::Null);
        assert_eq!(value("h00", "payload", Json), json!("not a value"));
        // A number fits a number column, and is JSON in a JSON column; `42` is no boolean or date.
        assert_eq!(value("h02", "employees", Double), json!(42.0));
        assert_eq!(value("h02", "amount_amount_micros", BigInt), json!(42));
        assert_eq!(value("h02", "is_vip", Boolean), Value::Null);
        assert_eq!(value("h02", "close_date", Timestamp), Value::Null);
        assert_eq!(value("h03", "amount_amount_micros", BigInt), Value::Null, "not an integer");
        assert_eq!(value("h04", "is_vip", Boolean), json!(true));
        assert_eq!(value("h04", "employees", Double), Value::Null, "a boolean is no number");
        assert_eq!(value("h05", "tags", TextArray), Value::Null, "an object is no array");
        assert_eq!(value("h05", "payload", Json), json!({"a": 1}));
        // Dates that do not exist, and times out of range; and the same of `createdAt`.
        for id in ["h00", "h02", "h04", "h05", "h07", "h08", "h09", "h10", "h11", "h18"] {
            assert_eq!(value(id, "close_date", Timestamp), Value::Null, "{}: {id}", db.backend());
            assert_eq!(value(id, "created_at", Timestamp), Value::Null, "{}: {id}", db.backend());
        }
        for id in ["h12", "h13"] {
            assert_eq!(value(id, "birthday", Date), Value::Null, "{}: {id}", db.backend());
        }
        assert_eq!(value("h14", "employees", Double), Value::Null, "1e400 is beyond double precision");
        assert_eq!(value("h15", "employees", Double), Value::Null, "NaN is no number here");
        for id in ["h16", "h17"] {
            assert_eq!(value(id, "amount_amount_micros", BigInt), Value::Null, "{}: {id}", db.backend());
        }
        assert_eq!(value("h18", "close_date", Timestamp), Value::Null, "'now' is no instant");
        assert_eq!(value("z1", "employees", Double), Value::Null, "{}", db.backend());
        assert_eq!(value("z1", "amount_amount_micros", BigInt), Value::Null, "10^18 is out of range");
        assert_eq!(value("z1", "close_date", Timestamp), Value::Null, "a date alone is no instant");
        assert_eq!(value("z2", "employees", Double), json!(250.0));
        // A filter on a typed column reads every row without failing.
        let filtered = format!(
            "SELECT count(*) FROM {} WHERE close_date > updated_at OR employees > 0",
            db.view("deal")
        );
        assert_eq!(db.count(&filtered).await, 3, "{}", db.backend());
    }
}

#[tokio::test]
async fn a_view_holds_the_live_records_of_its_object_only() {
    for db in TestDb::all().await {
        let record = |id: &str| json!({"id": id, "updatedAt": "2026-09-21T10:00:00.000Z", "city": "Paris"});
        for i in 0..7 {
            db.insert("person", record(&format!("p{i}")), Life::Live).await;
        }
        db.insert("person", record("soft"), Life::SoftDeleted).await;
        db.insert("person", record("gone"), Life::Destroyed).await;
        for i in 0..3 {
            db.insert("company", record(&format!("c{i}")), Life::Live).await;
        }
        let mut fields = standard_fields();
        fields.push(field("city", "TEXT"));
        let fields = Value::Array(fields);
        db.replace(&[("person", fields.clone()), ("company", fields)]).await;
        assert_eq!(db.count(&format!("SELECT count(*) FROM {}", db.view("person"))).await, 7);
        assert_eq!(db.count(&format!("SELECT count(*) FROM {}", db.view("company"))).await, 3);
        let live = "SELECT count(*) FROM twenty_records WHERE object = 'person' \
                    AND deleted_at IS NULL AND destroyed_at IS NULL";
        assert_eq!(db.count(live).await, 7, "{}", db.backend());
    }
}

#[tokio::test]
async fn hostile_names_leave_the_mirror_tables_intact() {
    let long_a = format!("{}Alpha", "veryLongFieldName".repeat(4));
    let long_b = format!("{}Beta", "veryLongFieldName".repeat(4));
    let fields = json!([
        field("id", "UUID"),
        field("updatedAt", "DATE_TIME"),
        field("order", "TEXT"),
        field("select", "NUMBER"),
        field("it's", "TEXT"),
        field("a; DROP TABLE twenty_records; --", "TEXT"),
        field("'); DROP TABLE twenty_records; --", "BOOLEAN"),
        field("x\"); DROP TABLE twenty_records; --", "TEXT"),
        field("back\\slash", "TEXT"),
        field("first name", "TEXT"),
        field("firstName", "TEXT"),
        field("--", "TEXT"),
        field(&long_a, "TEXT"),
        field(&long_b, "TEXT"),
    ]);
    let objects = [
        "twenty_records",
        "syncState",
        "webhook_events",
        "x'; DROP TABLE sync_runs; --",
        "bad\"name",
        "order",
        "sqlite_master",
    ];
    for db in TestDb::all().await {
        let record = json!({
            "id": "h1",
            "updatedAt": "2026-09-21T10:00:00.000Z",
            "order": "first",
            "select": 7,
            "it's": "quoted",
            "a; DROP TABLE twenty_records; --": "semi",
            "'); DROP TABLE twenty_records; --": true,
            "first name": "spaced",
            "firstName": "camel",
            long_a.clone(): "a",
            long_b.clone(): "b",
        });
        for object in objects {
            db.insert(object, record.clone(), Life::Live).await;
        }
        db.execute("INSERT INTO sync_state (object) VALUES ('person')").await;
        let given: Vec<(&str, Value)> = objects.iter().map(|o| (*o, fields.clone())).collect();
        let report = db.replace(&given).await;

        for table in
            ["twenty_records", "twenty_objects", "sync_state", "sync_runs", "webhook_events", "twenty_views"]
        {
            assert!(db.relation_exists(table).await, "{}: {table} is gone", db.backend());
        }
        assert_eq!(db.count("SELECT count(*) FROM twenty_records").await, objects.len() as i64);
        assert_eq!(db.count("SELECT count(*) FROM sync_state").await, 1);

        let names: Vec<(&str, &str, Option<&NameConflict>)> = report
            .views
            .iter()
            .map(|v| (v.plan.object.as_str(), v.plan.name.as_str(), v.plan.conflict.as_ref()))
            .collect();
        assert_eq!(
            names,
            [
                ("twenty_records", "twenty_records_2", Some(&NameConflict::MirrorTable)),
                ("syncState", "sync_state_2", Some(&NameConflict::MirrorTable)),
                ("webhook_events", "webhook_events_2", Some(&NameConflict::MirrorTable)),
                ("x'; DROP TABLE sync_runs; --", "x_drop_table_sync_runs_", None),
                ("order", "order", None),
                ("sqlite_master", "view_sqlite_master", Some(&NameConflict::ReservedPrefix)),
            ],
            "{}",
            db.backend()
        );
        assert_eq!(report.skipped.len(), 1, "bad\"name has no view");
        assert!(report.views.iter().all(|v| v.outcome == ViewOutcome::Created), "{:?}", outcomes(&report));

        let plan = &report.views[0].plan;
        let columns: Vec<&str> = plan.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(columns.len(), 11, "{columns:?}");
        assert_eq!(
            &columns[..9],
            [
                "id",
                "updated_at",
                "order",
                "select",
                "it_s",
                "a_drop_table_twenty_records_",
                "_drop_table_twenty_records_",
                "first_name",
                "first_name_2",
            ]
        );
        assert!(columns[9].len() == 63 && columns[10].len() == 63 && columns[9] != columns[10]);
        let skipped: Vec<&str> = plan.skipped.iter().map(|s| s.field.as_str()).collect();
        assert_eq!(skipped, ["x\"); DROP TABLE twenty_records; --", "back\\slash", "--"]);

        let sql = format!(
            "SELECT count(*) FROM {} WHERE \"order\" = 'first' AND \"select\" = 7 AND it_s = 'quoted' \
             AND a_drop_table_twenty_records_ = 'semi' AND first_name = 'spaced' AND first_name_2 = 'camel' \
             AND \"{}\" = 'a' AND \"{}\" = 'b'",
            db.view("twenty_records_2"),
            columns[9],
            columns[10]
        );
        assert_eq!(db.count(&sql).await, 1, "{}", db.backend());
        let sql = format!("SELECT count(*) FROM {}", db.view("x_drop_table_sync_runs_"));
        assert_eq!(db.count(&sql).await, 1);
    }
}

#[tokio::test]
async fn a_table_the_service_did_not_create_is_left_untouched() {
    for db in TestDb::all().await {
        let (table, view) =
            if db.is_postgres() { ("twenty.person", "twenty.company") } else { ("person", "company") };
        db.execute(&format!("CREATE TABLE {table} (note text)")).await;
        db.execute(&format!("INSERT INTO {table} VALUES ('mine')")).await;
        db.execute(&format!("CREATE VIEW {view} AS SELECT 1 AS one")).await;
        db.insert("person", json!({"id": "p1", "updatedAt": "2026-09-21T10:00:00.000Z"}), Life::Live).await;
        let fields = Value::Array(standard_fields());
        let objects = [("person", fields.clone()), ("company", fields.clone())];
        let report = db.replace(&objects).await;
        let names: Vec<_> =
            report.views.iter().map(|v| (v.plan.name.as_str(), v.plan.conflict.clone())).collect();
        assert_eq!(
            names,
            [
                ("person_2", Some(NameConflict::NotCreatedByService)),
                ("company_2", Some(NameConflict::NotCreatedByService))
            ],
            "{}",
            db.backend()
        );
        assert_eq!(db.count(&format!("SELECT count(*) FROM {}", db.view("person_2"))).await, 1);
        // Again, and after the objects go: the foreign table and view stay as they were.
        let again = db.replace(&objects).await;
        assert!(again.views.iter().all(|v| v.outcome == ViewOutcome::Unchanged), "{:?}", outcomes(&again));
        let gone = db.replace(&[]).await;
        assert_eq!(gone.dropped.len(), 2);
        assert!(gone.dropped.iter().all(|d| d.error.is_none()));
        assert_eq!(db.count(&format!("SELECT count(*) FROM {table} WHERE note = 'mine'")).await, 1);
        assert_eq!(db.count(&format!("SELECT count(*) FROM {view} WHERE one = 1")).await, 1);
        assert!(!db.relation_exists(&db.view("person_2").replace('"', "")).await);
    }
}

#[tokio::test]
async fn views_follow_fields_added_deactivated_and_objects_renamed_or_gone() {
    for db in TestDb::all().await {
        let record = json!({
            "id": "p1", "updatedAt": "2026-09-21T10:00:00.000Z", "city": "Lyon", "jobTitle": "CTO",
        });
        db.insert("person", record.clone(), Life::Live).await;
        db.insert("lead", record, Life::Live).await;
        let mut fields = standard_fields();
        fields.push(field("city", "TEXT"));
        let first = db.replace(&[("person", Value::Array(fields.clone()))]).await;
        assert_eq!(outcomes(&first), [("person", &ViewOutcome::Created)]);

        // A field added in Twenty: a column at the end.
        fields.push(field("jobTitle", "TEXT"));
        let added = db.replace(&[("person", Value::Array(fields.clone()))]).await;
        assert_eq!(outcomes(&added), [("person", &ViewOutcome::Replaced)]);
        let rows = db.rows("person").await;
        assert_eq!(rows[0]["job_title"][1], json!("CTO"), "{}", db.backend());

        // Nothing changed: the view is left alone.
        let same = db.replace(&[("person", Value::Array(fields.clone()))]).await;
        assert_eq!(outcomes(&same), [("person", &ViewOutcome::Unchanged)]);

        // A field deactivated: its column goes.
        fields[4]["isActive"] = json!(false);
        let deactivated = db.replace(&[("person", Value::Array(fields.clone()))]).await;
        assert_eq!(outcomes(&deactivated), [("person", &ViewOutcome::Replaced)]);
        let rows = db.rows("person").await;
        assert!(!rows[0].contains_key("city"), "{}: {:?}", db.backend(), rows[0].keys());
        assert_eq!(deactivated.views[0].plan.skipped[0].reason, SkipReason::Inactive);

        // The object renamed: the old view goes, the new one comes.
        let renamed = db.replace(&[("lead", Value::Array(fields.clone()))]).await;
        assert_eq!(outcomes(&renamed), [("lead", &ViewOutcome::Created)]);
        assert_eq!(renamed.dropped.len(), 1);
        assert_eq!(renamed.dropped[0].name, "person");
        assert!(!db.relation_exists(&db.view("person").replace('"', "")).await, "{}", db.backend());
        assert_eq!(db.count(&format!("SELECT count(*) FROM {}", db.view("lead"))).await, 1);

        // No longer mirrored: no view, and the registry forgets it.
        let gone = db.replace(&[]).await;
        assert_eq!(gone.dropped.len(), 1);
        assert!(!db.relation_exists(&db.view("lead").replace('"', "")).await);
        assert_eq!(db.count("SELECT count(*) FROM twenty_views").await, 0);
    }
}

#[tokio::test]
async fn views_change_with_the_transaction_that_holds_them() {
    for db in TestDb::all().await {
        let fields = Value::Array(standard_fields());
        db.replace_and_roll_back(&[("person", fields.clone())]).await;
        assert!(!db.relation_exists(&db.view("person").replace('"', "")).await, "{}", db.backend());
        assert_eq!(db.count("SELECT count(*) FROM twenty_views").await, 0);
        db.replace(&[("person", fields)]).await;
        assert!(db.relation_exists(&db.view("person").replace('"', "")).await);
    }
}

#[tokio::test]
async fn a_view_the_database_refuses_to_replace_keeps_its_previous_version() {
    for db in TestDb::all().await.into_iter().filter(TestDb::is_postgres) {
        let mut fields = standard_fields();
        fields.push(field("city", "TEXT"));
        db.replace(&[("person", Value::Array(fields.clone())), ("company", Value::Array(fields.clone()))])
            .await;
        // A view of the operator's own that depends on the column about to go.
        db.execute("CREATE VIEW public.my_report AS SELECT city FROM twenty.person").await;
        fields[4]["isActive"] = json!(false);
        let report =
            db.replace(&[("person", Value::Array(fields.clone())), ("company", Value::Array(fields))]).await;
        let result = outcomes(&report);
        assert!(
            matches!(result[0], ("person", ViewOutcome::Failed { error }) if error.contains("depend")),
            "{result:?}"
        );
        assert_eq!(result[1], ("company", &ViewOutcome::Replaced));
        assert!(report.has_failures());
        assert_eq!(db.count("SELECT count(*) FROM public.my_report").await, 0);
        // The registry still describes the view that is there, so the next run tries again.
        let again = db.replace(&[("company", Value::Array(standard_fields()))]).await;
        assert_eq!(again.dropped.len(), 1);
        assert!(again.dropped[0].error.as_deref().is_some_and(|e| e.contains("depend")));
    }
}
