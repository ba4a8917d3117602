//! Twenty's JSON, read into the client's own types: pages of records, the metadata API's objects,
//! webhook subscriptions, and the body a subscription is created or updated with. Pure functions:
//! a body goes in, a type or the reason it is not one comes out.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One object type, as the metadata API describes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetadata {
    pub id: String,
    /// The name webhooks use (`person`).
    pub name_singular: String,
    /// The name REST paths use (`people`).
    pub name_plural: String,
    #[serde(default)]
    pub label_singular: String,
    #[serde(default)]
    pub label_plural: String,
    // Every known release sends the three flags; should one go missing, the defaults describe an
    // ordinary active standard object rather than dropping it from the mirror.
    #[serde(default)]
    pub is_custom: bool,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default)]
    pub is_system: bool,
    /// The fields as Twenty sends them (`id, name, type, isNullable, isActive, isSystem, options,
    /// relation`, …); an empty list when absent.
    #[serde(default = "empty_list")]
    pub fields: Value,
}

impl ObjectMetadata {
    /// Whether the mirror follows this object unless told otherwise: active and not a system object.
    pub fn is_mirrored_by_default(&self) -> bool {
        self.is_active && !self.is_system
    }
}

fn yes() -> bool {
    true
}

fn empty_list() -> Value {
    Value::Array(Vec::new())
}

/// One page of records, flat (depth 0), every key kept as Twenty sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Value>,
    pub has_next_page: bool,
    /// The cursor to pass as `starting_after` for the next page; `None` on an empty page.
    pub end_cursor: Option<String>,
    /// Every record matching the filter, regardless of the cursor.
    pub total_count: Option<u64>,
}

/// A webhook subscription: where Twenty sends which events, and the secret it signs them with.
#[derive(Clone)]
pub struct Subscription {
    pub id: String,
    pub target_url: String,
    /// `<object>.<action>`, `*.<action>`, `<object>.*` or `*.*`, matched by Twenty as exact strings.
    pub operations: Vec<String>,
    pub description: Option<String>,
    /// `None` when Twenty sent none or an empty one: the deliveries are then unsigned.
    pub secret: Option<SecretString>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("target_url", &self.target_url)
            .field("operations", &self.operations)
            .field("description", &self.description)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// What a subscription is created or updated with.
#[derive(Clone)]
pub struct SubscriptionFields {
    pub target_url: String,
    pub operations: Vec<String>,
    /// Left as it is (on update) or unset (on create) when `None`.
    pub description: Option<String>,
    /// Left as it is (on update) when `None`; on create, newer releases then generate one and older
    /// ones sign nothing.
    pub secret: Option<SecretString>,
}

impl fmt::Debug for SubscriptionFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionFields")
            .field("target_url", &self.target_url)
            .field("operations", &self.operations)
            .field("description", &self.description)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl SubscriptionFields {
    /// The body Twenty reads: `{"targetUrl", "operations", "description"?, "secret"?}`.
    pub(super) fn to_json(&self) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("targetUrl".into(), Value::from(self.target_url.as_str()));
        body.insert("operations".into(), Value::from(self.operations.clone()));
        if let Some(description) = &self.description {
            body.insert("description".into(), Value::from(description.as_str()));
        }
        if let Some(secret) = &self.secret {
            body.insert("secret".into(), Value::from(secret.expose_secret()));
        }
        Value::Object(body)
    }
}

/// Where a list continues, as its `pageInfo` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PageInfo {
    pub(super) has_next_page: bool,
    pub(super) end_cursor: Option<String>,
}

fn parse_page_info(value: &Value) -> Result<PageInfo, String> {
    let has_next_page = value
        .get("hasNextPage")
        .and_then(Value::as_bool)
        .ok_or_else(|| "pageInfo.hasNextPage is missing or not a boolean".to_owned())?;
    let end_cursor = value.get("endCursor").and_then(Value::as_str).map(str::to_owned);
    Ok(PageInfo { has_next_page, end_cursor })
}

/// Reads `{"data": {"<namePlural>": […]}, "totalCount": n, "pageInfo": {…}}`. A missing `pageInfo` is
/// an error rather than a last page: a sweep that stopped early would look like destroyed records.
pub(super) fn parse_page(name_plural: &str, body: Value) -> Result<Page, String> {
    let Value::Object(mut root) = body else {
        return Err(format!("the body is {} instead of an object", kind(&body)));
    };
    let records = match root.get_mut("data") {
        Some(Value::Object(data)) => match data.remove(name_plural) {
            Some(Value::Array(records)) => records,
            Some(other) => return Err(format!("data.{name_plural} is {} instead of a list", kind(&other))),
            None => {
                let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                return Err(format!("data has no {name_plural:?} list (it has {keys:?})"));
            }
        },
        Some(other) => return Err(format!("data is {} instead of an object", kind(other))),
        None => return Err("the body has no data".to_owned()),
    };
    let page_info = parse_page_info(root.get("pageInfo").ok_or("the body has no pageInfo")?)?;
    if page_info.has_next_page && page_info.end_cursor.is_none() {
        return Err("pageInfo has a next page but no endCursor".to_owned());
    }
    Ok(Page {
        records,
        has_next_page: page_info.has_next_page,
        end_cursor: page_info.end_cursor,
        total_count: root.get("totalCount").and_then(Value::as_u64),
    })
}

/// Reads the metadata objects list in either shape, `{"data": {"objects": […]}}` or `{"data": […]}`
/// (and a bare list), with its `pageInfo` when there is one.
pub(super) fn parse_objects(body: Value) -> Result<(Vec<ObjectMetadata>, Option<PageInfo>), String> {
    let (list, page_info) = match body {
        Value::Array(list) => (list, None),
        Value::Object(mut root) => {
            let page_info = root.get("pageInfo").map(parse_page_info).transpose()?;
            let list = match root.remove("data") {
                Some(Value::Array(list)) => list,
                Some(Value::Object(mut data)) => match data.remove("objects") {
                    Some(Value::Array(list)) => list,
                    _ => return Err("data has no objects list".to_owned()),
                },
                Some(other) => return Err(format!("data is {} instead of a list", kind(&other))),
                None => return Err("the body has no data".to_owned()),
            };
            (list, page_info)
        }
        other => return Err(format!("the body is {} instead of an object", kind(&other))),
    };
    let objects = list
        .into_iter()
        .enumerate()
        .map(|(index, object)| {
            let name = object.get("nameSingular").and_then(Value::as_str).unwrap_or("?").to_owned();
            serde_json::from_value(object).map_err(|e| format!("object #{index} ({name}): {e}"))
        })
        .collect::<Result<Vec<ObjectMetadata>, String>>()?;
    Ok((objects, page_info))
}

/// Reads a subscription list: a bare list, `{"data": […], "pageInfo", "totalCount"}`, or the older
/// records shape `{"data": {"webhooks": […]}, …}`; with its `pageInfo` when there is one.
pub(super) fn parse_subscriptions(body: Value) -> Result<(Vec<Subscription>, Option<PageInfo>), String> {
    let (list, page_info) = match body {
        Value::Array(list) => (list, None),
        Value::Object(mut root) => {
            // Only a next page matters here; a pageInfo without one reads as the last page.
            let page_info = root.get("pageInfo").map(|info| PageInfo {
                has_next_page: info.get("hasNextPage").and_then(Value::as_bool).unwrap_or(false),
                end_cursor: info.get("endCursor").and_then(Value::as_str).map(str::to_owned),
            });
            let list = match root.remove("data") {
                Some(Value::Array(list)) => list,
                Some(Value::Object(mut data)) => match data.remove("webhooks") {
                    Some(Value::Array(list)) => list,
                    _ => return Err("data has no webhooks list".to_owned()),
                },
                Some(other) => return Err(format!("data is {} instead of a list", kind(&other))),
                None => return Err("the body has no data".to_owned()),
            };
            (list, page_info)
        }
        other => return Err(format!("the body is {} instead of a list", kind(&other))),
    };
    let subscriptions = list
        .into_iter()
        .enumerate()
        .map(|(index, item)| subscription_from(item).map_err(|e| format!("subscription #{index}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((subscriptions, page_info))
}

/// Reads the subscription that a create or an update answers with: the object itself, or wrapped
/// in `{"data": …}` or, from older releases, `{"data": {"createWebhook": …}}`.
pub(super) fn parse_subscription(body: Value) -> Result<Subscription, String> {
    let is_subscription = |v: &Value| v.get("id").is_some() && v.get("targetUrl").is_some();
    let found = if is_subscription(&body) {
        body
    } else {
        match body {
            Value::Object(mut root) => match root.remove("data") {
                Some(data) if is_subscription(&data) => data,
                Some(Value::Object(data)) if data.len() == 1 => {
                    data.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null)
                }
                _ => return Err("the body is not a webhook subscription".to_owned()),
            },
            other => return Err(format!("the body is {} instead of an object", kind(&other))),
        }
    };
    subscription_from(found)
}

fn subscription_from(value: Value) -> Result<Subscription, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        id: String,
        target_url: String,
        #[serde(default)]
        operations: Option<Vec<String>>,
        /// Releases before `operations` had one operation a subscription.
        #[serde(default)]
        operation: Option<String>,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        secret: Option<String>,
    }
    let wire: Wire = serde_json::from_value(value).map_err(|e| e.to_string())?;
    Ok(Subscription {
        id: wire.id,
        target_url: wire.target_url,
        operations: wire.operations.or_else(|| wire.operation.map(|op| vec![op])).unwrap_or_default(),
        description: wire.description,
        secret: wire.secret.filter(|s| !s.is_empty()).map(SecretString::from),
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_records_page_is_read_with_every_key_kept() {
        let body = json!({
            "data": {"people": [
                {"id": "a", "name": {"firstName": "Ada"}, "customScore": 7, "companyId": null},
                {"id": "b"}
            ]},
            "totalCount": 1234,
            "pageInfo": {"hasNextPage": true, "hasPreviousPage": false, "startCursor": "s", "endCursor": "e"}
        });
        let page = parse_page("people", body).unwrap();
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.records[0]["customScore"], 7);
        assert_eq!(page.records[0]["name"]["firstName"], "Ada");
        assert!(page.has_next_page);
        assert_eq!(page.end_cursor.as_deref(), Some("e"));
        assert_eq!(page.total_count, Some(1234));

        let last = json!({"data": {"people": []}, "pageInfo": {"hasNextPage": false, "endCursor": null}});
        let page = parse_page("people", last).unwrap();
        assert!(page.records.is_empty() && !page.has_next_page && page.end_cursor.is_none());
        assert_eq!(page.total_count, None);
    }

    #[test]
    fn a_page_that_cannot_be_followed_is_refused() {
        for (body, needle) in [
            (json!({"data": {"people": []}}), "pageInfo"),
            (json!({"data": {"people": []}, "pageInfo": {}}), "hasNextPage"),
            (json!({"data": {"people": []}, "pageInfo": {"hasNextPage": true}}), "endCursor"),
            (json!({"data": {"person": {}}, "pageInfo": {"hasNextPage": false}}), "\"person\""),
            (json!({"data": {"people": {}}, "pageInfo": {"hasNextPage": false}}), "instead of a list"),
            (json!({"pageInfo": {"hasNextPage": false}}), "no data"),
            (json!([]), "instead of an object"),
        ] {
            let error = parse_page("people", body.clone()).expect_err(&body.to_string());
            assert!(error.contains(needle), "{error} should mention {needle}");
        }
    }

    fn object(name: &str) -> Value {
        json!({
            "id": format!("id-{name}"), "nameSingular": name, "namePlural": format!("{name}s"),
            "labelSingular": "L", "labelPlural": "Ls", "isCustom": true, "isActive": true,
            "isSystem": false, "fields": [{"id": "f", "name": "x", "type": "TEXT"}], "icon": "IconX"
        })
    }

    #[test]
    fn both_metadata_shapes_are_read() {
        let nested = json!({
            "data": {"objects": [object("pet")]},
            "pageInfo": {"hasNextPage": false},
            "totalCount": 1
        });
        let flat = json!({
            "data": [object("pet")],
            "pageInfo": {"hasNextPage": true, "endCursor": "c"},
            "totalCount": 2
        });
        let (a, info_a) = parse_objects(nested).unwrap();
        let (b, info_b) = parse_objects(flat).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[0].name_plural, "pets");
        assert!(a[0].is_custom && a[0].is_mirrored_by_default());
        assert_eq!(a[0].fields[0]["type"], "TEXT");
        assert_eq!(info_a, Some(PageInfo { has_next_page: false, end_cursor: None }));
        assert_eq!(info_b, Some(PageInfo { has_next_page: true, end_cursor: Some("c".to_owned()) }));

        let (bare, info) = parse_objects(json!([object("pet")])).unwrap();
        assert_eq!(bare, a);
        assert_eq!(info, None);

        let minimal = json!({"data": [{"id": "1", "nameSingular": "person", "namePlural": "people"}]});
        let (objects, _) = parse_objects(minimal).unwrap();
        assert!(objects[0].is_active && !objects[0].is_system && !objects[0].is_custom);
        assert_eq!(objects[0].fields, json!([]));

        let broken = json!({"data": [{"id": "1", "nameSingular": "person"}]});
        let error = parse_objects(broken).unwrap_err();
        assert!(error.contains("person") && error.contains("namePlural"), "{error}");
        assert!(parse_objects(json!({"data": {"items": []}})).is_err());
    }

    fn subscription_json(id: &str) -> Value {
        json!({"id": id, "targetUrl": "https://m.example/webhooks/twenty", "operations": ["*.*"],
               "description": null, "secret": "hush-hush", "createdAt": "2026-09-21T10:00:00.000Z"})
    }

    #[test]
    fn subscription_lists_and_answers_are_read_in_every_shape() {
        let one = subscription_json("w1");
        for body in [
            json!([one]),
            json!({"data": [one], "pageInfo": {"hasNextPage": false}, "totalCount": 1}),
            json!({"data": {"webhooks": [one]}, "pageInfo": {"hasNextPage": false}, "totalCount": 1}),
        ] {
            let (list, _) = parse_subscriptions(body.clone()).unwrap();
            assert_eq!(list.len(), 1, "{body}");
            assert_eq!(list[0].id, "w1");
            assert_eq!(list[0].operations, ["*.*"]);
            assert_eq!(list[0].secret.as_ref().map(|s| s.expose_secret()), Some("hush-hush"));
            assert!(!format!("{list:?}").contains("hush-hush"));
        }
        let paged = json!({"data": [one], "pageInfo": {"hasNextPage": true, "endCursor": "c1"}});
        let (_, info) = parse_subscriptions(paged).unwrap();
        assert_eq!(info, Some(PageInfo { has_next_page: true, end_cursor: Some("c1".to_owned()) }));
        for body in [one.clone(), json!({"data": one}), json!({"data": {"createWebhook": one}})] {
            assert_eq!(parse_subscription(body.clone()).unwrap().id, "w1", "{body}");
        }
        let old = json!({"id": "w2", "targetUrl": "https://x", "operation": "person.created", "secret": ""});
        let old = parse_subscription(old).unwrap();
        assert_eq!(old.operations, ["person.created"]);
        assert!(old.secret.is_none(), "an empty secret is no secret");
        assert!(parse_subscriptions(json!({"data": {"people": []}})).is_err());
        assert!(parse_subscription(json!({"data": {"a": 1, "b": 2}})).is_err());
    }

    #[test]
    fn a_subscription_body_carries_what_is_set_and_hides_the_secret_from_debug() {
        let fields = SubscriptionFields {
            target_url: "https://m.example/webhooks/twenty".into(),
            operations: vec!["*.*".into()],
            description: Some("twenty-mirror".into()),
            secret: Some(SecretString::from("hush-hush")),
        };
        assert!(!format!("{fields:?}").contains("hush-hush"));
        assert_eq!(
            fields.to_json(),
            json!({"targetUrl": "https://m.example/webhooks/twenty", "operations": ["*.*"],
                   "description": "twenty-mirror", "secret": "hush-hush"})
        );
        let bare = SubscriptionFields { description: None, secret: None, ..fields };
        assert_eq!(
            bare.to_json(),
            json!({"targetUrl": "https://m.example/webhooks/twenty", "operations": ["*.*"]})
        );
    }
}
