//! The order of a record list (`order_by`), and the keyset cursors that page through it.

use std::cmp::Ordering;

use serde_json::Value;

use super::state::Row;
use super::values::parse_timestamp;

/// One `order_by` key: a (dotted) field path and its direction.
pub(super) struct OrderItem {
    pub(super) path: Vec<String>,
    pub(super) desc: bool,
    nulls_first: bool,
}

/// `f1[Dir],f2,…` with `Dir` one of `AscNullsFirst` (the default), `AscNullsLast`,
/// `DescNullsFirst`, `DescNullsLast`; `id` ascending is appended unless the order names it.
pub(super) fn parse_order_by(text: Option<&str>) -> Result<Vec<OrderItem>, String> {
    let mut order = Vec::new();
    if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
        for item in text.split(',') {
            let item = item.trim();
            let (field, direction) = match item.split_once('[') {
                Some((field, rest)) => {
                    let direction =
                        rest.strip_suffix(']').ok_or_else(|| format!("invalid order_by {item:?}"))?;
                    (field, direction)
                }
                None => (item, "AscNullsFirst"),
            };
            let (desc, nulls_first) = match direction {
                "AscNullsFirst" => (false, true),
                "AscNullsLast" => (false, false),
                "DescNullsFirst" => (true, true),
                "DescNullsLast" => (true, false),
                _ => return Err(format!("invalid order_by direction {direction:?}")),
            };
            if field.is_empty() || !field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                return Err(format!("invalid order_by field {field:?}"));
            }
            order.push(OrderItem { path: field.split('.').map(str::to_owned).collect(), desc, nulls_first });
        }
    }
    if !order.iter().any(|item| item.path == ["id"]) {
        order.push(OrderItem { path: vec!["id".into()], desc: false, nulls_first: true });
    }
    Ok(order)
}

/// The cursor of `row` under `order`: the hex of the JSON array of its order-by values. Twenty's
/// cursors are base64 of a JSON object; clients treat both as opaque.
pub(super) fn encode_cursor(row: &Row, order: &[OrderItem]) -> String {
    let values: Vec<Value> =
        order.iter().map(|item| row.field(&item.path).cloned().unwrap_or(Value::Null)).collect();
    hex::encode(Value::Array(values).to_string())
}

fn decode_cursor(text: &str) -> Option<Vec<Value>> {
    let bytes = hex::decode(text.trim()).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Array(values) => Some(values),
        _ => None,
    }
}

/// The sort key a cursor stands for, checked against `order`.
pub(super) fn cursor_key(text: &str, order: &[OrderItem]) -> Result<Vec<SortVal>, String> {
    let values = decode_cursor(text).ok_or_else(|| format!("invalid cursor {text:?}"))?;
    if values.len() != order.len() {
        return Err(format!("cursor {text:?} does not match the order_by"));
    }
    Ok(values.iter().map(|v| SortVal::of(Some(v))).collect())
}

/// A sortable value: timestamps as instants, numbers as numbers, anything else by its text.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum SortVal {
    Null,
    Bool(bool),
    Num(f64),
    Time(i64),
    Text(String),
}

impl SortVal {
    fn of(value: Option<&Value>) -> SortVal {
        match value {
            None | Some(Value::Null) => SortVal::Null,
            Some(Value::Bool(b)) => SortVal::Bool(*b),
            Some(Value::Number(n)) => SortVal::Num(n.as_f64().unwrap_or(f64::NAN)),
            Some(Value::String(s)) => {
                parse_timestamp(s).map_or_else(|| SortVal::Text(s.clone()), SortVal::Time)
            }
            Some(other) => SortVal::Text(other.to_string()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            SortVal::Null => 0,
            SortVal::Bool(_) => 1,
            SortVal::Num(_) => 2,
            SortVal::Time(_) => 3,
            SortVal::Text(_) => 4,
        }
    }

    fn cmp_non_null(&self, other: &SortVal) -> Ordering {
        match (self, other) {
            (SortVal::Bool(a), SortVal::Bool(b)) => a.cmp(b),
            (SortVal::Num(a), SortVal::Num(b)) => a.total_cmp(b),
            (SortVal::Time(a), SortVal::Time(b)) => a.cmp(b),
            (SortVal::Text(a), SortVal::Text(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

pub(super) fn compare_keys(a: &[SortVal], b: &[SortVal], order: &[OrderItem]) -> Ordering {
    for ((x, y), item) in a.iter().zip(b).zip(order) {
        let ordering = match (x == &SortVal::Null, y == &SortVal::Null) {
            (true, true) => Ordering::Equal,
            (true, false) if item.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if item.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) if item.desc => y.cmp_non_null(x),
            (false, false) => x.cmp_non_null(y),
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

pub(super) fn sort_key(row: &Row, order: &[OrderItem]) -> Vec<SortVal> {
    order
        .iter()
        .map(|item| match row.cached_timestamp(&item.path) {
            Some(Some(ms)) => SortVal::Time(ms),
            _ => SortVal::of(row.field(&item.path)),
        })
        .collect()
}
