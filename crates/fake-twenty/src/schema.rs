//! What the fake knows of each field's type, read from its own metadata: Twenty checks every path
//! of a `filter` or an `order_by` against the object's fields, coerces values by type, and
//! compares a few types its own way (protocol notes, section 9; design, section 8):
//! - text fields and text sub-fields: `is:NULL` also matches `''`, `eq:""` matches `''` and null;
//!   ids, join columns and codes (currency, actor source) are text without that rule;
//! - `SELECT` fields compare and order by their options' positions.

use std::collections::HashMap;

use serde_json::Value;

/// How a field path's values compare.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Kind {
    /// Text; with `empty_is_null`, Twenty's rule for `''`.
    Text {
        empty_is_null: bool,
    },
    Number,
    DateTime,
    /// `SELECT`: its option values in position order.
    Select(Vec<String>),
    /// `MULTI_SELECT`, `ARRAY` and array sub-fields: `containsAny` and `is` only.
    Array,
    /// Anything else (JSON sub-fields, raw JSON): `is` only.
    Json,
}

impl Kind {
    pub(super) fn is_sortable(&self) -> bool {
        !matches!(self, Kind::Array | Kind::Json)
    }

    /// The option's position, for comparing and ordering a `SELECT`: a value that is not an option
    /// comes after every option.
    pub(super) fn position(options: &[String], value: &str) -> usize {
        options.iter().position(|option| option == value).unwrap_or(options.len())
    }
}

/// The sub-fields of Twenty's composite types, and how each compares.
fn sub_fields(field_type: &str) -> Option<&'static [(&'static str, Sub)]> {
    use Sub::{Code, Json, List, Num, Txt};
    Some(match field_type {
        "FULL_NAME" => &[("firstName", Txt), ("lastName", Txt)],
        "EMAILS" => &[("primaryEmail", Txt), ("additionalEmails", List)],
        "PHONES" => &[
            ("primaryPhoneNumber", Txt),
            ("primaryPhoneCountryCode", Txt),
            ("primaryPhoneCallingCode", Txt),
            ("additionalPhones", Json),
        ],
        "LINKS" => &[("primaryLinkUrl", Txt), ("primaryLinkLabel", Txt), ("secondaryLinks", Json)],
        "ADDRESS" => &[
            ("addressStreet1", Txt),
            ("addressStreet2", Txt),
            ("addressCity", Txt),
            ("addressPostcode", Txt),
            ("addressState", Txt),
            ("addressCountry", Txt),
            ("addressLat", Num),
            ("addressLng", Num),
        ],
        "CURRENCY" => &[("amountMicros", Num), ("currencyCode", Code)],
        "ACTOR" => &[("source", Code), ("workspaceMemberId", Code), ("name", Txt), ("context", Json)],
        _ => return None,
    })
}

#[derive(Clone, Copy)]
enum Sub {
    Txt,
    Code,
    Num,
    List,
    Json,
}

impl Sub {
    fn kind(self) -> Kind {
        match self {
            Sub::Txt => Kind::Text { empty_is_null: true },
            Sub::Code => Kind::Text { empty_is_null: false },
            Sub::Num => Kind::Number,
            Sub::List => Kind::Array,
            Sub::Json => Kind::Json,
        }
    }
}

enum Shape {
    Leaf(Kind),
    Composite(&'static [(&'static str, Sub)]),
}

/// An object's fields, by name.
pub(super) struct Schema {
    object: String,
    fields: HashMap<String, Shape>,
}

impl Schema {
    /// From the metadata API's field definitions.
    pub(super) fn new(object: &str, definitions: &[Value]) -> Schema {
        let mut fields = HashMap::new();
        for definition in definitions {
            let (Some(name), Some(field_type)) = (definition["name"].as_str(), definition["type"].as_str())
            else {
                continue;
            };
            let shape = match field_type {
                "UUID" => Shape::Leaf(Kind::Text { empty_is_null: false }),
                "TEXT" => Shape::Leaf(Kind::Text { empty_is_null: true }),
                "NUMBER" | "POSITION" => Shape::Leaf(Kind::Number),
                "DATE_TIME" => Shape::Leaf(Kind::DateTime),
                "SELECT" => {
                    let mut options: Vec<(f64, String)> = definition["options"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|o| Some((o["position"].as_f64()?, o["value"].as_str()?.to_owned())))
                        .collect();
                    options.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Shape::Leaf(Kind::Select(options.into_iter().map(|(_, value)| value).collect()))
                }
                "MULTI_SELECT" | "ARRAY" => Shape::Leaf(Kind::Array),
                "RELATION" => {
                    if definition["relation"]["type"] == "MANY_TO_ONE" {
                        fields.insert(format!("{name}Id"), Shape::Leaf(Kind::Text { empty_is_null: false }));
                    }
                    continue;
                }
                other => match sub_fields(other) {
                    Some(subs) => Shape::Composite(subs),
                    None => Shape::Leaf(Kind::Json),
                },
            };
            fields.insert(name.to_owned(), shape);
        }
        Schema { object: object.to_owned(), fields }
    }

    /// The kind of a (dotted) path, or Twenty's 400 message for one the object lacks.
    pub(super) fn kind(&self, path: &[String]) -> Result<Kind, String> {
        let missing = || format!("field '{}' does not exist in '{}' object", path.join("."), self.object);
        match (path.first().and_then(|field| self.fields.get(field)), &path.get(1..).unwrap_or_default()) {
            (Some(Shape::Leaf(kind)), []) => Ok(kind.clone()),
            (Some(Shape::Composite(subs)), [sub]) => {
                subs.iter().find(|(name, _)| name == sub).map(|(_, sub)| sub.kind()).ok_or_else(missing)
            }
            _ => Err(missing()),
        }
    }
}
