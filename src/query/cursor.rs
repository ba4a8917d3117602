//! Cursors in Twenty's format: standard base64, with padding, of the JSON object of a record's
//! order-by values and its id, in the ordering's order (`{"updatedAt":"…","id":"…"}`); a composite
//! sub-field's value sits under its field (`{"name":{"firstName":"…"},"id":"…"}`).

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;

use super::error::{Parameter, QueryError};
use super::order::SortKey;
use super::predicate::{Scalar, parse_instant};
use super::schema::LeafKind;

/// Decoding accepts a cursor with or without its padding, in either base64 alphabet, as Node's
/// `Buffer.from(text, 'base64')` does.
const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// The cursor of a record whose values for `order` are `values` (one each, in order, as JSON:
/// strings, numbers, booleans, date-times as `2026-09-21T10:15:30.412Z`, or null).
///
/// The JSON is written by hand so that its keys keep the ordering's order, as Twenty's do (the
/// crate's `serde_json` map sorts keys, and the stored records rely on that).
pub fn encode(order: &[SortKey], values: &[Value]) -> String {
    let mut json = String::from("{");
    let mut written = vec![false; order.len()];
    for (i, key) in order.iter().enumerate() {
        if written[i] {
            continue;
        }
        if json.len() > 1 {
            json.push(',');
        }
        let field = &key.leaf.path[0];
        push_string(&mut json, field);
        json.push(':');
        if key.leaf.path.len() == 1 {
            json.push_str(&values.get(i).unwrap_or(&Value::Null).to_string());
            continue;
        }
        json.push('{');
        let mut first = true;
        for (j, sub_key) in order.iter().enumerate().skip(i) {
            if sub_key.leaf.path.len() == 2 && &sub_key.leaf.path[0] == field {
                if !first {
                    json.push(',');
                }
                first = false;
                push_string(&mut json, &sub_key.leaf.path[1]);
                json.push(':');
                json.push_str(&values.get(j).unwrap_or(&Value::Null).to_string());
                written[j] = true;
            }
        }
        json.push('}');
    }
    json.push('}');
    base64::engine::general_purpose::STANDARD.encode(json)
}

fn push_string(json: &mut String, text: &str) {
    json.push_str(&Value::from(text).to_string());
}

/// Reads a cursor made for `order`: one value per key, typed as the key's field (a `SELECT`'s
/// value stays its text), `None` for null.
pub fn decode(
    text: &str,
    order: &[SortKey],
    parameter: Parameter,
) -> Result<Vec<Option<Scalar>>, QueryError> {
    let invalid = || {
        let mut shown: String = text.chars().take(100).collect();
        if shown.len() < text.len() {
            shown.push('…');
        }
        QueryError::new(parameter, format!("Invalid cursor: {shown}"))
    };
    // A `+` that reached us as a space: the client did not percent-encode the cursor.
    let text_plus = text.trim().replace(' ', "+");
    let bytes =
        STANDARD.decode(&text_plus).or_else(|_| URL_SAFE.decode(&text_plus)).map_err(|_| invalid())?;
    let object: RawObject = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    order
        .iter()
        .map(|key| {
            let value = lookup(&object, &key.leaf.path).map_err(|()| invalid())?.ok_or_else(|| {
                QueryError::new(
                    parameter,
                    format!(
                        "Cursor is missing the value for orderBy field \"{}\": it was encoded for a different \
                         orderBy. Restart pagination without a cursor.",
                        key.leaf.dotted()
                    ),
                )
            })?;
            typed(&key.leaf.kind, value).ok_or_else(invalid)
        })
        .collect()
}

/// A JSON object whose values are kept as their text: `serde_json` reads numbers into `f64`
/// without the exactness a keyset needs (its `float_roundtrip` feature would change how every
/// record is read), while Rust's own parser is exact.
type RawObject = BTreeMap<String, Box<RawValue>>;

/// The value at `path`: `Ok(None)` when it is missing, `Err` when the cursor is not an object of
/// objects where the path says.
fn lookup<'a>(object: &'a RawObject, path: &[String]) -> Result<Option<&'a RawValue>, ()> {
    match path {
        [field] => Ok(object.get(field).map(|raw| &**raw)),
        [field, sub_field] => {
            let Some(raw) = object.get(field) else { return Ok(None) };
            let nested: BTreeMap<String, &RawValue> = serde_json::from_str(raw.get()).map_err(drop)?;
            Ok(nested.get(sub_field).copied())
        }
        _ => Err(()),
    }
}

/// A cursor value as its key's type; `None` when it is not one (so the cursor is invalid).
fn typed(kind: &LeafKind, raw: &RawValue) -> Option<Option<Scalar>> {
    let value: Value = serde_json::from_str(raw.get()).ok()?;
    if value.is_null() {
        return kind.is_nullable().then_some(None);
    }
    let exact = |text: &str| text.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    let scalar = match kind {
        LeafKind::Id | LeafKind::Text { .. } | LeafKind::Date | LeafKind::Enum { .. } => {
            Scalar::Text(value.as_str()?.to_owned())
        }
        LeafKind::Number => match &value {
            Value::Number(_) => Scalar::Number(exact(raw.get())?),
            Value::String(text) => Scalar::Number(exact(text)?),
            _ => return None,
        },
        LeafKind::Boolean => Scalar::Boolean(value.as_bool()?),
        LeafKind::UpdatedAt | LeafKind::DeletedAt | LeafKind::DateTime => {
            Scalar::Instant(parse_instant(value.as_str()?)?)
        }
        LeafKind::Array { .. } | LeafKind::Json => return None,
    };
    Some(Some(scalar))
}
