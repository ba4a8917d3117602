//! Twenty's composite field types and their sub-fields (its `compositeTypeDefinitions`, protocol
//! notes section 6), as both the typed views (`mirror::views`) and the read API (`query`) read
//! them: one table, so that a sub-field Twenty adds is added to both at once.

/// What a composite type's sub-field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubFieldKind {
    /// Text where Twenty treats `''` as null (`is:NULL` matches it).
    Text,
    /// Text without that rule: codes and ids (currency codes, the actor's source and member id).
    PlainText,
    /// An amount in millionths, sent as a number or a digit string: an integer.
    Micros,
    /// A floating-point number (coordinates).
    Number,
    /// An array of text.
    TextArray,
    /// Any JSON.
    Json,
}

/// The sub-fields of a composite type, in Twenty's order; `None` for a type that is not composite.
pub fn composite_sub_fields(field_type: &str) -> Option<&'static [(&'static str, SubFieldKind)]> {
    use SubFieldKind::{Json, Micros, Number, PlainText, Text, TextArray};
    Some(match field_type {
        "CURRENCY" => &[("amountMicros", Micros), ("currencyCode", PlainText)],
        "FULL_NAME" => &[("firstName", Text), ("lastName", Text)],
        "EMAILS" => &[("primaryEmail", Text), ("additionalEmails", TextArray)],
        "PHONES" => &[
            ("primaryPhoneNumber", Text),
            ("primaryPhoneCountryCode", Text),
            ("primaryPhoneCallingCode", Text),
            ("additionalPhones", Json),
        ],
        "LINKS" => &[("primaryLinkUrl", Text), ("primaryLinkLabel", Text), ("secondaryLinks", Json)],
        "ADDRESS" => &[
            ("addressStreet1", Text),
            ("addressStreet2", Text),
            ("addressCity", Text),
            ("addressPostcode", Text),
            ("addressState", Text),
            ("addressCountry", Text),
            ("addressLat", Number),
            ("addressLng", Number),
        ],
        "ACTOR" => {
            &[("source", PlainText), ("workspaceMemberId", PlainText), ("name", Text), ("context", Json)]
        }
        "RICH_TEXT_V2" => &[("blocknote", Text), ("markdown", Text)],
        _ => return None,
    })
}
