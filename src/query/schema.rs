//! An object's fields as the read API sees them, built from the field definitions that Twenty's
//! metadata API gives (and `twenty_objects.fields` stores): which paths a filter or an ordering
//! may name, and how each value is compared.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::fields::{SubFieldKind, composite_sub_fields};

/// How a value is stored, compared and ordered.
#[derive(Debug, Clone, PartialEq)]
pub enum LeafKind {
    /// The record's id: the `id` column, never null.
    Id,
    /// `updatedAt`: the `updated_at` column, never null.
    UpdatedAt,
    /// `deletedAt`: the `deleted_at` column.
    DeletedAt,
    /// Text, compared and ordered by code point. With `empty_is_null`, `''` counts as null for
    /// `is` and `eq:""`: Twenty's rule for text fields and text sub-fields, which UUIDs and currency
    /// codes do not follow.
    Text {
        empty_is_null: bool,
    },
    Number,
    Boolean,
    /// A `DATE_TIME` in the record's data, compared to the millisecond.
    DateTime,
    /// A `DATE` (`2026-09-30`), compared as its fixed-width text.
    Date,
    /// `SELECT` or `RATING`: compared and ordered by the options' positions (`options` in position
    /// order, never empty).
    Enum {
        options: Arc<[String]>,
    },
    /// `MULTI_SELECT`, `ARRAY` and array sub-fields: `containsAny` and `is` only.
    Array {
        options: Option<Arc<[String]>>,
    },
    /// `RAW_JSON`, JSON sub-fields and types the read API does not know: `is` only.
    Json,
}

impl LeafKind {
    pub fn is_nullable(&self) -> bool {
        !matches!(self, LeafKind::Id | LeafKind::UpdatedAt)
    }

    /// Whether an ordering may use it: a scalar the database can sort.
    pub fn is_sortable(&self) -> bool {
        !matches!(self, LeafKind::Array { .. } | LeafKind::Json)
    }

    /// What the value is, for messages.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            LeafKind::Id | LeafKind::Text { .. } => "text",
            LeafKind::UpdatedAt | LeafKind::DeletedAt | LeafKind::DateTime => "date-time",
            LeafKind::Number => "number",
            LeafKind::Boolean => "boolean",
            LeafKind::Date => "date",
            LeafKind::Enum { .. } => "select",
            LeafKind::Array { .. } => "array",
            LeafKind::Json => "JSON",
        }
    }
}

/// A field path resolved against an object's fields. Only [`ObjectSchema::resolve`] makes one, so
/// every segment of its path is a known field or sub-field name, and an identifier
/// (`[A-Za-z_][A-Za-z0-9_]*`) that SQL may hold as a literal.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub(in crate::query) path: Vec<String>,
    pub(in crate::query) kind: LeafKind,
}

impl Leaf {
    /// The field and, for a composite field, its sub-field: `["name", "firstName"]`.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    pub fn kind(&self) -> &LeafKind {
        &self.kind
    }

    /// The dotted path: `name.firstName`.
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

/// A many-to-one relation: the record holds `join_column` (`companyId`); with `depth=1` Twenty nests
/// the target record under `name` (`company`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManyToOne {
    pub name: String,
    pub join_column: String,
    /// The target object's `nameSingular`.
    pub target: String,
}

type SubFields = &'static [(&'static str, SubFieldKind)];

/// How the read API filters and orders a composite sub-field.
fn sub_field_leaf(kind: SubFieldKind) -> LeafKind {
    match kind {
        SubFieldKind::Text => LeafKind::Text { empty_is_null: true },
        SubFieldKind::PlainText => LeafKind::Text { empty_is_null: false },
        SubFieldKind::Micros | SubFieldKind::Number => LeafKind::Number,
        SubFieldKind::TextArray => LeafKind::Array { options: None },
        SubFieldKind::Json => LeafKind::Json,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Leaf(LeafKind),
    Composite(SubFields),
}

/// The fields of one object that the read API can filter and order by.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSchema {
    name_singular: String,
    is_custom: bool,
    fields: HashMap<String, Shape>,
    relations: Vec<ManyToOne>,
}

/// `[A-Za-z_][A-Za-z0-9_]*`: the names the read API accepts, and may therefore quote into SQL.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl ObjectSchema {
    /// Reads the metadata API's field definitions (`[{name, type, isActive, options, relation,
    /// settings}, …]`). Inactive fields, one-to-many relations and names that are not identifiers are
    /// left out; `id`, `createdAt`, `updatedAt` and `deletedAt` are always there, as every record
    /// has them.
    pub fn from_metadata(name_singular: &str, is_custom: bool, fields: &Value) -> Self {
        let mut schema = ObjectSchema {
            name_singular: name_singular.to_owned(),
            is_custom,
            fields: HashMap::new(),
            relations: Vec::new(),
        };
        for field in fields.as_array().map(Vec::as_slice).unwrap_or_default() {
            schema.add_field(field);
        }
        for (name, kind) in [
            ("id", LeafKind::Id),
            ("createdAt", LeafKind::DateTime),
            ("updatedAt", LeafKind::UpdatedAt),
            ("deletedAt", LeafKind::DeletedAt),
        ] {
            schema.fields.insert(name.to_owned(), Shape::Leaf(kind));
        }
        schema
    }

    fn add_field(&mut self, field: &Value) {
        let Some(name) = field.get("name").and_then(Value::as_str).filter(|n| is_identifier(n)) else {
            return;
        };
        if field.get("isActive").and_then(Value::as_bool) == Some(false) {
            return;
        }
        let field_type = field.get("type").and_then(Value::as_str).unwrap_or_default();
        let options = || enum_options(field);
        let kind = match field_type {
            "UUID" => LeafKind::Text { empty_is_null: false },
            "TEXT" | "RICH_TEXT" => LeafKind::Text { empty_is_null: true },
            "NUMBER" | "NUMERIC" | "POSITION" => LeafKind::Number,
            "BOOLEAN" => LeafKind::Boolean,
            "DATE_TIME" => LeafKind::DateTime,
            "DATE" => LeafKind::Date,
            "SELECT" | "RATING" => match options() {
                Some(options) => LeafKind::Enum { options },
                None => LeafKind::Text { empty_is_null: false },
            },
            "MULTI_SELECT" | "ARRAY" => LeafKind::Array { options: options() },
            "RELATION" => return self.add_relation(name, field),
            other => match composite_sub_fields(other) {
                Some(sub_fields) => {
                    self.fields.insert(name.to_owned(), Shape::Composite(sub_fields));
                    return;
                }
                None => LeafKind::Json,
            },
        };
        self.fields.insert(name.to_owned(), Shape::Leaf(kind));
    }

    /// A many-to-one relation is filtered and ordered by its join column; other kinds have no
    /// value in the record.
    fn add_relation(&mut self, name: &str, field: &Value) {
        let relation = field.get("relation");
        let settings = field.get("settings");
        let relation_type = relation
            .and_then(|r| r.get("type"))
            .or_else(|| settings.and_then(|s| s.get("relationType")))
            .and_then(Value::as_str);
        if relation_type != Some("MANY_TO_ONE") {
            return;
        }
        let join_column = settings
            .and_then(|s| s.get("joinColumnName"))
            .and_then(Value::as_str)
            .map_or_else(|| format!("{name}Id"), str::to_owned);
        if !is_identifier(&join_column) {
            return;
        }
        let target = relation
            .and_then(|r| r.get("targetObjectMetadata"))
            .and_then(|t| t.get("nameSingular"))
            .and_then(Value::as_str);
        if let Some(target) = target {
            self.relations.push(ManyToOne {
                name: name.to_owned(),
                join_column: join_column.clone(),
                target: target.to_owned(),
            });
        }
        self.fields.insert(join_column, Shape::Leaf(LeafKind::Text { empty_is_null: false }));
    }

    pub fn name_singular(&self) -> &str {
        &self.name_singular
    }

    /// The object's many-to-one relations: what `depth=1` nests.
    pub fn many_to_one(&self) -> &[ManyToOne] {
        &self.relations
    }

    /// The table name Twenty's messages use: custom objects are prefixed with `_`.
    fn target_table(&self) -> String {
        if self.is_custom { format!("_{}", self.name_singular) } else { self.name_singular.clone() }
    }

    /// Resolves a path (`city`, `name.firstName`); the error is Twenty's message.
    pub fn resolve(&self, path: &[String]) -> Result<Leaf, String> {
        let missing =
            || format!("field '{}' does not exist in '{}' object", path.join("."), self.target_table());
        let Some(field) = path.first() else { return Err(missing()) };
        let Some(shape) = self.fields.get(field) else {
            return Err(format!("field '{field}' does not exist in '{}' object", self.target_table()));
        };
        let kind = match (shape, &path[1..]) {
            (Shape::Leaf(kind), []) => kind.clone(),
            (Shape::Composite(sub_fields), [sub_field]) => {
                let (_, kind) = sub_fields.iter().find(|(name, _)| name == sub_field).ok_or_else(missing)?;
                sub_field_leaf(*kind)
            }
            (Shape::Composite(sub_fields), []) => {
                let example = sub_fields.first().map_or("", |(name, _)| name);
                return Err(format!(
                    "field '{field}' is a composite field: name one of its sub-fields, e.g. '{field}.{example}'"
                ));
            }
            _ => return Err(missing()),
        };
        Ok(Leaf { path: path.to_vec(), kind })
    }
}

/// The option values of a `SELECT`, `RATING` or `MULTI_SELECT` field in position order; `None`
/// when the field has none.
fn enum_options(field: &Value) -> Option<Arc<[String]>> {
    let mut options: Vec<(f64, usize, String)> = field
        .get("options")?
        .as_array()?
        .iter()
        .enumerate()
        .filter_map(|(index, option)| {
            let value = option.get("value")?.as_str()?.to_owned();
            let position = option.get("position").and_then(Value::as_f64).unwrap_or(index as f64);
            Some((position, index, value))
        })
        .collect();
    options.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let values: Arc<[String]> = options.into_iter().map(|(_, _, value)| value).collect();
    (!values.is_empty()).then_some(values)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split('.').map(str::to_owned).collect()
    }

    fn schema() -> ObjectSchema {
        ObjectSchema::from_metadata(
            "opportunity",
            false,
            &json!([
                {"name": "name", "type": "TEXT"},
                {"name": "amount", "type": "CURRENCY"},
                {"name": "stage", "type": "SELECT", "options": [
                    {"value": "LATE", "position": 2}, {"value": "EARLY", "position": 0},
                    {"value": "MIDDLE", "position": 1}
                ]},
                {"name": "old", "type": "TEXT", "isActive": false},
                {"name": "bad name", "type": "TEXT"},
                {"name": "tags", "type": "MULTI_SELECT", "options": []},
                {"name": "company", "type": "RELATION", "relation": {
                    "type": "MANY_TO_ONE", "targetObjectMetadata": {"nameSingular": "company"}
                }},
                {"name": "pointOfContact", "type": "RELATION",
                 "settings": {"relationType": "MANY_TO_ONE", "joinColumnName": "pointOfContactId"},
                 "relation": {"targetObjectMetadata": {"nameSingular": "person"}}},
                {"name": "notes", "type": "RELATION", "relation": {"type": "ONE_TO_MANY"}},
            ]),
        )
    }

    #[test]
    fn fields_resolve_to_their_kinds() {
        let schema = schema();
        assert_eq!(schema.resolve(&path("name")).unwrap().kind, LeafKind::Text { empty_is_null: true });
        assert_eq!(schema.resolve(&path("amount.amountMicros")).unwrap().kind, LeafKind::Number);
        assert_eq!(
            schema.resolve(&path("amount.currencyCode")).unwrap().kind,
            LeafKind::Text { empty_is_null: false }
        );
        assert_eq!(schema.resolve(&path("id")).unwrap().kind, LeafKind::Id);
        assert_eq!(schema.resolve(&path("updatedAt")).unwrap().kind, LeafKind::UpdatedAt);
        assert_eq!(schema.resolve(&path("createdAt")).unwrap().kind, LeafKind::DateTime);
        assert_eq!(schema.resolve(&path("tags")).unwrap().kind, LeafKind::Array { options: None });
    }

    #[test]
    fn select_options_are_in_position_order() {
        let LeafKind::Enum { options } = schema().resolve(&path("stage")).unwrap().kind else {
            panic!("stage is a select")
        };
        assert_eq!(&*options, ["EARLY", "MIDDLE", "LATE"]);
    }

    #[test]
    fn many_to_one_relations_are_their_join_columns() {
        let schema = schema();
        assert!(schema.resolve(&path("companyId")).is_ok());
        assert!(schema.resolve(&path("pointOfContactId")).is_ok());
        assert!(schema.resolve(&path("company")).is_err());
        assert!(schema.resolve(&path("notes")).is_err());
        let targets: Vec<_> = schema.many_to_one().iter().map(|r| (&*r.name, &*r.target)).collect();
        assert_eq!(targets, [("company", "company"), ("pointOfContact", "person")]);
    }

    #[test]
    fn unknown_and_inactive_paths_are_named_in_twentys_words() {
        let schema = schema();
        assert_eq!(
            schema.resolve(&path("old")).unwrap_err(),
            "field 'old' does not exist in 'opportunity' object"
        );
        assert_eq!(
            schema.resolve(&path("amount.cents")).unwrap_err(),
            "field 'amount.cents' does not exist in 'opportunity' object"
        );
        assert_eq!(
            schema.resolve(&path("name.first")).unwrap_err(),
            "field 'name.first' does not exist in 'opportunity' object"
        );
        assert!(schema.resolve(&path("amount")).unwrap_err().contains("'amount.amountMicros'"));
        let custom = ObjectSchema::from_metadata("rocket", true, &json!([]));
        assert_eq!(
            custom.resolve(&path("fuel")).unwrap_err(),
            "field 'fuel' does not exist in '_rocket' object"
        );
    }

    #[test]
    fn identifiers_are_checked() {
        assert!(is_identifier("jobTitle") && is_identifier("_x1"));
        assert!(!is_identifier("") && !is_identifier("1a") && !is_identifier("a-b") && !is_identifier("a'b"));
    }
}
