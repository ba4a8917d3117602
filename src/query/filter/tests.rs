use proptest::prelude::*;

use super::*;

fn condition(path: &str, operator: Operator, value: &str) -> Filter {
    Filter::Condition(Condition {
        path: path.split('.').map(str::to_owned).collect(),
        operator,
        value: Operand::Scalar(value.to_owned()),
    })
}

fn list(path: &str, operator: Operator, values: &[&str]) -> Filter {
    Filter::Condition(Condition {
        path: path.split('.').map(str::to_owned).collect(),
        operator,
        value: Operand::List(values.iter().map(|v| (*v).to_owned()).collect()),
    })
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(filter) => panic!("{text:?} parsed as {filter:?}"),
        Err(error) => {
            assert_eq!(error.parameter, crate::query::Parameter::Filter);
            error.message
        }
    }
}

#[test]
fn every_scalar_operator_parses() {
    for operator in Operator::ALL.into_iter().filter(|op| !op.takes_list()) {
        let text = format!("city[{}]:Paris", operator.name());
        assert_eq!(parse(&text).unwrap(), condition("city", operator, "Paris"), "{text}");
    }
}

#[test]
fn list_operators_take_arrays() {
    assert_eq!(parse("stage[in]:[NEW,MEETING]").unwrap(), list("stage", Operator::In, &["NEW", "MEETING"]));
    assert_eq!(parse("tags[containsAny]:[a]").unwrap(), list("tags", Operator::ContainsAny, &["a"]));
    assert_eq!(parse("stage[in]:[]").unwrap(), list("stage", Operator::In, &[]));
    assert_eq!(
        parse(r#"name[in]:["a,b", 'c]d' , e f ]"#).unwrap(),
        list("name", Operator::In, &["a,b", "c]d", "e f"])
    );
    assert!(error("stage[in]:NEW").contains("'in' takes an array value"));
    assert!(error("stage[in]:[NEW").contains("expected ',' or ']'"));
}

#[test]
fn is_takes_its_words_as_values() {
    assert_eq!(parse("city[is]:NULL").unwrap(), condition("city", Operator::Is, "NULL"));
    assert_eq!(parse("city[is]:NOT_NULL").unwrap(), condition("city", Operator::Is, "NOT_NULL"));
}

#[test]
fn conjunctions_nest_and_a_top_level_list_is_and() {
    let a = condition("a", Operator::Eq, "1");
    let b = condition("b", Operator::Gt, "2");
    assert_eq!(parse("a[eq]:1,b[gt]:2").unwrap(), Filter::And(vec![a.clone(), b.clone()]));
    assert_eq!(parse("and(a[eq]:1,b[gt]:2)").unwrap(), Filter::And(vec![a.clone(), b.clone()]));
    assert_eq!(parse("or(a[eq]:1,b[gt]:2)").unwrap(), Filter::Or(vec![a.clone(), b.clone()]));
    assert_eq!(parse("not(a[eq]:1)").unwrap(), Filter::Not(Box::new(a.clone())));
    assert_eq!(
        parse(" or( and(a[eq]:1, not(b[gt]:2)) , a[eq]:1 ) ").unwrap(),
        Filter::Or(vec![Filter::And(vec![a.clone(), Filter::Not(Box::new(b))]), a.clone()])
    );
    assert_eq!(parse("and(a[eq]:1),a[eq]:1").unwrap(), Filter::And(vec![Filter::And(vec![a.clone()]), a]));
}

#[test]
fn dotted_paths_nest() {
    assert_eq!(
        parse("emails.primaryEmail[eq]:a@b.c").unwrap(),
        condition("emails.primaryEmail", Operator::Eq, "a@b.c")
    );
    assert!(error("emails.[eq]:x").contains("expected a sub-field name after 'emails.'"));
    assert!(error(".a[eq]:x").contains("expected a field name"));
}

#[test]
fn quoted_values_keep_commas_parentheses_and_escaped_quotes() {
    assert_eq!(parse(r#"name[eq]:"a,b)(c""#).unwrap(), condition("name", Operator::Eq, "a,b)(c"));
    assert_eq!(
        parse(r#"name[eq]:"say \"hi\" \\o/""#).unwrap(),
        condition("name", Operator::Eq, r#"say "hi" \o/"#)
    );
    assert_eq!(parse(r"name[eq]:'it\'s'").unwrap(), condition("name", Operator::Eq, "it's"));
    assert_eq!(parse(r#"name[eq]:"  padded ""#).unwrap(), condition("name", Operator::Eq, "  padded "));
    assert_eq!(parse(r#"name[eq]:"""#).unwrap(), condition("name", Operator::Eq, ""));
    assert_eq!(
        parse(r#"updatedAt[gte]:"2026-01-01T00:00:00.000Z""#).unwrap(),
        condition("updatedAt", Operator::Gte, "2026-01-01T00:00:00.000Z")
    );
    assert!(error(r#"name[eq]:"open"#).contains("has no closing \""));
    assert!(error(r#"name[eq]:"a"b"#).contains("unexpected 'b' after a quoted value"));
}

#[test]
fn bare_values_are_trimmed_and_may_hold_balanced_parentheses() {
    assert_eq!(parse("name[eq]: John Smith ").unwrap(), condition("name", Operator::Eq, "John Smith"));
    assert_eq!(
        parse("and(name[eq]:Acme (EU),city[eq]:O'Brien)").unwrap(),
        Filter::And(vec![
            condition("name", Operator::Eq, "Acme (EU)"),
            condition("city", Operator::Eq, "O'Brien")
        ])
    );
    assert_eq!(parse("a[eq]:x[1,2]").unwrap(), condition("a", Operator::Eq, "x[1,2]"));
    assert!(error("name[eq]:").contains("expected a value"));
    assert!(error("name[eq]:  ,b[eq]:1").contains("expected a value"));
}

#[test]
fn malformed_filters_say_what_is_wrong() {
    let unknown = error("city[foo]:x");
    assert!(unknown.contains("comparator 'foo' in 'city[foo]' not in eq, neq, in, containsAny"), "{unknown}");
    assert!(error("city[eq]x").contains("expected ':' after 'city[eq]'"));
    assert!(error("city[eq").contains("expected ']'"));
    assert!(error("city:x").contains("expected '[' after 'city'"));
    assert!(error("xor(a[eq]:1)").contains("'xor(' is not and(, or( or not("));
    assert!(error("not(a[eq]:1,b[eq]:2)").contains("'not' conjunction should contain only 1 condition"));
    assert!(error("and(a[eq]:1").contains("1 close bracket is missing in the query"));
    assert!(error("and(or(a[eq]:1").contains("2 close brackets are missing in the query"));
    assert!(error("a[eq]:1)").contains("1 open bracket is missing in the query"));
    assert!(error("and()").contains("expected a field name"));
    assert!(error("").contains("expected a field name"));
    assert!(error("a[eq]:1,").contains("expected a field name"));
    assert!(error(r#"a[eq]:"x" b"#).contains("at character 11: unexpected 'b' after a quoted value"));
}

#[test]
fn errors_count_characters_not_bytes() {
    assert!(error("name[eq]:\"é,ü\"x").contains("at character 15"));
}

#[test]
fn size_and_depth_are_bounded() {
    let long = format!("name[eq]:{}", "x".repeat(MAX_FILTER_BYTES));
    assert!(error(&long).contains("bytes long"));
    let deep = format!("{}a[eq]:1{}", "and(".repeat(10_000), ")".repeat(10_000));
    assert!(error(&deep).contains("bytes long"));
    let too_deep = format!("{}a[eq]:1{}", "not(".repeat(MAX_NESTING + 1), ")".repeat(MAX_NESTING + 1));
    assert!(error(&too_deep).contains("nest deeper than 16 levels"));
    let deepest = format!("{}a[eq]:1{}", "not(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
    assert!(parse(&deepest).is_ok());
    let many = vec!["a[eq]:1"; MAX_CONDITIONS + 1].join(",");
    assert!(error(&many).contains("more than 256 conditions"));
    let values = format!("a[in]:[{}]", vec!["1"; MAX_VALUES + 1].join(","));
    assert!(error(&values).contains("more than 1000 values"));
}

#[test]
fn printing_quotes_only_what_needs_it() {
    let filter = Filter::And(vec![
        condition("a", Operator::Eq, "plain"),
        condition("b.c", Operator::Like, "%x_"),
        condition("d", Operator::Eq, " a,(b)\"\\"),
        list("e", Operator::In, &["", "x"]),
    ]);
    assert_eq!(filter.to_string(), r#"and(a[eq]:plain,b.c[like]:%x_,d[eq]:" a,(b)\"\\",e[in]:["",x])"#);
}

#[test]
fn deleted_at_is_noticed_anywhere() {
    assert!(parse("or(updatedAt[gte]:1,not(deletedAt[is]:NULL))").unwrap().mentions_deleted_at());
    assert!(!parse("name[eq]:deletedAt").unwrap().mentions_deleted_at());
}

fn identifier() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_]{0,8}"
}

fn leaf() -> impl Strategy<Value = Filter> {
    let path = prop::collection::vec(identifier(), 1..3);
    let scalar = any::<String>();
    let operator = prop::sample::select(Operator::ALL.to_vec());
    (path, operator, scalar, prop::collection::vec(any::<String>(), 0..4)).prop_map(
        |(path, operator, scalar, values)| {
            let value = if operator.takes_list() { Operand::List(values) } else { Operand::Scalar(scalar) };
            Filter::Condition(Condition { path, operator, value })
        },
    )
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

proptest! {
    #[test]
    fn a_printed_filter_parses_back_to_itself(filter in filter()) {
        let text = filter.to_string();
        prop_assert_eq!(parse(&text), Ok(filter), "{}", text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn filter_shaped_text_never_panics(text in r#"[a-z.\[\]():,"'\\ %é]{0,120}"#) {
        let _ = parse(&text);
    }
}
