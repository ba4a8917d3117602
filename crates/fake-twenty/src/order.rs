//! The order of a record list (`order_by`), and the keyset cursors that page through it, in
//! Twenty's format: standard base64 of the JSON object of the order-by values and the id.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::schema::{Kind, Schema};
use super::state::Row;
use super::values::parse_timestamp;

/// One `order_by` key: a (dotted) field path, its direction and its field's kind.
pub(super) struct OrderItem {
    pub(super) path: Vec<String>,
    pub(super) desc: bool,
    nulls_first: bool,
    kind: Kind,
}

/// `f1[Dir],f2,…` with `Dir` one of `AscNullsFirst` (the default), `AscNullsLast`,
/// `DescNullsFirst`, `DescNullsLast`; `id` ascending is appended unless the order names it. Each
/// path must be a field of the object that can be sorted.
pub(super) fn parse_order_by(text: Option<&str>, schema: &Schema) -> Result<Vec<OrderItem>, String> {
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
            let path: Vec<String> = field.split('.').map(str::to_owned).collect();
            let kind = schema.kind(&path)?;
            if !kind.is_sortable() {
                return Err(format!("cannot order by {field:?}"));
            }
            order.push(OrderItem { path, desc, nulls_first, kind });
        }
    }
    if !order.iter().any(|item| item.path == ["id"]) {
        let kind = Kind::Text { empty_is_null: false };
        order.push(OrderItem { path: vec!["id".into()], desc: false, nulls_first: true, kind });
    }
    Ok(order)
}

/// The cursor of `row` under `order`: base64 of `{"<field>": value, …, "id": …}`, a composite
/// sub-field's value under its field (`{"name": {"firstName": …}}`).
pub(super) fn encode_cursor(row: &Row, order: &[OrderItem]) -> String {
    let mut object = Map::new();
    for item in order {
        let value = row.field(&item.path).cloned().unwrap_or(Value::Null);
        match item.path.as_slice() {
            [field, sub_field] => {
                let nested = object.entry(field.clone()).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(nested) = nested {
                    nested.insert(sub_field.clone(), value);
                }
            }
            _ => {
                object.insert(item.path.join("."), value);
            }
        }
    }
    STANDARD.encode(Value::Object(object).to_string())
}

/// The sort key a cursor stands for: a value for each key of `order`, or Twenty's 400
/// `INVALID_CURSOR` message.
pub(super) fn cursor_key(text: &str, order: &[OrderItem]) -> Result<Vec<SortVal>, String> {
    let invalid = || format!("Invalid cursor: {text}");
    let bytes = STANDARD.decode(text.trim().replace(' ', "+")).map_err(|_| invalid())?;
    let object: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if !object.is_object() {
        return Err(invalid());
    }
    order
        .iter()
        .map(|item| {
            let value = item.path.iter().try_fold(&object, |value, segment| value.get(segment)).ok_or_else(|| {
                format!(
                    "Cursor is missing the value for orderBy field {}: it was encoded for a different orderBy. \
                     Restart pagination without a cursor",
                    item.path.join(".")
                )
            })?;
            Ok(item.sort_val(Some(value)))
        })
        .collect()
}

impl OrderItem {
    /// A value as this key sorts it: a `SELECT` by its option's position.
    fn sort_val(&self, value: Option<&Value>) -> SortVal {
        match (&self.kind, value) {
            (Kind::Select(options), Some(Value::String(text))) => {
                SortVal::Num(Kind::position(options, text) as f64)
            }
            (Kind::Text { .. }, Some(Value::String(text))) => SortVal::Text(text.clone()),
            _ => SortVal::of(value),
        }
    }
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
            _ => item.sort_val(row.field(&item.path)),
        })
        .collect()
}
