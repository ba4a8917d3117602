//! A parsed filter resolved against an object's fields: every path known, every operator allowed
//! for its field, every value coerced to the field's type as Twenty coerces it.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::error::QueryError;
use super::filter::{Condition, Filter, Operand, Operator};
use super::schema::{Leaf, LeafKind, ObjectSchema};

/// A filter ready to become SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    And(Vec<Predicate>),
    Or(Vec<Predicate>),
    Not(Box<Predicate>),
    Compare {
        leaf: Leaf,
        comparison: Comparison,
        value: Scalar,
    },
    /// `in[…]`; an empty list matches nothing.
    In {
        leaf: Leaf,
        values: Vec<Scalar>,
    },
    /// `is:NULL` (`null: true`) or `is:NOT_NULL`.
    IsNull {
        leaf: Leaf,
        null: bool,
    },
    /// `containsAny[…]` on an array: true when any element is one of `values`.
    ContainsAny {
        leaf: Leaf,
        values: Vec<String>,
    },
    /// `like`, `ilike`, `startsWith` and `endsWith`, matching the whole value.
    Like {
        leaf: Leaf,
        pattern: LikePattern,
        case_insensitive: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// A value coerced to its field's type. A `SELECT` value stays its option's text; the SQL compares
/// its position.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    Number(f64),
    Boolean(bool),
    /// A date-time, truncated to the millisecond.
    Instant(DateTime<Utc>),
}

/// A `LIKE` pattern as pieces, so that each backend can write it in its own syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikePattern(pub Vec<LikePiece>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LikePiece {
    Literal(String),
    /// `%`: any run of characters, the empty one included.
    AnyRun,
    /// `_`: any one character.
    AnyChar,
}

impl LikePattern {
    /// A pattern in SQL's syntax: `%` and `_` are wildcards and `\` makes the next character
    /// literal (PostgreSQL's default escape, which Twenty passes patterns to). A trailing `\` is a
    /// literal backslash rather than PostgreSQL's error.
    pub fn parse(pattern: &str) -> Self {
        let mut pieces = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => pieces.push(LikePiece::AnyRun),
                '_' => pieces.push(LikePiece::AnyChar),
                '\\' => push_literal(&mut pieces, chars.next().unwrap_or('\\')),
                c => push_literal(&mut pieces, c),
            }
        }
        LikePattern(pieces)
    }

    fn literal(text: &str) -> Vec<LikePiece> {
        if text.is_empty() { Vec::new() } else { vec![LikePiece::Literal(text.to_owned())] }
    }
}

fn push_literal(pieces: &mut Vec<LikePiece>, c: char) {
    match pieces.last_mut() {
        Some(LikePiece::Literal(text)) => text.push(c),
        _ => pieces.push(LikePiece::Literal(c.to_string())),
    }
}

impl Predicate {
    /// Resolves a parsed filter against an object's fields.
    pub fn resolve(filter: &Filter, schema: &ObjectSchema) -> Result<Predicate, QueryError> {
        let all = |items: &[Filter]| -> Result<Vec<Predicate>, QueryError> {
            items.iter().map(|item| Predicate::resolve(item, schema)).collect()
        };
        Ok(match filter {
            Filter::And(items) => Predicate::And(all(items)?),
            Filter::Or(items) => Predicate::Or(all(items)?),
            Filter::Not(item) => Predicate::Not(Box::new(Predicate::resolve(item, schema)?)),
            Filter::Condition(condition) => resolve_condition(condition, schema)?,
        })
    }
}

fn resolve_condition(condition: &Condition, schema: &ObjectSchema) -> Result<Predicate, QueryError> {
    let leaf = schema.resolve(&condition.path).map_err(QueryError::filter)?;
    let invalid = |reason: String| {
        let mut shown: String = condition.to_string().chars().take(100).collect();
        if shown.len() < condition.to_string().len() {
            shown.push('…');
        }
        QueryError::filter(format!("'filter' invalid for '{shown}': {reason}"))
    };
    let operator = condition.operator;
    let not_for_kind =
        || invalid(format!("'{}' does not apply to a {} field", operator.name(), leaf.kind.describe()));
    let (scalar, list) = match &condition.value {
        Operand::Scalar(value) => (Some(value.as_str()), None),
        Operand::List(values) => (None, Some(values.as_slice())),
    };
    let one =
        || scalar.ok_or_else(|| invalid(format!("'{}' takes one value, not an array", operator.name())));
    let many = || list.ok_or_else(|| invalid(format!("'{}' takes an array value", operator.name())));
    let comparable = !matches!(leaf.kind, LeafKind::Array { .. } | LeafKind::Json);
    let text_like =
        matches!(leaf.kind, LeafKind::Id | LeafKind::Text { .. } | LeafKind::Enum { .. } | LeafKind::Date);
    let coerce = |raw: &str| coerce(&leaf, raw, &invalid);
    let comparison = match operator {
        Operator::Eq => Comparison::Eq,
        Operator::Neq => Comparison::Neq,
        Operator::Gt => Comparison::Gt,
        Operator::Gte => Comparison::Gte,
        Operator::Lt => Comparison::Lt,
        Operator::Lte => Comparison::Lte,
        Operator::Is => {
            let null = match one()? {
                "NULL" => true,
                "NOT_NULL" => false,
                other => return Err(invalid(format!("'is' takes NULL or NOT_NULL, not '{other}'"))),
            };
            return Ok(Predicate::IsNull { leaf, null });
        }
        Operator::In if comparable => {
            let values = many()?.iter().map(|raw| coerce(raw)).collect::<Result<_, _>>()?;
            return Ok(Predicate::In { leaf, values });
        }
        Operator::ContainsAny => {
            let LeafKind::Array { options } = &leaf.kind else { return Err(not_for_kind()) };
            let values = many()?.to_vec();
            if let Some(options) = options {
                values.iter().try_for_each(|value| check_option(&leaf, options, value))?;
            }
            return Ok(Predicate::ContainsAny { leaf, values });
        }
        Operator::StartsWith | Operator::EndsWith | Operator::Like | Operator::Ilike if text_like => {
            let value = one()?;
            let pattern = match operator {
                Operator::StartsWith => {
                    LikePattern([LikePattern::literal(value), vec![LikePiece::AnyRun]].concat())
                }
                Operator::EndsWith => {
                    LikePattern([vec![LikePiece::AnyRun], LikePattern::literal(value)].concat())
                }
                _ => LikePattern::parse(value),
            };
            return Ok(Predicate::Like { leaf, pattern, case_insensitive: operator == Operator::Ilike });
        }
        Operator::In | Operator::StartsWith | Operator::EndsWith | Operator::Like | Operator::Ilike => {
            return Err(not_for_kind());
        }
    };
    if !comparable {
        return Err(not_for_kind());
    }
    let value = coerce(one()?)?;
    Ok(Predicate::Compare { leaf, comparison, value })
}

/// Twenty's message for a value that is not one of a `SELECT`'s options.
fn check_option(leaf: &Leaf, options: &[String], value: &str) -> Result<(), QueryError> {
    if options.iter().any(|option| option == value) {
        return Ok(());
    }
    Err(QueryError::filter(format!(
        "'filter' enum value '{value}' not available in '{}' enum. Available enum values are ['{}']",
        leaf.dotted(),
        options.join("', '")
    )))
}

/// A filter value as the field's type: numbers parsed, booleans `true`/`false`, date-times to the
/// millisecond, a bare date as midnight UTC, a `SELECT` value one of the options.
fn coerce(leaf: &Leaf, raw: &str, invalid: &dyn Fn(String) -> QueryError) -> Result<Scalar, QueryError> {
    if let LeafKind::Enum { options } = &leaf.kind {
        check_option(leaf, options, raw)?;
    }
    coerce_unchecked(leaf, raw).map_err(invalid)
}

fn coerce_unchecked(leaf: &Leaf, raw: &str) -> Result<Scalar, String> {
    match &leaf.kind {
        LeafKind::Id | LeafKind::Text { .. } | LeafKind::Enum { .. } => Ok(Scalar::Text(raw.to_owned())),
        LeafKind::Number => match raw.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => Ok(Scalar::Number(number)),
            _ => Err(format!("'{raw}' is not a number")),
        },
        LeafKind::Boolean => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Scalar::Boolean(true)),
            "false" => Ok(Scalar::Boolean(false)),
            _ => Err(format!("'{raw}' is not a boolean (true or false)")),
        },
        LeafKind::UpdatedAt | LeafKind::DeletedAt | LeafKind::DateTime => {
            parse_instant(raw).map(Scalar::Instant).ok_or_else(|| format!("'{raw}' is not a date-time"))
        }
        LeafKind::Date => parse_date(raw)
            .map(|date| Scalar::Text(date.format("%Y-%m-%d").to_string()))
            .ok_or_else(|| format!("'{raw}' is not a date")),
        LeafKind::Array { .. } | LeafKind::Json => {
            Err(format!("a {} field cannot be compared", leaf.kind.describe()))
        }
    }
}

/// RFC 3339 (`2026-09-21T10:15:30.412Z`), a date-time without offset (UTC) or a bare date
/// (midnight UTC), truncated to the millisecond; years 1 to 9999, which every backend can hold.
pub(crate) fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let at = DateTime::parse_from_rfc3339(text)
        .map(|at| at.to_utc())
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|at| at.and_utc()))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0).map(|at| at.and_utc())
        })?;
    let at = DateTime::from_timestamp_millis(at.timestamp_millis())?;
    (1..=9999).contains(&chrono::Datelike::year(&at)).then_some(at)
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .ok()
        .or_else(|| parse_instant(text).map(|at| at.date_naive()))
}
