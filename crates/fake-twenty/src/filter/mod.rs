//! Twenty's `filter` parameter (protocol notes, sections 4 and 9): the tree the grammar builds, its
//! check against the object's fields (`typed`), and its value on a row under SQL's three-valued
//! logic. The grammar itself is in `parser`.

mod parser;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;

use chrono::NaiveDate;
use serde_json::Value;

use super::schema::{Kind, Schema};
use super::state::Row;
use super::values::parse_timestamp;

/// A parsed `filter`.
#[derive(Debug, PartialEq)]
pub(super) enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `path[operator]:value`; the path is dotted for a composite field's part. `kind` is the
    /// path's type once [`Filter::typed`] has checked it; an untyped condition compares values by
    /// their JSON types alone.
    Condition {
        path: Vec<String>,
        test: Test,
        kind: Option<Kind>,
    },
}

/// What a condition asks of the value at its path.
#[derive(Debug, PartialEq)]
pub(super) enum Test {
    /// `eq neq gt gte lt lte`.
    Compare(Comparison, Operand),
    /// `in:[a,b]`: equal to one of them.
    In(Vec<Operand>),
    /// `containsAny:[a,b]`: an array holding one of them.
    ContainsAny(Vec<Operand>),
    /// `is:NULL` (true) or `is:NOT_NULL` (false).
    IsNull(bool),
    /// `like ilike startsWith endsWith`, on the value as text.
    Text(TextMatch, String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Comparison {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TextMatch {
    /// SQL `LIKE`: `%` any run, `_` any one character.
    Like,
    /// `LIKE` ignoring case.
    Ilike,
    StartsWith,
    EndsWith,
}

/// A value from the filter, read once as text, as an instant and as a number: which one counts
/// depends on the record value it meets (Twenty coerces by the field's type).
#[derive(Debug, PartialEq)]
pub(super) struct Operand {
    text: String,
    time: Option<i64>,
    number: Option<f64>,
}

impl Operand {
    fn new(text: String) -> Operand {
        let time = parse_timestamp(&text).or_else(|| {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_millis())
        });
        let number = text.parse::<f64>().ok().filter(|n| n.is_finite());
        Operand { text, time, number }
    }
}

impl Filter {
    /// Twenty's `filter` syntax; the error is the 400 message.
    pub(super) fn parse(text: &str) -> Result<Filter, String> {
        parser::parse(text)
    }

    /// Checks every condition against the object's fields, as Twenty does before it runs a
    /// filter: the path exists, the operator applies to its type, the values coerce to it. The
    /// error is the 400 message.
    pub(super) fn typed(&mut self, schema: &Schema) -> Result<(), String> {
        match self {
            Filter::And(items) | Filter::Or(items) => {
                items.iter_mut().try_for_each(|item| item.typed(schema))
            }
            Filter::Not(item) => item.typed(schema),
            Filter::Condition { path, test, kind } => {
                let field = schema.kind(path)?;
                test.check(&field)
                    .map_err(|reason| format!("invalid filter on '{}': {reason}", path.join(".")))?;
                *kind = Some(field);
                Ok(())
            }
        }
    }

    /// Whether a condition on `deletedAt` appears anywhere: soft-deleted records then take part.
    pub(super) fn mentions_deleted_at(&self) -> bool {
        match self {
            Filter::And(items) | Filter::Or(items) => items.iter().any(Filter::mentions_deleted_at),
            Filter::Not(item) => item.mentions_deleted_at(),
            Filter::Condition { path, .. } => path.first().is_some_and(|field| field == "deletedAt"),
        }
    }

    /// SQL's three-valued logic: `None` is unknown (a comparison with NULL). A row matches on
    /// `Some(true)` only.
    pub(super) fn eval(&self, row: &Row) -> Option<bool> {
        match self {
            Filter::And(items) => {
                let mut result = Some(true);
                for item in items {
                    match item.eval(row) {
                        Some(false) => return Some(false),
                        None => result = None,
                        Some(true) => {}
                    }
                }
                result
            }
            Filter::Or(items) => any(items.iter().map(|item| item.eval(row))),
            Filter::Not(item) => item.eval(row).map(|b| !b),
            Filter::Condition { path, test, kind } => test.eval(row, path, kind.as_ref()),
        }
    }
}

impl Test {
    /// Whether the test applies to a field of `kind` with its values; the error says why not.
    fn check(&self, kind: &Kind) -> Result<(), String> {
        let coerce = |operand: &Operand| match kind {
            Kind::Number if operand.number.is_none() => Err(format!("'{}' is not a number", operand.text)),
            Kind::DateTime if operand.time.is_none() => Err(format!("'{}' is not a date-time", operand.text)),
            Kind::Select(options) if !options.contains(&operand.text) => {
                Err(format!("'{}' is not one of the options", operand.text))
            }
            Kind::Array | Kind::Json => Err("its values cannot be compared".to_owned()),
            _ => Ok(()),
        };
        match self {
            Test::IsNull(_) => Ok(()),
            Test::Compare(_, operand) => coerce(operand),
            Test::In(operands) => operands.iter().try_for_each(coerce),
            Test::ContainsAny(_) if *kind == Kind::Array => Ok(()),
            Test::ContainsAny(_) => Err("containsAny applies to arrays".to_owned()),
            Test::Text(..) if matches!(kind, Kind::Text { .. } | Kind::Select(_)) => Ok(()),
            Test::Text(..) => Err("a text match applies to text".to_owned()),
        }
    }

    fn eval(&self, row: &Row, path: &[String], kind: Option<&Kind>) -> Option<bool> {
        let value = row.field(path).filter(|v| !v.is_null());
        if let Some(Kind::Text { empty_is_null: true }) = kind {
            // Twenty's rule for text: `''` is null to `is:NULL`, and `eq:""` matches both.
            let empty = value.is_none_or(|v| v.as_str() == Some(""));
            match self {
                Test::IsNull(true) => return Some(empty),
                Test::Compare(Comparison::Eq, operand) if operand.text.is_empty() => return Some(empty),
                _ => {}
            }
        }
        let Some(value) = value else {
            // NULL: `is` answers, every other test is unknown.
            return match self {
                Test::IsNull(null) => Some(*null),
                _ => None,
            };
        };
        let cached = row.cached_timestamp(path);
        let compare = |operand: &Operand| -> Option<Ordering> {
            match (kind, value) {
                (Some(Kind::Text { .. }), Value::String(text)) => {
                    return Some(text.as_str().cmp(&operand.text));
                }
                (Some(Kind::Select(options)), Value::String(text)) => {
                    return Some(Kind::position(options, text).cmp(&Kind::position(options, &operand.text)));
                }
                (Some(Kind::Text { .. } | Kind::Select(_)), _) => return None,
                _ => {}
            }
            if let (Some(Some(ms)), Some(time)) = (cached, operand.time) {
                return Some(ms.cmp(&time));
            }
            compare_value(value, operand)
        };
        let equal = |ordering: Option<Ordering>| ordering.map(|o| o == Ordering::Equal);
        match self {
            Test::IsNull(null) => Some(!null),
            Test::Compare(comparison, operand) => compare(operand).map(|o| comparison.holds(o)),
            Test::In(operands) => any(operands.iter().map(|operand| equal(compare(operand)))),
            Test::ContainsAny(operands) => {
                let Value::Array(items) = value else { return None };
                any(items
                    .iter()
                    .flat_map(|item| operands.iter().map(move |operand| equal(compare_value(item, operand)))))
            }
            Test::Text(how, pattern) => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return None,
                };
                Some(match how {
                    TextMatch::StartsWith => text.starts_with(pattern.as_str()),
                    TextMatch::EndsWith => text.ends_with(pattern.as_str()),
                    TextMatch::Like => like(&text, pattern),
                    TextMatch::Ilike => like(&text.to_lowercase(), &pattern.to_lowercase()),
                })
            }
        }
    }
}

impl Comparison {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Comparison::Eq => ordering == Ordering::Equal,
            Comparison::Neq => ordering != Ordering::Equal,
            Comparison::Gt => ordering == Ordering::Greater,
            Comparison::Gte => ordering != Ordering::Less,
            Comparison::Lt => ordering == Ordering::Less,
            Comparison::Lte => ordering != Ordering::Greater,
        }
    }
}

/// Three-valued `or`: true if any is true, else unknown if any is unknown, else false.
fn any(values: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let mut result = Some(false);
    for value in values {
        match value {
            Some(true) => return Some(true),
            None => result = None,
            Some(false) => {}
        }
    }
    result
}

/// A record value against a filter operand: instants when both are timestamps, numbers when the
/// value is a number, text otherwise. `None` when they cannot be compared.
fn compare_value(value: &Value, operand: &Operand) -> Option<Ordering> {
    match value {
        Value::String(s) => match (operand.time, parse_timestamp(s)) {
            (Some(time), Some(ms)) => Some(ms.cmp(&time)),
            _ => Some(s.as_str().cmp(operand.text.as_str())),
        },
        Value::Number(n) => n.as_f64()?.partial_cmp(&operand.number?),
        Value::Bool(b) => match operand.text.to_ascii_lowercase().as_str() {
            "true" => Some(b.cmp(&true)),
            "false" => Some(b.cmp(&false)),
            _ => None,
        },
        _ => None,
    }
}

/// SQL `LIKE`: `%` any run, `_` any one character.
fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    let (mut t, mut p) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '_' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '%' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((bp, bt)) = backtrack {
            p = bp + 1;
            t = bt + 1;
            backtrack = Some((bp, bt + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '%')
}
