//! Field definitions, as Twenty's metadata API gives them, to the columns of a view: which fields
//! become columns, under which names, with which type, and where each value is read from.

use serde_json::Value;

use crate::fields::{SubFieldKind, composite_sub_fields};

use super::naming::{self, Unusable};
use super::{ColumnKind, ColumnSource, SkipReason, SkippedField};

/// A column before names are told apart: the name the rule gives it, and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Candidate {
    pub name: String,
    pub kind: ColumnKind,
    pub field: String,
    pub sub_field: Option<String>,
    pub field_type: String,
    pub source: ColumnSource,
}

impl Candidate {
    /// What orders it against others that want the same name: Twenty's path to the value.
    pub fn order_key(&self) -> String {
        match &self.source {
            ColumnSource::Key { path } => path.join("."),
            ColumnSource::RecordId
            | ColumnSource::RecordUpdatedAt
            | ColumnSource::RecordDeletedAt
            | ColumnSource::RecordCreatedAt => self.field.clone(),
        }
    }
}

/// The view column type of a composite sub-field: JSON-valued sub-fields (arrays included) are JSON.
fn sub_field_kind(kind: SubFieldKind) -> ColumnKind {
    match kind {
        SubFieldKind::Text | SubFieldKind::PlainText => ColumnKind::Text,
        SubFieldKind::Micros => ColumnKind::BigInt,
        SubFieldKind::Number => ColumnKind::Double,
        SubFieldKind::TextArray | SubFieldKind::Json => ColumnKind::Json,
    }
}

/// The column type of a field that is one value. A type this build does not know is read as JSON,
/// so that its values stay visible until a release gives it a type of its own.
fn scalar_kind(field_type: &str) -> ColumnKind {
    match field_type {
        "TEXT" | "UUID" | "SELECT" | "RATING" | "RICH_TEXT" => ColumnKind::Text,
        "NUMBER" | "NUMERIC" | "POSITION" => ColumnKind::Double,
        "BOOLEAN" => ColumnKind::Boolean,
        "DATE_TIME" => ColumnKind::Timestamp,
        "DATE" => ColumnKind::Date,
        "MULTI_SELECT" | "ARRAY" => ColumnKind::TextArray,
        _ => ColumnKind::Json,
    }
}

/// The relation kinds Twenty names, in the places its releases have put them.
fn relation_kind(definition: &Value) -> Option<&str> {
    definition
        .pointer("/relation/type")
        .or_else(|| definition.pointer("/settings/relationType"))
        .or_else(|| definition.pointer("/relationDefinition/direction"))
        .and_then(Value::as_str)
}

/// The columns of an object's view, from its field definitions (a JSON array; anything else has
/// no fields), `id` first; and the fields that are not columns, with the reason.
pub(super) fn candidates(fields: &Value) -> (Vec<Candidate>, Vec<SkippedField>) {
    let definitions: &[Value] = fields.as_array().map_or(&[], Vec::as_slice);
    let id = Candidate {
        name: "id".into(),
        kind: ColumnKind::Text,
        field: "id".into(),
        sub_field: None,
        field_type: "UUID".into(),
        source: ColumnSource::RecordId,
    };
    let mut columns = vec![id];
    let mut skipped = Vec::new();
    // A join column can also be listed as a field of its own (older releases list `companyId` as a
    // UUID field beside the `company` relation); it is then one column.
    let listed: Vec<&str> =
        definitions.iter().filter_map(|d| d.get("name").and_then(Value::as_str)).collect();
    for definition in definitions {
        let name = definition.get("name").and_then(Value::as_str).unwrap_or_default();
        let skip = |reason: SkipReason| SkippedField { field: name.to_owned(), reason };
        match field_columns(definition, name, &listed) {
            Ok(found) => {
                for candidate in found {
                    if columns.iter().any(|c| c.source == candidate.source) {
                        skipped.push(skip(SkipReason::Duplicate));
                    } else {
                        columns.push(candidate);
                    }
                }
            }
            Err(reason) => skipped.push(skip(reason)),
        }
    }
    (columns, skipped)
}

/// The columns of one field, or why it has none.
fn field_columns(definition: &Value, name: &str, listed: &[&str]) -> Result<Vec<Candidate>, SkipReason> {
    naming::check_name(name).map_err(|problem| SkipReason::UnusableName { problem })?;
    // Whatever its type, `id` is the record's id, the view's first column.
    if name == "id" {
        return Ok(Vec::new());
    }
    let field_type = definition.get("type").and_then(Value::as_str).ok_or(SkipReason::NoType)?;
    // Every release sends `isActive`; a field without it is taken as active, as objects are.
    if definition.get("isActive").and_then(Value::as_bool) == Some(false) {
        return Err(SkipReason::Inactive);
    }
    let column = |column_name: Result<String, Unusable>, kind, sub_field: Option<&str>, source| {
        Ok::<_, SkipReason>(Candidate {
            name: column_name.map_err(|problem| SkipReason::UnusableName { problem })?,
            kind,
            field: name.to_owned(),
            sub_field: sub_field.map(str::to_owned),
            field_type: field_type.to_owned(),
            source,
        })
    };
    let key = |path: &[&str]| ColumnSource::Key { path: path.iter().map(|p| p.to_string()).collect() };
    match field_type {
        "TS_VECTOR" => Err(SkipReason::SearchVector),
        "MORPH_RELATION" => Err(SkipReason::MorphRelation),
        "RELATION" => match relation_kind(definition) {
            Some("MANY_TO_ONE") => {
                let join_key = definition
                    .pointer("/settings/joinColumnName")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("{name}Id"), str::to_owned);
                naming::check_name(&join_key).map_err(|problem| SkipReason::UnusableName { problem })?;
                if join_key != name && listed.contains(&join_key.as_str()) {
                    return Err(SkipReason::JoinColumnListed { field: join_key });
                }
                Ok(vec![column(naming::identifier(&[&join_key]), ColumnKind::Text, None, key(&[&join_key]))?])
            }
            Some("ONE_TO_MANY") => Err(SkipReason::OneToMany),
            _ => Err(SkipReason::NoJoinColumn),
        },
        // The record's own columns: the same values, and `updated_at` is indexed with `object`.
        "DATE_TIME" if matches!(name, "updatedAt" | "deletedAt" | "createdAt") => {
            let source = match name {
                "updatedAt" => ColumnSource::RecordUpdatedAt,
                "deletedAt" => ColumnSource::RecordDeletedAt,
                _ => ColumnSource::RecordCreatedAt,
            };
            Ok(vec![column(naming::identifier(&[name]), ColumnKind::Timestamp, None, source)?])
        }
        _ => match composite_sub_fields(field_type) {
            Some(subs) => subs
                .iter()
                .map(|(sub, kind)| {
                    column(
                        naming::identifier(&[name, sub]),
                        sub_field_kind(*kind),
                        Some(sub),
                        key(&[name, sub]),
                    )
                })
                .collect(),
            None => {
                Ok(vec![column(naming::identifier(&[name]), scalar_kind(field_type), None, key(&[name]))?])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(name: &str, kind: &str) -> Value {
        json!({"name": name, "type": kind, "isActive": true, "isSystem": false, "options": null, "relation": null})
    }

    fn names(columns: &[Candidate]) -> Vec<&str> {
        columns.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn composites_flatten_to_every_sub_field() {
        let fields = json!([
            field("name", "FULL_NAME"),
            field("amount", "CURRENCY"),
            field("domainName", "LINKS"),
            field("createdBy", "ACTOR"),
        ]);
        let (columns, skipped) = candidates(&fields);
        assert!(skipped.is_empty());
        assert_eq!(
            names(&columns),
            [
                "id",
                "name_first_name",
                "name_last_name",
                "amount_amount_micros",
                "amount_currency_code",
                "domain_name_primary_link_url",
                "domain_name_primary_link_label",
                "domain_name_secondary_links",
                "created_by_source",
                "created_by_workspace_member_id",
                "created_by_name",
                "created_by_context",
            ]
        );
        let micros = &columns[3];
        assert_eq!(micros.kind, ColumnKind::BigInt);
        assert_eq!(micros.source, ColumnSource::Key { path: vec!["amount".into(), "amountMicros".into()] });
        assert_eq!(columns[7].kind, ColumnKind::Json);
    }

    #[test]
    fn relations_give_their_join_column_and_one_to_many_none() {
        let mut many_to_one = field("company", "RELATION");
        many_to_one["relation"] = json!({"type": "MANY_TO_ONE"});
        let mut one_to_many = field("people", "RELATION");
        one_to_many["relation"] = json!({"type": "ONE_TO_MANY"});
        let mut named = field("owner", "RELATION");
        named["settings"] =
            json!({"relationType": "MANY_TO_ONE", "joinColumnName": "ownerWorkspaceMemberId"});
        let (columns, skipped) = candidates(&json!([many_to_one, one_to_many, named]));
        assert_eq!(names(&columns), ["id", "company_id", "owner_workspace_member_id"]);
        assert_eq!(columns[1].field, "company");
        assert_eq!(skipped, [SkippedField { field: "people".into(), reason: SkipReason::OneToMany }]);
    }

    #[test]
    fn a_join_column_listed_as_a_field_is_one_column() {
        let mut relation = field("company", "RELATION");
        relation["relationDefinition"] = json!({"direction": "MANY_TO_ONE"});
        let (columns, skipped) = candidates(&json!([field("companyId", "UUID"), relation]));
        assert_eq!(names(&columns), ["id", "company_id"]);
        assert_eq!(skipped[0].reason, SkipReason::JoinColumnListed { field: "companyId".into() });
    }

    #[test]
    fn inactive_search_and_nameless_fields_are_not_columns() {
        let mut inactive = field("city", "TEXT");
        inactive["isActive"] = json!(false);
        let fields = json!([inactive, field("searchVector", "TS_VECTOR"), {"type": "TEXT"}, {"name": "x"}]);
        let (columns, skipped) = candidates(&fields);
        assert_eq!(names(&columns), ["id"]);
        let reasons: Vec<_> = skipped.iter().map(|s| s.reason.clone()).collect();
        assert_eq!(
            reasons,
            [
                SkipReason::Inactive,
                SkipReason::SearchVector,
                SkipReason::UnusableName { problem: Unusable::Empty },
                SkipReason::NoType
            ]
        );
    }

    #[test]
    fn record_columns_read_the_mirror_and_types_follow_the_design() {
        let fields = json!([
            field("id", "UUID"),
            field("updatedAt", "DATE_TIME"),
            field("deletedAt", "DATE_TIME"),
            field("createdAt", "DATE_TIME"),
            field("position", "POSITION"),
            field("tags", "MULTI_SELECT"),
            field("rating", "RATING"),
            field("closeOn", "DATE"),
            field("isVip", "BOOLEAN"),
            field("payload", "RAW_JSON"),
            field("futureType", "SOMETHING_NEW"),
        ]);
        let (columns, _) = candidates(&fields);
        let kinds: Vec<_> = columns.iter().map(|c| (c.name.as_str(), c.kind)).collect();
        use ColumnKind::*;
        assert_eq!(
            kinds,
            [
                ("id", Text),
                ("updated_at", Timestamp),
                ("deleted_at", Timestamp),
                ("created_at", Timestamp),
                ("position", Double),
                ("tags", TextArray),
                ("rating", Text),
                ("close_on", Date),
                ("is_vip", Boolean),
                ("payload", Json),
                ("future_type", Json),
            ]
        );
        assert_eq!(columns[1].source, ColumnSource::RecordUpdatedAt);
        assert_eq!(columns[2].source, ColumnSource::RecordDeletedAt);
        assert_eq!(columns[3].source, ColumnSource::RecordCreatedAt);
    }

    #[test]
    fn a_field_listed_twice_is_one_column() {
        let (columns, skipped) = candidates(&json!([field("city", "TEXT"), field("city", "TEXT")]));
        assert_eq!(names(&columns), ["id", "city"]);
        assert_eq!(skipped[0].reason, SkipReason::Duplicate);
    }

    #[test]
    fn definitions_that_are_not_a_list_give_the_id_alone() {
        let (columns, skipped) = candidates(&json!({"not": "a list"}));
        assert_eq!(names(&columns), ["id"]);
        assert!(skipped.is_empty());
    }
}
