//! Typed views: one SQL view per mirrored object, of its live records, with a column per field.
//!
//! ## Names
//! - A view is named after the object's `nameSingular` in snake_case (`person`,
//!   `website_property`): in schema `twenty` on PostgreSQL (`twenty.person`), in the main database
//!   on SQLite (`person`).
//! - snake_case: an underscore before each capital that follows a lower-case letter or a digit,
//!   then lower case (`linkedinLink` → `linkedin_link`, `addressStreet1` → `address_street1`). Any
//!   other run of characters than ASCII letters, digits and `_` becomes one `_` (`first name` →
//!   `first_name`).
//! - Columns: `id`, then, in the order of Twenty's field definitions, one per active field.
//!   A composite field gives one column per sub-field, `<field>_<sub-field>`
//!   (`name_first_name`, `amount_amount_micros`, `created_by_workspace_member_id`); a
//!   many-to-one relation gives its join column (`company_id`). Not columns: one-to-many
//!   relations, `TS_VECTOR` and `MORPH_RELATION` fields, inactive fields, and fields whose name is
//!   empty, longer than 255 bytes, holds a double quote, a backslash or a control character, or has
//!   no ASCII letter or digit. Each is listed in the plan with its reason.
//! - At most 63 bytes (PostgreSQL's limit, applied on both backends so that names agree): a longer
//!   name keeps its first 54 bytes, then `_` and the first 8 hex digits of the SHA-256 of the whole
//!   snake_case name (`…_1f3a9c0d`). Two long names never become one.
//! - Two columns that would have the same name: the one whose Twenty path (`name.firstName`,
//!   `nameFirstName`) sorts first in byte order keeps it; the others get `_2`, `_3`, … in that
//!   order, skipping any name another column has as it is. `id` is always the record's id.
//! - Two objects whose views would have the same name are told apart the same way, by
//!   `nameSingular`. A view never takes the name of one of the mirror's own tables
//!   (`twenty_records`, `twenty_objects`, `twenty_views`, `sync_state`, `sync_runs`,
//!   `sync_lease`, `webhook_events`, `_sqlx_migrations`), nor of a table, view, index or type in
//!   its namespace that the service did not create (those it created are listed in
//!   `twenty_views`): it gets the first free suffix (`person_2`) and its plan says why. A name
//!   starting with `sqlite_`, which SQLite keeps for itself, gets the prefix `view_` instead
//!   (`view_sqlite_stat`).
//!
//! ## Types and values (PostgreSQL / SQLite)
//! - Text-like fields (`TEXT`, `UUID`, `SELECT`, `RATING`, `RICH_TEXT`, text sub-fields, join
//!   columns, `id`) → `text` / TEXT. A string is itself (`''` stays `''`); another JSON value is
//!   its JSON text (on SQLite a boolean is `1` or `0`).
//! - `NUMBER`, `NUMERIC`, `POSITION`, `addressLat`, `addressLng` → `double precision` / REAL: a
//!   JSON number, or a string holding one (`"12.5"`), within double precision's range.
//! - `BOOLEAN` → `boolean` / 0 or 1: `true` or `false` only.
//! - `DATE_TIME` → `timestamptz` / TEXT in UTC with milliseconds, `2026-09-21T10:15:30.412Z` (text
//!   order is time order): an ISO 8601 date and time with `Z` or an offset. `updatedAt` and
//!   `deletedAt` read the mirror's own `updated_at` and `deleted_at` (the same instants; the first
//!   is indexed).
//! - `DATE` → `date` / TEXT: `YYYY-MM-DD`.
//! - `amountMicros` → `bigint` / INTEGER: an integer JSON number, or a string of 1 to 18 digits
//!   with an optional `-` (`"125000000"`), of magnitude below 10^18.
//! - `MULTI_SELECT`, `ARRAY` → `text[]` (each element as text) / the JSON array as text.
//! - `RAW_JSON`, JSON-valued sub-fields (`additionalEmails`, `additionalPhones`,
//!   `secondaryLinks`, `context`) and types this build does not know → `jsonb` / JSON text.
//! - A value that does not fit its column's type is NULL in that column, as is a JSON `null` and a
//!   missing key (a record not re-read since the field was added); the view still answers.
//!
//! ## Keeping them in step
//! [`sqlite::replace_views`] and [`postgres::replace_views`] take every mirrored object with its
//! field definitions and bring the views in line inside the caller's transaction (the store's
//! `save_objects`, which discovery calls at every reconcile and after a `metadata.*` webhook): a new object
//! gets its view, a changed one is replaced (on PostgreSQL in place when columns were only added
//! at the end, so that views built on it survive), an unchanged one is left alone, and the views
//! of objects no longer given are dropped. Each view's change has a savepoint of its own: one that
//! fails (PostgreSQL refuses to drop a view that another depends on) keeps its previous view and
//! is reported, and the rest go on. Only views listed in `twenty_views` are ever dropped or
//! replaced, and only with `DROP VIEW`, which refuses a table.
//!
//! The views are plain views over `twenty_records` (`object = '<nameSingular>' AND deleted_at IS
//! NULL AND destroyed_at IS NULL`), so a write shows in them the moment it commits.
//!
//! ## Indexes
//! `updated_at` is the mirror's own column, indexed with `object`: filters and pages in
//! `updated_at` order use that index. Any other column is an expression over `data`; to index
//! one, index the same expression, restricted to the object. On PostgreSQL, a text column:
//! `CREATE INDEX person_city ON twenty_records ((data ->> 'city')) WHERE object = 'person'`; a
//! number, boolean or amount: the function the view calls, `((twenty_mirror_double(data ->
//! 'employees')))`. PostgreSQL does not index `DATE_TIME` or `DATE` columns read from `data` (it
//! deems their parsing dependent on session settings); filter on `updated_at` where you can. On
//! SQLite, the column's expression exactly as the view has it (`twenty-mirror views --sql` prints
//! it): `CREATE INDEX person_city ON twenty_records (object, CAST((data ->> '$."city"') AS TEXT))`.

mod columns;
pub mod naming;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

pub use naming::Unusable;
use naming::Wanted;

/// An object to make a view for: its `nameSingular` and its field definitions as the metadata API
/// returns them and `twenty_objects.fields` stores them (a JSON array of `{name, type, isActive,
/// relation, settings, …}`).
#[derive(Debug, Clone, Copy)]
pub struct ObjectFields<'a> {
    pub name_singular: &'a str,
    pub fields: &'a serde_json::Value,
}

/// A column's type: `postgres_type` and `sqlite_type` say what each backend gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Text,
    Double,
    Boolean,
    Timestamp,
    Date,
    BigInt,
    TextArray,
    Json,
}

impl ColumnKind {
    pub fn postgres_type(self) -> &'static str {
        match self {
            ColumnKind::Text => "text",
            ColumnKind::Double => "double precision",
            ColumnKind::Boolean => "boolean",
            ColumnKind::Timestamp => "timestamp with time zone",
            ColumnKind::Date => "date",
            ColumnKind::BigInt => "bigint",
            ColumnKind::TextArray => "text[]",
            ColumnKind::Json => "jsonb",
        }
    }

    pub fn sqlite_type(self) -> &'static str {
        match self {
            ColumnKind::Text => "TEXT",
            ColumnKind::Double => "REAL",
            ColumnKind::Boolean => "INTEGER (0 or 1)",
            ColumnKind::Timestamp => "TEXT (UTC, 2026-09-21T10:15:30.412Z)",
            ColumnKind::Date => "TEXT (2026-09-30)",
            ColumnKind::BigInt => "INTEGER",
            ColumnKind::TextArray => "TEXT (JSON array)",
            ColumnKind::Json => "TEXT (JSON)",
        }
    }
}

/// Where a column's value is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum ColumnSource {
    /// `twenty_records.id`.
    RecordId,
    /// `twenty_records.updated_at`: the record's `updatedAt`.
    RecordUpdatedAt,
    /// `twenty_records.deleted_at`: null in a view of live records.
    RecordDeletedAt,
    /// The record's `createdAt`: on PostgreSQL the column `twenty_records.created_at` (migration
    /// 0010), on SQLite the key of `data`, read as any date-time.
    RecordCreatedAt,
    /// A key of `data`, or a sub-field's key within it.
    Key { path: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewColumn {
    pub name: String,
    pub kind: ColumnKind,
    /// Twenty's field (`name`; for a join column, the relation: `company`).
    pub field: String,
    /// The composite sub-field (`firstName`).
    pub sub_field: Option<String>,
    /// Twenty's type of the field (`FULL_NAME`).
    pub field_type: String,
    pub source: ColumnSource,
    /// The name the rule gives, when another column had it first.
    pub wanted_name: Option<String>,
}

/// A field that is not a column, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedField {
    pub field: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    UnusableName {
        problem: Unusable,
    },
    NoType,
    Inactive,
    SearchVector,
    MorphRelation,
    OneToMany,
    /// A relation whose kind is neither many-to-one nor one-to-many.
    NoJoinColumn,
    /// The relation's join column is also a field of its own, which gives the column.
    JoinColumnListed {
        field: String,
    },
    /// Another definition of the same field came first.
    Duplicate,
    /// Past [`MAX_COLUMNS`].
    TooManyColumns,
}

impl SkipReason {
    pub fn describe(&self) -> String {
        match self {
            SkipReason::UnusableName { problem } => problem.describe().to_owned(),
            SkipReason::NoType => "the definition has no type".into(),
            SkipReason::Inactive => "the field is inactive".into(),
            SkipReason::SearchVector => "a TS_VECTOR field is Twenty's search index".into(),
            SkipReason::MorphRelation => "a MORPH_RELATION has no single join column".into(),
            SkipReason::OneToMany => "a one-to-many relation lives on the other object".into(),
            SkipReason::NoJoinColumn => "a relation that is not many-to-one has no join column".into(),
            SkipReason::JoinColumnListed { field } => format!("its join column is the field {field}"),
            SkipReason::Duplicate => "the field is defined twice".into(),
            SkipReason::TooManyColumns => format!("the view already has {MAX_COLUMNS} columns"),
        }
    }
}

/// Why a view does not have the name the rule gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NameConflict {
    /// One of the mirror's own tables has it.
    MirrorTable,
    /// A table, view, index or type that the service did not create has it.
    NotCreatedByService,
    /// Another object's view has it (its `nameSingular` sorts first).
    OtherObject { object: String },
    /// It starts with `sqlite_`, which SQLite keeps for itself.
    ReservedPrefix,
}

impl NameConflict {
    /// Why the view is not named `wanted`, for operators.
    pub fn describe(&self, wanted: &str) -> String {
        match self {
            NameConflict::MirrorTable => format!("{wanted} is one of the mirror's own tables"),
            NameConflict::NotCreatedByService => {
                format!("{wanted} is taken by a table, view, index or type the service did not create")
            }
            NameConflict::OtherObject { object } => format!("{wanted} is the view of object {object}"),
            NameConflict::ReservedPrefix => format!("SQLite keeps names like {wanted} for itself"),
        }
    }
}

/// The view of one object, as planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewPlan {
    pub object: String,
    pub name: String,
    /// The name the rule gives, when `conflict` made it another.
    pub wanted_name: Option<String>,
    pub conflict: Option<NameConflict>,
    pub columns: Vec<ViewColumn>,
    pub skipped: Vec<SkippedField>,
}

/// An object that has no view, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedObject {
    pub object: String,
    pub reason: ObjectSkipReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectSkipReason {
    UnusableName {
        problem: Unusable,
    },
    /// The same `nameSingular` was given twice; the first has the view.
    Duplicate,
}

impl ObjectSkipReason {
    pub fn describe(&self) -> String {
        match self {
            ObjectSkipReason::UnusableName { problem } => problem.describe().to_owned(),
            ObjectSkipReason::Duplicate => "the object is listed twice; the first has the view".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Planned {
    pub views: Vec<ViewPlan>,
    pub skipped: Vec<SkippedObject>,
}

/// PostgreSQL's limit on the columns of a table or view; SQLite's default limit is 2000.
pub const MAX_COLUMNS: usize = 1600;

/// The mirror's own tables: a view never takes their names, on either backend.
pub const MIRROR_TABLES: &[&str] = &[
    "twenty_records",
    "twenty_objects",
    "twenty_views",
    "sync_state",
    "sync_runs",
    "sync_lease",
    "webhook_events",
    "_sqlx_migrations",
];

/// SQLite refuses to create anything whose name starts with this. A suffix cannot help, so such
/// a view name gets [`RESERVED_PREFIX_ESCAPE`] in front.
const RESERVED_PREFIX: &str = "sqlite_";
const RESERVED_PREFIX_ESCAPE: &str = "view_";

/// The name the rule gives a view, then the one it asks for: `view_` before a reserved prefix.
fn view_names(name_singular: &str) -> Result<(String, String), Unusable> {
    naming::check_name(name_singular)?;
    let rule = naming::identifier(&[name_singular])?;
    let asked = if rule.starts_with(RESERVED_PREFIX) {
        naming::fit(format!("{RESERVED_PREFIX_ESCAPE}{rule}"))
    } else {
        rule.clone()
    };
    Ok((rule, asked))
}

/// Plans the views of `objects`. `foreign` holds the names (lower case) in the views' namespace
/// that the service did not create: no view takes one.
pub fn plan_views(objects: &[ObjectFields<'_>], foreign: &HashSet<String>) -> Planned {
    let mut skipped = Vec::new();
    let mut usable: Vec<(&ObjectFields<'_>, String, String)> = Vec::new();
    let mut seen = HashSet::new();
    for object in objects {
        let name = object.name_singular;
        match view_names(name) {
            Err(problem) => skipped.push(SkippedObject {
                object: name.to_owned(),
                reason: ObjectSkipReason::UnusableName { problem },
            }),
            Ok(_) if !seen.insert(name) => {
                skipped.push(SkippedObject { object: name.to_owned(), reason: ObjectSkipReason::Duplicate })
            }
            Ok((rule, asked)) => usable.push((object, rule, asked)),
        }
    }
    let wanted: Vec<Wanted> = usable
        .iter()
        .map(|(o, _, asked)| Wanted { name: asked.clone(), order_key: o.name_singular.to_owned() })
        .collect();
    let names =
        naming::assign(&wanted, &HashSet::new(), |n| MIRROR_TABLES.contains(&n) || foreign.contains(n));
    let holder: HashMap<&str, &str> =
        names.iter().zip(&usable).map(|(name, (o, _, _))| (name.as_str(), o.name_singular)).collect();
    let views = usable
        .iter()
        .zip(names.iter())
        .map(|((object, rule, asked), name)| {
            let conflict = (name != rule).then(|| {
                if rule != asked {
                    NameConflict::ReservedPrefix
                } else if MIRROR_TABLES.contains(&rule.as_str()) {
                    NameConflict::MirrorTable
                } else if foreign.contains(rule) {
                    NameConflict::NotCreatedByService
                } else {
                    let object = holder.get(rule.as_str()).copied().unwrap_or_default().to_owned();
                    NameConflict::OtherObject { object }
                }
            });
            let (columns, skipped) = plan_columns(object.fields);
            ViewPlan {
                object: object.name_singular.to_owned(),
                name: name.clone(),
                wanted_name: conflict.as_ref().map(|_| rule.clone()),
                conflict,
                columns,
                skipped,
            }
        })
        .collect();
    Planned { views, skipped }
}

/// The columns of one object's view, named, and the fields that are not columns.
fn plan_columns(fields: &serde_json::Value) -> (Vec<ViewColumn>, Vec<SkippedField>) {
    let (mut candidates, mut skipped) = columns::candidates(fields);
    if candidates.len() > MAX_COLUMNS {
        for extra in candidates.drain(MAX_COLUMNS..) {
            if skipped.last().is_none_or(|s: &SkippedField| s.field != extra.field) {
                skipped.push(SkippedField { field: extra.field, reason: SkipReason::TooManyColumns });
            }
        }
    }
    // The first candidate is the record's id, which always has `id`.
    let wanted: Vec<Wanted> = candidates
        .iter()
        .skip(1)
        .map(|c| Wanted { name: c.name.clone(), order_key: c.order_key() })
        .collect();
    let taken = HashSet::from(["id".to_owned()]);
    let names = naming::assign(&wanted, &taken, |_| false);
    let columns = candidates
        .into_iter()
        .zip(std::iter::once("id".to_owned()).chain(names))
        .map(|(c, name)| ViewColumn {
            wanted_name: (name != c.name).then_some(c.name),
            name,
            kind: c.kind,
            field: c.field,
            sub_field: c.sub_field,
            field_type: c.field_type,
            source: c.source,
        })
        .collect();
    (columns, skipped)
}

/// A row of `twenty_views`: a view the service created.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredView {
    pub name: String,
    pub object: String,
    /// The `SELECT` it was created with.
    pub definition: String,
    /// Its plan, as stored; `None` if the stored text cannot be read as one.
    pub plan: Option<ViewPlan>,
}

/// What became of one object's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ViewReport {
    pub plan: ViewPlan,
    pub outcome: ViewOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ViewOutcome {
    Created,
    Replaced,
    Unchanged,
    /// The database refused the change; the previous view, if any, is still there.
    Failed {
        error: String,
    },
}

/// A view of an object no longer given, and whether dropping it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedView {
    pub name: String,
    pub object: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ViewsReport {
    pub views: Vec<ViewReport>,
    pub dropped: Vec<DroppedView>,
    pub skipped: Vec<SkippedObject>,
}

impl ViewsReport {
    /// Whether any view could not be created, replaced or dropped.
    pub fn has_failures(&self) -> bool {
        self.views.iter().any(|v| matches!(v.outcome, ViewOutcome::Failed { .. }))
            || self.dropped.iter().any(|d| d.error.is_some())
    }
}

/// A relation in the views' namespace, as the database lists it.
#[derive(Debug, Clone)]
pub(crate) struct ExistingRelation {
    pub name: String,
    pub is_view: bool,
}

/// What to do, worked out from the plans, the registry and what the database holds.
#[derive(Debug)]
pub(crate) struct Work {
    /// Registry rows whose name now belongs to something else: forgotten, never dropped.
    pub forget: Vec<String>,
    /// Registered views of objects no longer given.
    pub drop: Vec<RegisteredView>,
    pub build: Vec<Build>,
    pub skipped: Vec<SkippedObject>,
}

#[derive(Debug)]
pub(crate) struct Build {
    pub plan: ViewPlan,
    /// The view's `SELECT`.
    pub definition: String,
    pub step: Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Same definition and plan.
    Keep,
    /// Same definition; the plan's notes changed (a field that is not a column came or went).
    UpdatePlan,
    Create,
    /// `CREATE OR REPLACE VIEW`: the old columns are the new ones' first, with the same types.
    ReplaceInPlace,
    /// Dropped and created again.
    Recreate,
}

/// Plans the views and works out the steps. `definition` renders a plan's `SELECT`;
/// `replaces_in_place` says whether the backend can replace a view whose columns only grew.
pub(crate) fn work_out(
    objects: &[ObjectFields<'_>],
    registered: Vec<RegisteredView>,
    existing: &[ExistingRelation],
    replaces_in_place: bool,
    definition: impl Fn(&ViewPlan) -> String,
) -> Work {
    let existing: HashMap<String, bool> =
        existing.iter().map(|r| (r.name.to_ascii_lowercase(), r.is_view)).collect();
    let is_ours = |name: &str| existing.get(&name.to_ascii_lowercase()).is_none_or(|is_view| *is_view);
    let (ours, forget): (Vec<RegisteredView>, Vec<RegisteredView>) =
        registered.into_iter().partition(|r| is_ours(&r.name));
    let our_names: HashSet<String> = ours.iter().map(|r| r.name.to_ascii_lowercase()).collect();
    let foreign: HashSet<String> = existing.keys().filter(|n| !our_names.contains(*n)).cloned().collect();
    let planned = plan_views(objects, &foreign);
    let new_names: HashSet<&str> = planned.views.iter().map(|p| p.name.as_str()).collect();
    let (keep, drop): (Vec<RegisteredView>, Vec<RegisteredView>) =
        ours.into_iter().partition(|r| new_names.contains(r.name.as_str()));
    let by_name: HashMap<&str, &RegisteredView> = keep.iter().map(|r| (r.name.as_str(), r)).collect();
    let build = planned
        .views
        .into_iter()
        .map(|plan| {
            let definition = definition(&plan);
            let exists = existing.contains_key(&plan.name);
            let step = match by_name.get(plan.name.as_str()) {
                Some(old) if exists => step_for(old, &plan, &definition, replaces_in_place),
                _ => Step::Create,
            };
            Build { plan, definition, step }
        })
        .collect();
    Work { forget: forget.into_iter().map(|r| r.name).collect(), drop, build, skipped: planned.skipped }
}

fn step_for(old: &RegisteredView, plan: &ViewPlan, definition: &str, replaces_in_place: bool) -> Step {
    if old.definition == definition {
        return if old.plan.as_ref() == Some(plan) { Step::Keep } else { Step::UpdatePlan };
    }
    let grew_at_the_end = old.plan.as_ref().is_some_and(|old_plan| {
        old_plan.columns.len() <= plan.columns.len()
            && old_plan.columns.iter().zip(&plan.columns).all(|(a, b)| a.name == b.name && a.kind == b.kind)
    });
    if replaces_in_place && grew_at_the_end { Step::ReplaceInPlace } else { Step::Recreate }
}

#[cfg(test)]
mod plan_tests {
    use serde_json::json;

    use super::*;

    fn text(name: &str) -> serde_json::Value {
        json!({"name": name, "type": "TEXT", "isActive": true})
    }

    fn plan(objects: &[(&str, serde_json::Value)], foreign: &[&str]) -> Planned {
        let given: Vec<ObjectFields<'_>> =
            objects.iter().map(|(name, fields)| ObjectFields { name_singular: name, fields }).collect();
        plan_views(&given, &foreign.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn created_at_reads_the_records_own_column_on_postgres_and_the_json_on_sqlite() {
        let fields = json!([{"name": "createdAt", "type": "DATE_TIME", "isActive": true}]);
        let planned = plan(&[("person", fields)], &[]);
        let (postgres, sqlite) =
            (postgres::select_sql(&planned.views[0]), sqlite::select_sql(&planned.views[0]));
        assert!(postgres.contains("r.created_at AS \"created_at\""), "{postgres}");
        assert!(!postgres.contains("'createdAt'"), "{postgres}");
        assert!(sqlite.contains("'$.\"createdAt\"'"), "{sqlite}");
    }

    #[test]
    fn colliding_columns_get_the_same_names_whatever_the_order() {
        let full_name = json!({"name": "name", "type": "FULL_NAME", "isActive": true});
        let orders = [
            json!([
                text("linkedin_link"),
                text("linkedinLink"),
                text("nameFirstName"),
                full_name.clone(),
                text("ID")
            ]),
            json!([
                text("ID"),
                full_name,
                text("nameFirstName"),
                text("linkedinLink"),
                text("linkedin_link")
            ]),
        ];
        for fields in orders {
            let planned = plan(&[("person", fields)], &[]);
            let mut named: Vec<(String, String)> = planned.views[0]
                .columns
                .iter()
                .map(|c| (c.name.clone(), format!("{}.{}", c.field, c.sub_field.clone().unwrap_or_default())))
                .collect();
            named.sort();
            assert_eq!(
                named,
                [
                    ("id".to_string(), "id.".to_string()),
                    ("id_2".into(), "ID.".into()),
                    ("linkedin_link".into(), "linkedinLink.".into()),
                    ("linkedin_link_2".into(), "linkedin_link.".into()),
                    ("name_first_name".into(), "name.firstName".into()),
                    ("name_first_name_2".into(), "nameFirstName.".into()),
                    ("name_last_name".into(), "name.lastName".into()),
                ]
            );
        }
    }

    #[test]
    fn objects_that_want_one_name_are_told_apart_by_name_singular() {
        let planned = plan(
            &[("website_property", json!([])), ("websiteProperty", json!([])), ("person", json!([]))],
            &["person"],
        );
        let names: Vec<(&str, &str, Option<&NameConflict>)> =
            planned.views.iter().map(|v| (v.object.as_str(), v.name.as_str(), v.conflict.as_ref())).collect();
        assert_eq!(
            names,
            [
                (
                    "website_property",
                    "website_property_2",
                    Some(&NameConflict::OtherObject { object: "websiteProperty".into() })
                ),
                ("websiteProperty", "website_property", None),
                ("person", "person_2", Some(&NameConflict::NotCreatedByService)),
            ]
        );
        assert_eq!(planned.views[2].wanted_name.as_deref(), Some("person"));
    }

    #[test]
    fn an_object_given_twice_or_unnamed_has_no_second_view() {
        let planned = plan(&[("person", json!([])), ("person", json!([])), ("", json!([]))], &[]);
        assert_eq!(planned.views.len(), 1);
        let reasons: Vec<&ObjectSkipReason> = planned.skipped.iter().map(|s| &s.reason).collect();
        assert_eq!(
            reasons,
            [&ObjectSkipReason::Duplicate, &ObjectSkipReason::UnusableName { problem: Unusable::Empty }]
        );
    }

    #[test]
    fn columns_past_the_limit_are_reported_not_created() {
        let fields: Vec<serde_json::Value> = (0..MAX_COLUMNS + 10).map(|i| text(&format!("f{i}"))).collect();
        let planned = plan(&[("wide", serde_json::Value::Array(fields))], &[]);
        let view = &planned.views[0];
        assert_eq!(view.columns.len(), MAX_COLUMNS);
        assert_eq!(view.skipped.len(), 11);
        assert!(view.skipped.iter().all(|s| s.reason == SkipReason::TooManyColumns));
    }

    #[test]
    fn a_view_whose_columns_only_grew_is_replaced_in_place_where_the_backend_can() {
        let before = plan(&[("person", json!([text("city")]))], &[]).views.remove(0);
        let grown = plan(&[("person", json!([text("city"), text("jobTitle")]))], &[]).views.remove(0);
        let shrunk = plan(&[("person", json!([text("jobTitle")]))], &[]).views.remove(0);
        let old = RegisteredView {
            name: "person".into(),
            object: "person".into(),
            definition: "old".into(),
            plan: Some(before.clone()),
        };
        assert_eq!(step_for(&old, &grown, "new", true), Step::ReplaceInPlace);
        assert_eq!(step_for(&old, &grown, "new", false), Step::Recreate);
        assert_eq!(step_for(&old, &shrunk, "new", true), Step::Recreate);
        assert_eq!(step_for(&old, &before, "old", true), Step::Keep);
        let unreadable = RegisteredView { plan: None, ..old };
        assert_eq!(step_for(&unreadable, &before, "old", true), Step::UpdatePlan);
        assert_eq!(step_for(&unreadable, &grown, "new", true), Step::Recreate);
    }
}
