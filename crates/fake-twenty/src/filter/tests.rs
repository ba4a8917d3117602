//! The filter grammar and its evaluation, without a server: every operator, the combinators, quoting,
//! dotted paths, NULL, and the malformed filters that must be refused.

// A glob, as test modules have: a benchmark compiles the fake too, with cfg(test) but without the
// #[test] functions, and there the helpers below keep the glob in use where named imports would not be.
use serde_json::{Value, json};

use super::*;

/// A record with the standard columns, `fields` on top.
fn row(fields: Value) -> Row {
    let mut record = json!({
        "id": "0b6f9c1e-7f0a-4d2b-9a3e-5c8d7e6f1a2b",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-02T00:00:00.000Z",
        "deletedAt": null,
    });
    if let (Some(record), Value::Object(fields)) = (record.as_object_mut(), fields) {
        record.extend(fields);
    }
    Row::new(record)
}

fn parse(filter: &str) -> Filter {
    Filter::parse(filter).unwrap_or_else(|e| panic!("{filter:?} should parse: {e}"))
}

/// The filter's value on `record`: `Some(true)` is a match, `None` unknown.
fn eval(filter: &str, record: &Row) -> Option<bool> {
    parse(filter).eval(record)
}

/// Asserts that each filter has the expected value on `record`.
fn assert_evals(record: &Row, cases: &[(&str, Option<bool>)]) {
    for &(filter, expected) in cases {
        assert_eq!(eval(filter, record), expected, "{filter}");
    }
}

/// The error for a filter that must be refused.
fn error(filter: &str) -> String {
    match Filter::parse(filter) {
        Ok(parsed) => panic!("{filter:?} should be refused, parsed as {parsed:?}"),
        Err(message) => message,
    }
}

#[test]
fn comparisons_on_numbers() {
    let company = row(json!({"employees": 10}));
    assert_evals(
        &company,
        &[
            ("employees[eq]:10", Some(true)),
            ("employees[eq]:10.0", Some(true)),
            ("employees[eq]:11", Some(false)),
            ("employees[neq]:11", Some(true)),
            ("employees[neq]:10", Some(false)),
            ("employees[gt]:9", Some(true)),
            ("employees[gt]:10", Some(false)),
            ("employees[gte]:10", Some(true)),
            ("employees[gte]:11", Some(false)),
            ("employees[lt]:11", Some(true)),
            ("employees[lt]:10", Some(false)),
            ("employees[lte]:10", Some(true)),
            ("employees[lte]:9", Some(false)),
            // A number against text that is no number cannot be compared.
            ("employees[eq]:ten", None),
        ],
    );
}

#[test]
fn comparisons_on_text_booleans_and_timestamps() {
    let record = row(json!({"name": "beta", "active": true, "closeDate": "2026-03-01T12:00:00.000Z"}));
    assert_evals(
        &record,
        &[
            ("name[eq]:beta", Some(true)),
            ("name[eq]:Beta", Some(false)),
            ("name[gt]:alpha", Some(true)),
            ("name[lt]:gamma", Some(true)),
            ("name[lte]:beta", Some(true)),
            ("active[eq]:true", Some(true)),
            ("active[eq]:FALSE", Some(false)),
            ("active[neq]:false", Some(true)),
            ("active[eq]:yes", None),
            // Timestamps compare as instants, whatever their offset or precision.
            ("updatedAt[eq]:\"2026-01-02T00:00:00Z\"", Some(true)),
            ("updatedAt[eq]:\"2026-01-02T01:00:00.000+01:00\"", Some(true)),
            ("updatedAt[gt]:\"2026-01-01T23:59:59.999Z\"", Some(true)),
            ("updatedAt[lt]:\"2026-01-02T00:00:00.000Z\"", Some(false)),
            ("closeDate[gte]:\"2026-03-01T12:00:00.000Z\"", Some(true)),
            ("closeDate[gt]:\"2026-03-01T12:00:00.001Z\"", Some(false)),
            // A bare date is its midnight, UTC.
            ("updatedAt[gte]:2026-01-02", Some(true)),
            ("updatedAt[gt]:2026-01-02", Some(false)),
            ("closeDate[lt]:2026-03-02", Some(true)),
        ],
    );
}

#[test]
fn in_and_contains_any_take_a_list() {
    let record = row(json!({"stage": "MEETING", "employees": 3, "tags": ["b2b", "eu"]}));
    assert_evals(
        &record,
        &[
            ("stage[in]:[NEW,MEETING]", Some(true)),
            ("stage[in]:[ NEW , \"MEETING\" ]", Some(true)),
            ("stage[in]:[NEW,PROPOSAL]", Some(false)),
            ("stage[in]:[]", Some(false)),
            ("employees[in]:[1,3]", Some(true)),
            ("employees[in]:[1,2]", Some(false)),
            ("tags[containsAny]:[eu,us]", Some(true)),
            ("tags[containsAny]:[\"b2b\"]", Some(true)),
            ("tags[containsAny]:[us,asia]", Some(false)),
            ("tags[containsAny]:[]", Some(false)),
            // containsAny asks an array; a scalar is no array.
            ("stage[containsAny]:[MEETING]", None),
        ],
    );
    let Filter::Condition { test: Test::In(operands), .. } = parse("stage[in]:[a,'b',\"c\"]") else {
        panic!("an in condition")
    };
    let texts: Vec<&str> = operands.iter().map(|o| o.text.as_str()).collect();
    assert_eq!(texts, ["a", "b", "c"]);
}

#[test]
fn text_matches() {
    let record = row(json!({"name": "Acme Corp", "employees": 120}));
    assert_evals(
        &record,
        &[
            ("name[startsWith]:Acme", Some(true)),
            ("name[startsWith]:acme", Some(false)),
            ("name[startsWith]:Corp", Some(false)),
            ("name[endsWith]:Corp", Some(true)),
            ("name[endsWith]:\" Corp\"", Some(true)),
            ("name[endsWith]:corp", Some(false)),
            ("name[like]:\"Acme%\"", Some(true)),
            ("name[like]:\"%me C_rp\"", Some(true)),
            ("name[like]:\"%corp\"", Some(false)),
            ("name[like]:\"Acme\"", Some(false)),
            ("name[like]:\"%\"", Some(true)),
            ("name[ilike]:\"%CORP\"", Some(true)),
            ("name[ilike]:\"acme_corp\"", Some(true)),
            ("name[ilike]:\"%inc%\"", Some(false)),
            // Numbers match as their text.
            ("employees[like]:\"1%\"", Some(true)),
            ("employees[endsWith]:20", Some(true)),
        ],
    );
}

#[test]
fn is_null_and_not_null() {
    let record = row(json!({"jobTitle": null, "city": "Paris", "address": {"city": "Paris"}}));
    assert_evals(
        &record,
        &[
            ("jobTitle[is]:NULL", Some(true)),
            ("jobTitle[is]:NOT_NULL", Some(false)),
            ("city[is]:NULL", Some(false)),
            ("city[is]:NOT_NULL", Some(true)),
            ("deletedAt[is]:NULL", Some(true)),
            // A field the record does not have is NULL, and so is a missing part of a composite.
            ("nickname[is]:NULL", Some(true)),
            ("address.postcode[is]:NULL", Some(true)),
            ("address.city[is]:NOT_NULL", Some(true)),
        ],
    );
}

#[test]
fn null_makes_every_other_test_unknown() {
    let record = row(json!({"jobTitle": null}));
    for filter in [
        "jobTitle[eq]:x",
        "jobTitle[neq]:x",
        "jobTitle[gt]:x",
        "jobTitle[in]:[x]",
        "jobTitle[containsAny]:[x]",
        "jobTitle[like]:\"%\"",
        "jobTitle[startsWith]:x",
        "not(jobTitle[eq]:x)",
        "deletedAt[gte]:\"2000-01-01T00:00:00.000Z\"",
    ] {
        assert_eq!(eval(filter, &record), None, "{filter}");
    }
}

#[test]
fn and_or_not_with_three_valued_logic() {
    let record = row(json!({"name": "Acme", "employees": 10, "jobTitle": null}));
    let (yes, no, unknown) = ("name[eq]:Acme", "employees[gt]:100", "jobTitle[eq]:CTO");
    let cases = [
        (format!("and({yes},employees[eq]:10)"), Some(true)),
        (format!("and({yes},{no})"), Some(false)),
        (format!("and({yes},{unknown})"), None),
        (format!("and({no},{unknown})"), Some(false)),
        (format!("or({no},{yes})"), Some(true)),
        (format!("or({no},employees[lt]:5)"), Some(false)),
        (format!("or({yes},{unknown})"), Some(true)),
        (format!("or({no},{unknown})"), None),
        (format!("not({yes})"), Some(false)),
        (format!("not({no})"), Some(true)),
        (format!("not({unknown})"), None),
        (format!("not(not({yes}))"), Some(true)),
        (format!("and({yes},or({no},not({no})))"), Some(true)),
        (format!("or(and({yes},{no}),and({yes},not({no})))"), Some(true)),
        (format!("and({yes})"), Some(true)),
    ];
    for (filter, expected) in cases {
        assert_eq!(eval(&filter, &record), expected, "{filter}");
    }
}

#[test]
fn a_top_level_list_means_and() {
    assert_eq!(parse("name[eq]:a,employees[gt]:1"), parse("and(name[eq]:a,employees[gt]:1)"));
    assert_eq!(
        parse("or(name[eq]:a,name[eq]:b),employees[gt]:1"),
        parse("and(or(name[eq]:a,name[eq]:b),employees[gt]:1)")
    );
    let record = row(json!({"name": "a", "employees": 0}));
    assert_eq!(eval("name[eq]:a,employees[gt]:1", &record), Some(false));
    assert_eq!(eval("name[eq]:a,employees[lt]:1", &record), Some(true));
    // One condition alone is that condition, not an and() of one.
    assert_eq!(
        parse("name[eq]:a"),
        Filter::Condition {
            path: vec!["name".into()],
            test: Test::Compare(Comparison::Eq, Operand::new("a".into())),
            kind: None,
        }
    );
}

#[test]
fn quoted_values_keep_commas_parentheses_and_the_other_quote() {
    let record = row(json!({"name": "Smith, Jones (UK)", "note": "say \"hi\"", "path": "C:\\dir"}));
    assert_evals(
        &record,
        &[
            ("name[eq]:\"Smith, Jones (UK)\"", Some(true)),
            ("name[eq]:'Smith, Jones (UK)'", Some(true)),
            ("or(name[eq]:\"Smith, Jones (UK)\",name[eq]:x)", Some(true)),
            ("and(name[eq]:\"x),y(\",name[eq]:\"Smith, Jones (UK)\")", Some(false)),
            ("name[in]:[\"a, b\",\"Smith, Jones (UK)\"]", Some(true)),
            ("name[in]:[\"a, b\",\"]\"]", Some(false)),
            ("name[like]:\"%, Jones (%\"", Some(true)),
            ("note[eq]:'say \"hi\"'", Some(true)),
            // Quotes are stripped, nothing is unescaped: a backslash is text.
            ("path[eq]:\"C:\\dir\"", Some(true)),
            // Bare values are trimmed; quoted ones are kept as they are.
            ("name[eq]: x ", Some(false)),
            ("name[startsWith]:\"Smith,\"", Some(true)),
            ("name[startsWith]:\" Smith\"", Some(false)),
        ],
    );
    let Filter::Condition { test: Test::Compare(_, operand), .. } = parse("name[eq]:  spaced out  ") else {
        panic!("a comparison")
    };
    assert_eq!(operand.text, "spaced out");
}

#[test]
fn dotted_paths_reach_into_composite_fields() {
    let person = row(json!({
        "name": {"firstName": "Jo", "lastName": "Doe"},
        "emails": {"primaryEmail": "jo@example.com", "additionalEmails": ["j@example.org"]},
        "amount": {"amountMicros": 1_500_000, "currencyCode": "EUR"},
    }));
    assert_evals(
        &person,
        &[
            ("emails.primaryEmail[eq]:jo@example.com", Some(true)),
            ("emails.primaryEmail[ilike]:\"%@EXAMPLE.COM\"", Some(true)),
            ("name.firstName[startsWith]:J", Some(true)),
            ("name.lastName[eq]:Smith", Some(false)),
            ("amount.amountMicros[gt]:1000000", Some(true)),
            ("amount.currencyCode[in]:[USD,EUR]", Some(true)),
            ("emails.additionalEmails[containsAny]:[\"j@example.org\"]", Some(true)),
            ("and(name.firstName[eq]:Jo,not(name.lastName[eq]:Roe))", Some(true)),
        ],
    );
    let Filter::Condition { path, .. } = parse("emails.primaryEmail[eq]:x") else { panic!("a condition") };
    assert_eq!(path, ["emails", "primaryEmail"]);
}

#[test]
fn whitespace_between_tokens_is_ignored() {
    assert_eq!(
        parse(" and( name[eq]:a , or ( b[ gt ]: 1 ,c[is]: NULL ) ) "),
        parse("and(name[eq]:a,or(b[gt]:1,c[is]:NULL))")
    );
}

#[test]
fn malformed_filters_are_refused_saying_what_is_wrong() {
    for (filter, says) in [
        // Unbalanced parentheses.
        ("and(name[eq]:a", "expected ',' or ')'"),
        ("or(name[eq]:a,not(name[eq]:b)", "expected ',' or ')'"),
        ("name[eq]:a)", "expected ',' or the end"),
        ("and(name[eq]:a))", "expected ',' or the end"),
        ("and((name[eq]:a))", "expected a field name"),
        // Operators.
        ("name[nope]:a", "unknown operator \"nope\""),
        ("name[EQ]:a", "unknown operator \"EQ\""),
        ("name[]:a", "unknown operator \"\""),
        ("name[eq:a", "expected ']'"),
        ("name[eq]a", "expected ':'"),
        ("name:a", "expected '(' or '['"),
        ("name", "expected '(' or '['"),
        // Values.
        ("name[eq]:", "expected a value"),
        ("name[eq]:  ", "expected a value"),
        ("name[eq]:,b[eq]:1", "expected a value"),
        ("or(name[eq]:)", "expected a value"),
        ("name[in]:", "expected '['"),
        ("name[in]:a,b", "expected '['"),
        ("name[in]:[a,b", "expected ',' or ']'"),
        ("name[in]:[a,]", "expected a value"),
        ("tags[containsAny]:x", "expected '['"),
        ("name[is]:maybe", "is takes NULL or NOT_NULL"),
        ("name[is]:null", "is takes NULL or NOT_NULL"),
        ("name[eq]:\"open", "unterminated string"),
        ("name[eq]:'open", "unterminated string"),
        ("name[eq]:\"a\"b", "expected ',' or the end"),
        // Paths and combinators.
        ("name..first[eq]:a", "invalid field"),
        (".name[eq]:a", "invalid field"),
        ("not(name[eq]:a,name[eq]:b)", "not() takes one condition"),
        ("xor(name[eq]:a)", "unknown combinator \"xor\""),
        ("and()", "expected a field name"),
        ("", "expected a field name"),
        ("name[eq]:a,", "expected a field name"),
    ] {
        let message = error(filter);
        assert!(message.starts_with("invalid filter"), "{filter:?}: {message}");
        assert!(message.contains(says), "{filter:?} should say {says:?}: {message}");
    }
}
