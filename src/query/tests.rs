use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn schema() -> ObjectSchema {
    ObjectSchema::from_metadata(
        "opportunity",
        false,
        &json!([
            {"name": "name", "type": "TEXT"},
            {"name": "amount", "type": "CURRENCY"},
            {"name": "contact", "type": "FULL_NAME"},
            {"name": "closeDate", "type": "DATE_TIME"},
            {"name": "dueOn", "type": "DATE"},
            {"name": "probability", "type": "NUMBER"},
            {"name": "won", "type": "BOOLEAN"},
            {"name": "tags", "type": "MULTI_SELECT", "options": [{"value": "HOT"}, {"value": "COLD"}]},
            {"name": "extra", "type": "RAW_JSON"},
            {"name": "stage", "type": "SELECT", "options": [
                {"value": "NEW", "position": 0}, {"value": "MEETING", "position": 1}
            ]},
        ]),
    )
}

fn list(pairs: &[(&str, &str)]) -> Result<ListQuery, QueryError> {
    parse_list(&ListParams::from_pairs(pairs.iter().copied()), &schema())
}

fn error(pairs: &[(&str, &str)]) -> QueryError {
    list(pairs).expect_err("the parameters are invalid")
}

fn order_paths(query: &ListQuery) -> Vec<(String, Direction)> {
    query.order.iter().map(|key| (key.leaf.dotted(), key.direction)).collect()
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

#[test]
fn defaults() {
    let query = list(&[]).unwrap();
    assert_eq!(query.limit, 60);
    assert_eq!(query.depth, Depth::Zero);
    assert_eq!(order_paths(&query), [("id".to_owned(), Direction::AscNullsFirst)]);
    assert_eq!(query.filter, None);
    assert_eq!(query.position, Position::First);
    assert!(!query.include_soft_deleted);
    let blank =
        list(&[("limit", ""), ("depth", ""), ("filter", " "), ("order_by", ""), ("starting_after", "")]);
    assert_eq!(blank.unwrap(), query);
}

#[test]
fn limit_is_clamped_and_checked() {
    assert_eq!(list(&[("limit", "5")]).unwrap().limit, 5);
    assert_eq!(list(&[("limit", "0")]).unwrap().limit, 0);
    assert_eq!(list(&[("limit", "201")]).unwrap().limit, 200);
    assert_eq!(list(&[("limit", "99999999999999999999999")]).unwrap().limit, 200);
    let ten = error(&[("limit", "ten")]);
    assert_eq!(
        (ten.parameter, ten.message.as_str()),
        (Parameter::Limit, "limit 'ten' is invalid. Should be an integer")
    );
    assert_eq!(ten.code(), "INVALID_LIMIT_QUERY_PARAM");
    for bad in ["-1", "1.5", "1e2"] {
        assert_eq!(error(&[("limit", bad)]).parameter, Parameter::Limit, "{bad}");
    }
}

#[test]
fn depth_is_zero_or_one() {
    assert_eq!(list(&[("depth", "1")]).unwrap().depth, Depth::One);
    assert_eq!(list(&[("depth", "0")]).unwrap().depth, Depth::Zero);
    let error = error(&[("depth", "2")]);
    assert_eq!(
        (error.parameter, error.message.as_str()),
        (Parameter::Depth, "'depth=2' parameter invalid. Allowed values are 0, 1")
    );
}

#[test]
fn order_by_takes_directions_and_dotted_paths_and_appends_id() {
    let query =
        list(&[("order_by", "stage[DescNullsLast], contact.firstName,closeDate[AscNullsLast]")]).unwrap();
    assert_eq!(
        order_paths(&query),
        [
            ("stage".to_owned(), Direction::DescNullsLast),
            ("contact.firstName".to_owned(), Direction::AscNullsFirst),
            ("closeDate".to_owned(), Direction::AscNullsLast),
            ("id".to_owned(), Direction::AscNullsFirst),
        ]
    );
    let with_id = list(&[("order_by", "id[DescNullsFirst],name,name[DescNullsLast]")]).unwrap();
    assert_eq!(
        order_paths(&with_id),
        [("id".to_owned(), Direction::DescNullsFirst), ("name".to_owned(), Direction::AscNullsFirst)]
    );
}

#[test]
fn order_by_errors_name_the_problem() {
    let direction = error(&[("order_by", "name[Up]")]);
    assert_eq!(direction.parameter, Parameter::OrderBy);
    assert!(direction.message.starts_with(
        "'order_by' direction 'Up' invalid. Allowed values are 'AscNullsFirst', 'AscNullsLast', 'DescNullsFirst', 'DescNullsLast'."
    ));
    assert_eq!(error(&[("order_by", "nope")]).message, "field 'nope' does not exist in 'opportunity' object");
    assert!(error(&[("order_by", "contact")]).message.contains("is a composite field"));
    assert!(error(&[("order_by", "tags")]).message.contains("it is a array field"));
    assert_eq!(error(&[("order_by", "name,")]).parameter, Parameter::OrderBy);
}

#[test]
fn filters_resolve_with_coerced_values() {
    let query = list(&[(
        "filter",
        r#"probability[gte]:"0.5",won[eq]:TRUE,closeDate[lt]:2026-09-01,amount.amountMicros[in]:[1,2],stage[gt]:NEW"#,
    )])
    .unwrap();
    let Some(Predicate::And(items)) = query.filter else { panic!("an and") };
    let values: Vec<&Scalar> = items
        .iter()
        .map(|item| match item {
            Predicate::Compare { value, .. } => value,
            Predicate::In { values, .. } => &values[1],
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        values,
        [
            &Scalar::Number(0.5),
            &Scalar::Boolean(true),
            &Scalar::Instant(instant("2026-09-01T00:00:00Z")),
            &Scalar::Number(2.0),
            &Scalar::Text("NEW".into())
        ]
    );
}

#[test]
fn date_times_are_truncated_to_the_millisecond() {
    let query = list(&[("filter", "closeDate[eq]:2026-09-21T12:15:30.412999+02:00")]).unwrap();
    let Some(Predicate::Compare { value, .. }) = query.filter else { panic!("a comparison") };
    assert_eq!(value, Scalar::Instant(instant("2026-09-21T10:15:30.412Z")));
}

#[test]
fn like_patterns_keep_their_wildcards_and_starts_with_is_literal() {
    let like = |text: &str| match list(&[("filter", text)]).unwrap().filter {
        Some(Predicate::Like { pattern, case_insensitive, .. }) => (pattern.0, case_insensitive),
        other => panic!("{other:?}"),
    };
    let lit = |s: &str| LikePiece::Literal(s.to_owned());
    assert_eq!(
        like(r"name[like]:a%b_\%"),
        (vec![lit("a"), LikePiece::AnyRun, lit("b"), LikePiece::AnyChar, lit("%")], false)
    );
    assert_eq!(like("name[ilike]:%X"), (vec![LikePiece::AnyRun, lit("X")], true));
    assert_eq!(like("name[startsWith]:5%_"), (vec![lit("5%_"), LikePiece::AnyRun], false));
    assert_eq!(like("name[endsWith]:x"), (vec![LikePiece::AnyRun, lit("x")], false));
    assert_eq!(like(r"name[like]:a\"), (vec![lit(r"a\")], false));
}

#[test]
fn filter_errors_name_the_field_and_the_value() {
    let message = |filter: &str| {
        let error = error(&[("filter", filter)]);
        assert_eq!(error.parameter, Parameter::Filter, "{filter}");
        error.message
    };
    assert_eq!(message("city[eq]:x"), "field 'city' does not exist in 'opportunity' object");
    assert_eq!(
        message("probability[gt]:high"),
        "'filter' invalid for 'probability[gt]:high': 'high' is not a number"
    );
    assert!(message("won[eq]:yes").contains("'yes' is not a boolean"));
    assert!(message("closeDate[gt]:soon").contains("'soon' is not a date-time"));
    assert!(message("dueOn[gt]:soon").contains("'soon' is not a date"));
    assert_eq!(
        message("stage[eq]:LOST"),
        "'filter' enum value 'LOST' not available in 'stage' enum. Available enum values are ['NEW', 'MEETING']"
    );
    assert!(message("tags[containsAny]:[WARM]").contains("enum value 'WARM' not available in 'tags'"));
    assert!(message("probability[like]:1%").contains("'like' does not apply to a number field"));
    assert!(message("name[containsAny]:[a]").contains("'containsAny' does not apply to a text field"));
    assert!(message("tags[eq]:HOT").contains("'eq' does not apply to a array field"));
    assert!(message("extra[in]:[1]").contains("'in' does not apply to a JSON field"));
    assert!(message("name[is]:nothing").contains("'is' takes NULL or NOT_NULL, not 'nothing'"));
    assert!(message("contact[eq]:x").contains("is a composite field"));
}

#[test]
fn is_applies_to_every_field() {
    for path in ["name", "tags", "extra", "amount.currencyCode", "deletedAt", "won"] {
        let query = list(&[("filter", &format!("{path}[is]:NOT_NULL"))]).unwrap();
        assert!(matches!(query.filter, Some(Predicate::IsNull { null: false, .. })), "{path}");
    }
}

#[test]
fn soft_deleted_records_take_part_only_when_the_filter_mentions_deleted_at() {
    assert!(list(&[("filter", "or(name[eq]:a,deletedAt[gte]:2026-01-01)")]).unwrap().include_soft_deleted);
    assert!(!list(&[("filter", "name[eq]:deletedAt")]).unwrap().include_soft_deleted);
}

#[test]
fn cursors_are_exclusive_of_each_other() {
    let cursor = cursor::encode(&list(&[]).unwrap().order, &[json!("x")]);
    let error = error(&[("starting_after", &cursor), ("ending_before", &cursor)]);
    assert_eq!(error.message, "'starting_after' and 'ending_before' cannot be used together");
    assert_eq!(
        list(&[("ending_before", &cursor)]).unwrap().position,
        Position::Before(vec![Some(Scalar::Text("x".into()))])
    );
}

#[test]
fn cursors_are_twentys_base64_json() {
    let order = list(&[("order_by", "contact.lastName,updatedAt,contact.firstName")]).unwrap().order;
    let values = [json!("Doe"), json!("2026-09-21T10:15:30.412Z"), json!(null), json!("a-b")];
    let cursor = cursor::encode(&order, &values);
    let text = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &cursor).unwrap(),
    );
    assert_eq!(
        text.unwrap(),
        r#"{"contact":{"lastName":"Doe","firstName":null},"updatedAt":"2026-09-21T10:15:30.412Z","id":"a-b"}"#
    );
    // Twenty's own cursor for `order_by=updatedAt`: base64 of JSON.stringify({updatedAt, id}).
    let twentys = "eyJ1cGRhdGVkQXQiOiIyMDI2LTA5LTIxVDEwOjE1OjMwLjQxMloiLCJpZCI6IjEifQ==";
    let query = list(&[("order_by", "updatedAt"), ("starting_after", twentys)]).unwrap();
    let expected =
        vec![Some(Scalar::Instant(instant("2026-09-21T10:15:30.412Z"))), Some(Scalar::Text("1".into()))];
    assert_eq!(query.position, Position::After(expected));
    // Unpadded, and with its `+` turned into a space by a client that did not encode it.
    assert!(list(&[("order_by", "updatedAt"), ("starting_after", twentys.trim_end_matches('='))]).is_ok());
}

#[test]
fn a_cursor_for_another_ordering_or_a_forged_one_is_refused() {
    let cursor = cursor::encode(&list(&[]).unwrap().order, &[json!("x")]);
    let other = error(&[("order_by", "name"), ("starting_after", &cursor)]);
    assert_eq!(other.parameter, Parameter::StartingAfter);
    assert_eq!(other.code(), "INVALID_CURSOR");
    assert_eq!(
        other.message,
        "Cursor is missing the value for orderBy field \"name\": it was encoded for a different orderBy. \
         Restart pagination without a cursor."
    );
    let b64 = |json: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, json);
    for forged in [
        "not base64!".to_owned(),
        b64("not json"),
        b64("[1,2]"),
        b64(r#"{"id":null}"#),
        b64(r#"{"id":7}"#),
        b64(r#"{"updatedAt":"yesterday","id":"x"}"#),
        b64(r#"{"updatedAt":null,"id":"x"}"#),
    ] {
        let error = error(&[("order_by", "updatedAt"), ("ending_before", &forged)]);
        assert!(
            error.message.starts_with("Invalid cursor: ") || error.message.starts_with("Cursor is missing"),
            "{forged}"
        );
        assert_eq!(error.parameter, Parameter::EndingBefore);
    }
}

#[test]
fn record_ids_are_uuids() {
    assert!(parse_record_id("0b8e4c1a-3f1c-4e03-a507-70140aa85c05").is_ok());
    assert_eq!(parse_record_id("x").unwrap_err().message, "'x' is not a valid UUID");
    assert!(parse_record_id("0b8e4c1a3f1c4e03a50770140aa85c05").is_err());
}

/// A sort key of the test schema and a JSON value of its type.
fn key_and_value() -> impl Strategy<Value = (&'static str, Value)> {
    let text = any::<Option<String>>().prop_map(|t| t.map_or(Value::Null, Value::from));
    let number = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from)
    ];
    let instant = prop_oneof![
        Just(Value::Null),
        (0i64..253_402_300_799_000).prop_map(|ms| {
            Value::from(
                DateTime::from_timestamp_millis(ms)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
        })
    ];
    let boolean = any::<Option<bool>>().prop_map(|b| b.map_or(Value::Null, Value::from));
    prop_oneof![
        text.clone().prop_map(|v| ("name", v)),
        text.clone().prop_map(|v| ("contact.firstName", v)),
        text.prop_map(|v| ("contact.lastName", v)),
        number.clone().prop_map(|v| ("probability", v)),
        number.prop_map(|v| ("amount.amountMicros", v)),
        instant.clone().prop_map(|v| ("closeDate", v)),
        instant.prop_map(|v| ("deletedAt", v)),
        boolean.prop_map(|v| ("won", v)),
        prop::sample::select(vec![Value::Null, json!("NEW"), json!("MEETING")]).prop_map(|v| ("stage", v)),
    ]
}

/// What a cursor value of `path` decodes to.
fn scalar_of(path: &str, value: &Value) -> Option<Scalar> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(Scalar::Boolean(*b)),
        Value::Number(n) => Some(Scalar::Number(n.as_f64().unwrap())),
        Value::String(s) if matches!(path, "closeDate" | "deletedAt") => Some(Scalar::Instant(instant(s))),
        Value::String(s) => Some(Scalar::Text(s.clone())),
        other => panic!("no cursor value is {other}"),
    }
}

proptest! {
    #[test]
    fn a_cursor_decodes_to_the_values_it_was_made_from(
        keys in prop::collection::vec(key_and_value(), 0..5),
        id in "[0-9a-f-]{1,36}",
        backward in any::<bool>(),
    ) {
        let mut seen = std::collections::HashSet::new();
        let keys: Vec<_> = keys.into_iter().filter(|(path, _)| seen.insert(*path)).collect();
        let order_by: Vec<&str> = keys.iter().map(|(path, _)| *path).collect();
        let order = parse_order_by(Some(&order_by.join(",")), &schema()).unwrap();
        let mut values: Vec<Value> = keys.iter().map(|(_, value)| value.clone()).collect();
        values.push(Value::from(id.as_str()));
        let cursor = cursor::encode(&order, &values);
        let parameter = if backward { Parameter::EndingBefore } else { Parameter::StartingAfter };
        let decoded = cursor::decode(&cursor, &order, parameter).unwrap();
        let mut expected: Vec<Option<Scalar>> = keys.iter().map(|(path, value)| scalar_of(path, value)).collect();
        expected.push(Some(Scalar::Text(id)));
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn arbitrary_parameters_never_panic(
        limit in any::<Option<String>>(),
        depth in any::<Option<String>>(),
        order_by in any::<Option<String>>(),
        filter in any::<Option<String>>(),
        after in any::<Option<String>>(),
    ) {
        let params = ListParams {
            limit: limit.as_deref(),
            depth: depth.as_deref(),
            order_by: order_by.as_deref(),
            filter: filter.as_deref(),
            starting_after: after.as_deref(),
            ending_before: None,
        };
        let _ = parse_list(&params, &schema());
    }
}
