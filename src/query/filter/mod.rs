//! The `filter` parameter as text: Twenty's grammar, parsed into a tree without looking at the
//! object's fields (that is [`super::predicate`]'s job).
//!
//! ```text
//! filter    := list
//! list      := expr ("," expr)*                 a list of more than one is `and`
//! expr      := ("and" | "or" | "not") "(" list ")"  |  path "[" operator "]" ":" value
//! path      := identifier ("." identifier)*
//! value     := "[" (scalar ("," scalar)*)? "]"  for `in` and `containsAny`, else scalar
//! scalar    := '"' … '"'  |  "'" … "'"  |  bare text
//! ```
//!
//! A quoted scalar keeps everything between its quotes, with `\` escaping the next character. Bare
//! text runs to the next `,` or `)` that is not inside parentheses or brackets of its own, and is
//! trimmed, so `name[eq]:Acme (EU)` works as it does in Twenty.

mod parse;
#[cfg(test)]
mod tests;

use std::fmt;

pub use parse::{MAX_CONDITIONS, MAX_FILTER_BYTES, MAX_NESTING, MAX_VALUES, parse};

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Condition(Condition),
}

/// `path[operator]:value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The dotted path's segments: `emails.primaryEmail` is `["emails", "primaryEmail"]`.
    pub path: Vec<String>,
    pub operator: Operator,
    pub value: Operand,
}

/// A condition's value: a list for `in` and `containsAny`, one scalar otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Scalar(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    Neq,
    In,
    ContainsAny,
    Is,
    Gt,
    Gte,
    Lt,
    Lte,
    StartsWith,
    EndsWith,
    Like,
    Ilike,
}

impl Operator {
    /// Every operator, in the order Twenty lists them.
    pub const ALL: [Operator; 13] = [
        Operator::Eq,
        Operator::Neq,
        Operator::In,
        Operator::ContainsAny,
        Operator::Is,
        Operator::Gt,
        Operator::Gte,
        Operator::Lt,
        Operator::Lte,
        Operator::StartsWith,
        Operator::EndsWith,
        Operator::Like,
        Operator::Ilike,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::In => "in",
            Operator::ContainsAny => "containsAny",
            Operator::Is => "is",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::StartsWith => "startsWith",
            Operator::EndsWith => "endsWith",
            Operator::Like => "like",
            Operator::Ilike => "ilike",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Operator::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether the value is a `[…]` list.
    pub fn takes_list(self) -> bool {
        matches!(self, Operator::In | Operator::ContainsAny)
    }
}

impl Filter {
    /// Whether a condition anywhere in the filter is on `deletedAt`: Twenty then returns
    /// soft-deleted records too.
    pub fn mentions_deleted_at(&self) -> bool {
        match self {
            Filter::And(items) | Filter::Or(items) => items.iter().any(Filter::mentions_deleted_at),
            Filter::Not(item) => item.mentions_deleted_at(),
            Filter::Condition(condition) => condition.path.first().is_some_and(|field| field == "deletedAt"),
        }
    }
}

/// Prints the filter in the grammar above; [`parse`] reads it back to an equal tree.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = |f: &mut fmt::Formatter<'_>, name: &str, items: &[Filter]| {
            write!(f, "{name}(")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{item}")?;
            }
            f.write_str(")")
        };
        match self {
            Filter::And(items) => group(f, "and", items),
            Filter::Or(items) => group(f, "or", items),
            Filter::Not(item) => write!(f, "not({item})"),
            Filter::Condition(condition) => write!(f, "{condition}"),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]:", self.path.join("."), self.operator.name())?;
        match &self.value {
            Operand::Scalar(value) => write_scalar(f, value),
            Operand::List(values) => {
                f.write_str("[")?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_scalar(f, value)?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Bare when that reads back the same, else double-quoted with `"` and `\` escaped.
fn write_scalar(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    let bare = !value.is_empty()
        && value.trim() == value
        && !value.chars().any(|c| matches!(c, ',' | '(' | ')' | '[' | ']' | '"' | '\'' | '\\'));
    if bare {
        return f.write_str(value);
    }
    f.write_str("\"")?;
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("\"")
}
