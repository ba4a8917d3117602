//! The metadata API: the objects, their fields, and `GET /rest/metadata/objects` in either shape.

use actix_web::HttpResponse;
use serde_json::{Value, json};

use super::MetadataShape;
use super::routes::{bad_request, page_range};
use super::schema::Schema;
use super::state::State;
use super::values::uuid_from;

pub(super) struct ObjectMeta {
    pub(super) id: String,
    pub(super) singular: String,
    pub(super) plural: String,
    pub(super) is_custom: bool,
    pub(super) is_active: bool,
    pub(super) is_system: bool,
    pub(super) fields: Vec<Value>,
}

impl ObjectMeta {
    pub(super) fn new(
        singular: &str,
        plural: &str,
        is_custom: bool,
        is_active: bool,
        is_system: bool,
    ) -> ObjectMeta {
        ObjectMeta {
            id: object_id(singular),
            singular: singular.to_owned(),
            plural: plural.to_owned(),
            is_custom,
            is_active,
            is_system,
            fields: fields_of(singular, plural, is_custom),
        }
    }

    /// The fields as the REST API checks a request's paths against them.
    pub(super) fn schema(&self) -> Schema {
        let table = if self.is_custom { format!("_{}", self.singular) } else { self.singular.clone() };
        Schema::new(&table, &self.fields)
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "nameSingular": self.singular,
            "namePlural": self.plural,
            "labelSingular": label(&self.singular),
            "labelPlural": label(&self.plural),
            "description": null,
            "icon": if self.is_custom { "IconBox" } else { "IconUser" },
            "isCustom": self.is_custom,
            "isActive": self.is_active,
            "isSystem": self.is_system,
            "isRemote": false,
            "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:00.000Z",
            "fields": self.fields,
        })
    }
}

pub(super) fn object_id(singular: &str) -> String {
    uuid_from(format!("object:{singular}").as_bytes())
}

/// `jobTitle` → `Job title`, `people` → `People`.
fn label(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn fields_of(singular: &str, plural: &str, is_custom: bool) -> Vec<Value> {
    let field = |name: &str, kind: &str, nullable: bool, system: bool| {
        json!({
            "id": uuid_from(format!("field:{singular}.{name}").as_bytes()),
            "name": name,
            "label": label(name),
            "type": kind,
            "isNullable": nullable,
            "isActive": true,
            "isSystem": system,
            "isCustom": is_custom && !matches!(name, "id" | "createdAt" | "updatedAt" | "deletedAt"),
            "defaultValue": null,
            "options": null,
            "relation": null,
        })
    };
    let relation = |name: &str, kind: &str, target: (&str, &str), target_field: &str| {
        let mut value = field(name, "RELATION", true, false);
        value["relation"] = json!({
            "type": kind,
            "sourceObjectMetadata": {"id": object_id(singular), "nameSingular": singular, "namePlural": plural},
            "targetObjectMetadata": {"id": object_id(target.0), "nameSingular": target.0, "namePlural": target.1},
            "sourceFieldMetadata": {"id": uuid_from(format!("field:{singular}.{name}").as_bytes()), "name": name},
            "targetFieldMetadata": {
                "id": uuid_from(format!("field:{}.{target_field}", target.0).as_bytes()),
                "name": target_field,
            },
        });
        value
    };
    let mut fields = vec![
        field("id", "UUID", false, true),
        field("createdAt", "DATE_TIME", false, false),
        field("updatedAt", "DATE_TIME", false, false),
        field("deletedAt", "DATE_TIME", true, false),
        field("createdBy", "ACTOR", false, false),
        field("position", "POSITION", false, true),
    ];
    match singular {
        "person" => fields.extend([
            field("name", "FULL_NAME", true, false),
            field("emails", "EMAILS", true, false),
            field("phones", "PHONES", true, false),
            field("jobTitle", "TEXT", false, false),
            field("city", "TEXT", false, false),
            relation("company", "MANY_TO_ONE", ("company", "companies"), "people"),
        ]),
        "company" => fields.extend([
            field("name", "TEXT", false, false),
            field("domainName", "LINKS", true, false),
            field("employees", "NUMBER", true, false),
            field("address", "ADDRESS", true, false),
            relation("people", "ONE_TO_MANY", ("person", "people"), "company"),
        ]),
        "opportunity" => {
            let mut stage = field("stage", "SELECT", false, false);
            stage["options"] = json!(
                ["NEW", "SCREENING", "MEETING", "PROPOSAL", "CUSTOMER"]
                    .iter()
                    .enumerate()
                    .map(|(i, value)| json!({
                        "id": uuid_from(format!("option:opportunity.stage.{value}").as_bytes()),
                        "value": value,
                        "label": label(&value.to_lowercase()),
                        "position": i,
                        "color": "blue",
                    }))
                    .collect::<Vec<_>>()
            );
            fields.extend([
                field("name", "TEXT", false, false),
                field("amount", "CURRENCY", true, false),
                field("closeDate", "DATE_TIME", true, false),
                stage,
                relation("company", "MANY_TO_ONE", ("company", "companies"), "opportunities"),
            ]);
        }
        "workspaceMember" => fields.extend([
            field("name", "FULL_NAME", false, false),
            field("userEmail", "TEXT", false, false),
            field("colorScheme", "TEXT", false, false),
        ]),
        _ => fields.push(field("name", "TEXT", true, false)),
    }
    fields
}

/// A field definition as the metadata API gives it: `definition` over the defaults of a custom
/// field (an id from the object and the name, a label, active, not system, nullable).
pub(super) fn complete_field(singular: &str, definition: Value) -> Value {
    let Value::Object(given) = definition else {
        panic!("fake Twenty: a field definition must be a JSON object, not {definition}")
    };
    let name = given.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut field = json!({
        "id": uuid_from(format!("field:{singular}.{name}").as_bytes()),
        "name": name,
        "label": label(&name),
        "isNullable": true,
        "isActive": true,
        "isSystem": false,
        "isCustom": true,
        "defaultValue": null,
        "options": null,
        "relation": null,
    });
    if let Value::Object(map) = &mut field {
        map.extend(given);
    }
    field
}

pub(super) fn objects(state: &State, query: &str) -> HttpResponse {
    let total = state.objects.len();
    let range = page_range(total, state.metadata_page_size, query, |cursor| {
        state.objects.iter().position(|o| hex::encode(&o.id) == cursor)
    });
    let range = match range {
        Ok(range) => range,
        Err(message) => return bad_request(message),
    };
    let page = &state.objects[range.clone()];
    let objects: Vec<Value> = page.iter().map(ObjectMeta::to_json).collect();
    let page_info = json!({
        "hasNextPage": range.end < total,
        "hasPreviousPage": range.start > 0,
        "startCursor": page.first().map(|o| hex::encode(&o.id)),
        "endCursor": page.last().map(|o| hex::encode(&o.id)),
    });
    let data = match state.metadata_shape {
        MetadataShape::Nested => json!({"objects": objects}),
        MetadataShape::Flat => Value::Array(objects),
    };
    HttpResponse::Ok().json(json!({"data": data, "pageInfo": page_info, "totalCount": total}))
}
