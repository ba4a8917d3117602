//! Names in SQL: Twenty's names in snake_case, made safe, kept within PostgreSQL's identifier
//! length, told apart when two would collide, and quoted.
//!
//! Every name from Twenty's metadata reaches SQL through this module only: as an identifier it
//! has been reduced to `[a-z0-9_]` and is quoted; as a string literal (a JSON key, an object name)
//! it has been checked by [`check_name`] and is quoted. So a name cannot end a literal or an
//! identifier early, whatever it holds.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

/// PostgreSQL keeps the first 63 bytes of an identifier and drops the rest without an error, so two
/// long names could silently become one. Both backends get names of at most this length, so that a
/// view is named the same on either.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// A shortened name keeps this many bytes of the long one, then `_` and [`HASH_HEX_DIGITS`] hex
/// digits of its SHA-256: 54 + 1 + 8 = 63.
const SHORTENED_PREFIX_BYTES: usize = MAX_IDENTIFIER_BYTES - 1 - HASH_HEX_DIGITS;
const HASH_HEX_DIGITS: usize = 8;

/// A name from Twenty longer than this is refused rather than carried into SQL text: Twenty's own
/// names are at most 63 characters.
const MAX_SOURCE_NAME_BYTES: usize = 255;

/// Why a name from Twenty cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unusable {
    Empty,
    TooLong,
    /// A double quote, a backslash or a control character: none can be written in a JSON path on
    /// SQLite, and a backslash means something else in a PostgreSQL literal when
    /// `standard_conforming_strings` is off.
    ForbiddenCharacter,
    /// Nothing of it is a letter or a digit once made snake_case (`"--"`, `"✓"`).
    NoLetterOrDigit,
}

impl Unusable {
    pub fn describe(self) -> &'static str {
        match self {
            Unusable::Empty => "the name is empty",
            Unusable::TooLong => "the name is longer than 255 bytes",
            Unusable::ForbiddenCharacter => {
                "the name holds a double quote, a backslash or a control character"
            }
            Unusable::NoLetterOrDigit => "the name has no ASCII letter or digit",
        }
    }
}

/// Checks a name from Twenty that will be written into SQL as a string literal (a JSON key, an
/// object's `nameSingular`).
pub fn check_name(name: &str) -> Result<(), Unusable> {
    if name.is_empty() {
        return Err(Unusable::Empty);
    }
    if name.len() > MAX_SOURCE_NAME_BYTES {
        return Err(Unusable::TooLong);
    }
    if name.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(Unusable::ForbiddenCharacter);
    }
    Ok(())
}

/// Twenty's camelCase name in snake_case: an underscore before each capital that follows a
/// lower-case letter or a digit, then lower case (`linkedinLink` → `linkedin_link`,
/// `addressStreet1` → `address_street1`, `primaryLinkURL` → `primary_link_url`). Every run of
/// characters other than ASCII letters, digits and `_` becomes one `_` (`first name` →
/// `first_name`, `a;b` → `a_b`).
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous: Option<char> = None;
    let mut in_replaced_run = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            if c.is_ascii_uppercase()
                && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
            {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            in_replaced_run = false;
        } else if !in_replaced_run {
            out.push('_');
            in_replaced_run = true;
        }
        previous = Some(c);
    }
    out
}

/// The identifier for a name made of Twenty's names (a field, or a field and its sub-field),
/// each in snake_case, joined by `_`, and fitted to [`MAX_IDENTIFIER_BYTES`].
pub fn identifier(parts: &[&str]) -> Result<String, Unusable> {
    let mut joined = String::new();
    for part in parts {
        let snake = snake_case(part);
        if !snake.bytes().any(|b| b.is_ascii_alphanumeric()) {
            return Err(Unusable::NoLetterOrDigit);
        }
        if !joined.is_empty() {
            joined.push('_');
        }
        joined.push_str(&snake);
    }
    Ok(fit(joined))
}

/// A name of at most [`MAX_IDENTIFIER_BYTES`]: a longer one keeps its first 54 bytes, then `_` and
/// the first 8 hex digits of the SHA-256 of the whole name, so that two long names that share their
/// first 63 bytes still differ.
pub fn fit(name: String) -> String {
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name;
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    // Identifiers are ASCII here, so any byte offset is a character boundary.
    format!("{}_{}", &name[..SHORTENED_PREFIX_BYTES], &digest[..HASH_HEX_DIGITS])
}

/// `name_N`, cut so that the whole stays within [`MAX_IDENTIFIER_BYTES`].
fn with_suffix(name: &str, n: usize) -> String {
    let suffix = format!("_{n}");
    let keep = name.len().min(MAX_IDENTIFIER_BYTES - suffix.len());
    format!("{}{suffix}", &name[..keep])
}

/// A name someone wants, and what orders it against others that want the same one.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub name: String,
    /// Twenty's name for what wants it (`name.firstName`, `websiteProperty`): the smallest in byte
    /// order keeps the name.
    pub order_key: String,
}

/// Gives every wanted name a distinct final one, in the order of `wanted`.
///
/// The rule: among those that want the same name, the one whose `order_key` sorts first (byte
/// order) keeps it; the others, in that order, get `_2`, `_3`, … (the first such name that is free).
/// A name in `taken` or for which `blocked` is true is never given: who wants it gets a suffix
/// too. A suffixed name never takes a name that something else wants as it is.
pub fn assign(wanted: &[Wanted], taken: &HashSet<String>, blocked: impl Fn(&str) -> bool) -> Vec<String> {
    let wanted_as_is: HashSet<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by(|&a, &b| {
        (&wanted[a].name, &wanted[a].order_key, a).cmp(&(&wanted[b].name, &wanted[b].order_key, b))
    });
    let mut given: HashSet<String> = taken.clone();
    let mut names = vec![String::new(); wanted.len()];
    for i in order {
        let base = &wanted[i].name;
        let name = if !given.contains(base) && !blocked(base) {
            base.clone()
        } else {
            // Ends: every n gives another name, and only finitely many are given or wanted.
            let mut n = 2;
            loop {
                let candidate = with_suffix(base, n);
                if !given.contains(&candidate)
                    && !blocked(&candidate)
                    && !wanted_as_is.contains(candidate.as_str())
                {
                    break candidate;
                }
                n += 1;
            }
        };
        given.insert(name.clone());
        names[i] = name;
    }
    names
}

/// An identifier in double quotes. Identifiers built here hold only `[a-z0-9_]`; doubling any
/// quote keeps that true of any text.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal in single quotes, quotes doubled. Only for text that passed [`check_name`] or
/// that this crate wrote: it holds no backslash, so the literal reads the same whatever
/// `standard_conforming_strings` says.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(items: &[(&str, &str)]) -> Vec<Wanted> {
        items.iter().map(|(n, k)| Wanted { name: n.to_string(), order_key: k.to_string() }).collect()
    }

    #[test]
    fn snake_case_follows_the_design_rule() {
        for (name, snake) in [
            ("linkedinLink", "linkedin_link"),
            ("createdBy", "created_by"),
            ("workspaceMemberId", "workspace_member_id"),
            ("addressStreet1", "address_street1"),
            ("primaryLinkURL", "primary_link_url"),
            ("ID", "id"),
            ("person", "person"),
            ("websiteProperty", "website_property"),
            ("x2Y", "x2_y"),
            ("already_snake", "already_snake"),
            ("first name", "first_name"),
            ("a; DROP TABLE twenty_records; --", "a_drop_table_twenty_records_"),
            ("prénom", "pr_nom"),
            ("it's", "it_s"),
        ] {
            assert_eq!(snake_case(name), snake, "{name}");
        }
    }

    #[test]
    fn identifiers_join_parts_and_refuse_names_without_letters() {
        assert_eq!(
            identifier(&["createdBy", "workspaceMemberId"]),
            Ok("created_by_workspace_member_id".into())
        );
        assert_eq!(identifier(&["amount", "amountMicros"]), Ok("amount_amount_micros".into()));
        assert_eq!(identifier(&["--"]), Err(Unusable::NoLetterOrDigit));
        assert_eq!(identifier(&["name", "✓"]), Err(Unusable::NoLetterOrDigit));
    }

    #[test]
    fn long_names_are_shortened_with_a_hash_never_truncated_into_one() {
        let long_a = format!("{}A", "x".repeat(70));
        let long_b = format!("{}B", "x".repeat(70));
        let a = identifier(&[&long_a]).unwrap();
        let b = identifier(&[&long_b]).unwrap();
        assert_eq!(a.len(), MAX_IDENTIFIER_BYTES);
        assert_eq!(b.len(), MAX_IDENTIFIER_BYTES);
        assert_ne!(a, b);
        assert!(a.starts_with(&"x".repeat(54)));
        assert_eq!(identifier(&[&long_a]).unwrap(), a, "deterministic");
        let exactly = "y".repeat(MAX_IDENTIFIER_BYTES);
        assert_eq!(fit(exactly.clone()), exactly);
    }

    #[test]
    fn checked_names_refuse_what_cannot_be_written_safely() {
        assert_eq!(check_name("jobTitle"), Ok(()));
        assert_eq!(check_name("it's; DROP TABLE x"), Ok(()));
        assert_eq!(check_name(""), Err(Unusable::Empty));
        assert_eq!(check_name("a\"b"), Err(Unusable::ForbiddenCharacter));
        assert_eq!(check_name("a\\b"), Err(Unusable::ForbiddenCharacter));
        assert_eq!(check_name("a\nb"), Err(Unusable::ForbiddenCharacter));
        assert_eq!(check_name("a\0b"), Err(Unusable::ForbiddenCharacter));
        assert_eq!(check_name(&"n".repeat(256)), Err(Unusable::TooLong));
    }

    #[test]
    fn the_first_in_byte_order_keeps_a_name_and_the_others_get_suffixes() {
        // Given in either order, the same names come out.
        let items = [("linkedin_link", "linkedin_link"), ("linkedin_link", "linkedinLink"), ("x", "x")];
        let names = assign(&wanted(&items), &HashSet::new(), |_| false);
        assert_eq!(names, ["linkedin_link_2", "linkedin_link", "x"]);
        let reversed: Vec<_> = items.iter().rev().cloned().collect();
        let names = assign(&wanted(&reversed), &HashSet::new(), |_| false);
        assert_eq!(names, ["x", "linkedin_link", "linkedin_link_2"]);
    }

    #[test]
    fn suffixes_skip_names_wanted_as_they_are_taken_or_blocked() {
        let items = [("a", "a1"), ("a", "a2"), ("a_2", "b"), ("id", "id")];
        let taken = HashSet::from(["id".to_string()]);
        let names = assign(&wanted(&items), &taken, |n| n == "a_3");
        assert_eq!(names, ["a", "a_4", "a_2", "id_2"]);
    }

    #[test]
    fn a_suffix_keeps_a_long_name_within_the_limit() {
        let long = "z".repeat(MAX_IDENTIFIER_BYTES);
        let items = [(long.as_str(), "1"), (long.as_str(), "2")];
        let names = assign(&wanted(&items), &HashSet::new(), |_| false);
        assert_eq!(names[0], long);
        assert_eq!(names[1].len(), MAX_IDENTIFIER_BYTES);
        assert!(names[1].ends_with("_2"));
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_identifier("order"), "\"order\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
