//! The `order_by` parameter: `field_1[AscNullsFirst],field_2.subField[DescNullsLast],field_3`.

use super::error::{Parameter, QueryError};
use super::schema::{Leaf, ObjectSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    AscNullsFirst,
    AscNullsLast,
    DescNullsFirst,
    DescNullsLast,
}

impl Direction {
    pub const ALL: [Direction; 4] = [
        Direction::AscNullsFirst,
        Direction::AscNullsLast,
        Direction::DescNullsFirst,
        Direction::DescNullsLast,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Direction::AscNullsFirst => "AscNullsFirst",
            Direction::AscNullsLast => "AscNullsLast",
            Direction::DescNullsFirst => "DescNullsFirst",
            Direction::DescNullsLast => "DescNullsLast",
        }
    }

    pub fn is_descending(self) -> bool {
        matches!(self, Direction::DescNullsFirst | Direction::DescNullsLast)
    }

    pub fn nulls_first(self) -> bool {
        matches!(self, Direction::AscNullsFirst | Direction::DescNullsFirst)
    }

    /// The same order read from the other end: what a backward page scans by.
    pub fn reversed(self) -> Self {
        match self {
            Direction::AscNullsFirst => Direction::DescNullsLast,
            Direction::AscNullsLast => Direction::DescNullsFirst,
            Direction::DescNullsFirst => Direction::AscNullsLast,
            Direction::DescNullsLast => Direction::AscNullsFirst,
        }
    }
}

/// One item of the ordering.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub leaf: Leaf,
    pub direction: Direction,
}

/// Parses `order_by` (absent or blank: the default, `id`). Items without a direction are
/// `AscNullsFirst`; `id` ascending is appended unless the ordering names it; a path named twice
/// keeps its first place, as the second could not change the order.
pub fn parse_order_by(text: Option<&str>, schema: &ObjectSchema) -> Result<Vec<SortKey>, QueryError> {
    let invalid = |message: String| QueryError::new(Parameter::OrderBy, message);
    let mut keys: Vec<SortKey> = Vec::new();
    for item in text.map(str::trim).filter(|t| !t.is_empty()).map(|t| t.split(',')).into_iter().flatten() {
        let item = item.trim();
        let (field, direction) = match item.split_once('[') {
            None => (item, Direction::AscNullsFirst),
            Some((field, rest)) => {
                let name = rest.strip_suffix(']').unwrap_or(rest);
                let direction = Direction::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| {
                    let allowed: Vec<&str> = Direction::ALL.iter().map(|d| d.name()).collect();
                    invalid(format!(
                        "'order_by' direction '{name}' invalid. Allowed values are '{}'. \
                         eg: ?order_by=field_1[AscNullsFirst],field_2[DescNullsLast],field_3",
                        allowed.join("', '")
                    ))
                })?;
                (field.trim(), direction)
            }
        };
        let path: Vec<String> = field.split('.').map(str::to_owned).collect();
        let leaf = schema.resolve(&path).map_err(invalid)?;
        if !leaf.kind.is_sortable() {
            return Err(invalid(format!(
                "'order_by' cannot order by '{field}': it is a {} field",
                leaf.kind.describe()
            )));
        }
        if !keys.iter().any(|key| key.leaf.path == leaf.path) {
            keys.push(SortKey { leaf, direction });
        }
    }
    if !keys.iter().any(|key| key.leaf.path == ["id"]) {
        let id = schema.resolve(&["id".to_owned()]).map_err(invalid)?;
        keys.push(SortKey { leaf: id, direction: Direction::AscNullsFirst });
    }
    Ok(keys)
}
