//! SQL text for the read API, built from a parsed query. Every value from the request is a bound
//! parameter; the only names written into the text are field paths that the object's schema
//! resolved (identifiers, by construction of [`Leaf`]).

use std::collections::HashMap;
use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::query::{
    Comparison, Direction, Leaf, LeafKind, LikePattern, LikePiece, ListQuery, Position, Predicate, Scalar,
    SortKey,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Real(f64),
    Integer(i64),
    Boolean(bool),
    Instant(DateTime<Utc>),
    /// PostgreSQL's `text[]`.
    TextArray(Vec<String>),
}

/// A statement and its parameters, `$1…` on PostgreSQL and `?1…` on SQLite.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// How a selected sort key is read back, to make the page's cursors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// The record's id: the statement's first column, not selected a second time.
    Id,
    Text,
    Number,
    Boolean,
    Instant,
}

impl KeyType {
    fn of(kind: &LeafKind) -> KeyType {
        match kind {
            LeafKind::Number => KeyType::Number,
            LeafKind::Boolean => KeyType::Boolean,
            LeafKind::UpdatedAt | LeafKind::DeletedAt => KeyType::Instant,
            LeafKind::Id => KeyType::Id,
            // A date-time of the data is computed as the fixed-width text a cursor holds.
            LeafKind::DateTime
            | LeafKind::Text { .. }
            | LeafKind::Date
            | LeafKind::Enum { .. }
            | LeafKind::Array { .. }
            | LeafKind::Json => KeyType::Text,
        }
    }
}

/// The statement of one page. It reads `limit + 1` records, in reverse order for a backward page:
/// each its `id`, its `data` (as text) and the value of each sort key but the id. And it reads the
/// [`meta`](meta_statement) columns, of the same snapshot:
/// - on PostgreSQL, as further columns of every record's row;
/// - on SQLite, as one row of their own, whose `id` is NULL and whose `data` is the meta columns as
///   a JSON array. sqlx copies every value of every SQLite row out of the connection's thread, one
///   allocation each: three more values per record made the statement alone a third slower.
#[derive(Debug, Clone, PartialEq)]
pub struct PageStatement {
    pub statement: Statement,
    pub keys: Vec<KeyType>,
}

impl PageStatement {
    /// Each sort key with the column that holds its value: the id's is column 0, the others follow
    /// `data` in turn.
    pub fn key_columns(&self) -> impl Iterator<Item = (KeyType, usize)> + '_ {
        let mut next = 2;
        self.keys.iter().map(move |&key| {
            if key == KeyType::Id {
                return (key, 0);
            }
            next += 1;
            (key, next - 1)
        })
    }

    /// The first meta column of a PostgreSQL page: after `id`, `data` and the sort keys but the id.
    pub fn meta_column(&self) -> usize {
        2 + self.keys.iter().filter(|key| **key != KeyType::Id).count()
    }
}

/// The fixed-width text SQLite stores timestamps as, and date-times of the data are compared as.
pub(crate) fn sqlite_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One page of the records of `object` that `query` selects.
pub fn page_statement(dialect: Dialect, object: &str, query: &ListQuery) -> PageStatement {
    let mut b = Builder::new(dialect);
    let backward = matches!(query.position, Position::Before(_));
    let filtered = query.filter.is_some().then_some(query);
    let selected: Vec<&SortKey> =
        query.order.iter().filter(|key| !matches!(key.leaf.kind(), LeafKind::Id)).collect();
    if dialect == Dialect::Sqlite {
        // The meta row first; nothing depends on where it comes, as its NULL id tells it apart.
        b.push("SELECT NULL, ");
        b.meta(object, filtered);
        for _ in &selected {
            b.push(", NULL");
        }
        b.push(" UNION ALL SELECT * FROM (");
    }
    b.push(if dialect == Dialect::Postgres { "SELECT id, data::text" } else { "SELECT id, data" });
    for key in &selected {
        b.push(", ");
        b.value(&key.leaf);
    }
    if dialect == Dialect::Postgres {
        b.push(", ");
        b.meta(object, filtered);
    }
    b.push(" FROM twenty_records WHERE ");
    b.scope(object, query);
    if let Position::After(values) | Position::Before(values) = &query.position {
        b.push(" AND ");
        b.keyset(&query.order, values, backward);
    }
    b.push(" ORDER BY ");
    for (i, key) in query.order.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        let direction = if backward { key.direction.reversed() } else { key.direction };
        b.sort(&key.leaf);
        // No NULLS clause on a column that is never null: PostgreSQL matches an ordering to an
        // index by it, and its indexes keep the default (ASC NULLS LAST, read backward for DESC).
        b.push(match (direction, key.leaf.kind().is_nullable()) {
            (Direction::AscNullsFirst | Direction::AscNullsLast, false) => " ASC",
            (Direction::DescNullsFirst | Direction::DescNullsLast, false) => " DESC",
            (Direction::AscNullsFirst, true) => " ASC NULLS FIRST",
            (Direction::AscNullsLast, true) => " ASC NULLS LAST",
            (Direction::DescNullsFirst, true) => " DESC NULLS FIRST",
            (Direction::DescNullsLast, true) => " DESC NULLS LAST",
        });
    }
    // The limit is written as a number, not bound: it is a parsed count (at most 201), and bound,
    // PostgreSQL costs a reused plan as if it read a tenth of the table, so its `auto` plan cache
    // never keeps one and plans every page again (0.66 of the hand-written statement's throughput
    // in pgbench at a million rows, 0.9 with the number).
    b.push(&format!(" LIMIT {}", query.limit.saturating_add(1)));
    if dialect == Dialect::Sqlite {
        b.push(")");
    }
    let keys = query.order.iter().map(|key| KeyType::of(key.leaf.kind())).collect();
    PageStatement { statement: b.finish(), keys }
}

/// `totalCount` and the object's freshness alone (on SQLite as one JSON array), for a PostgreSQL
/// page that read no row (and so no meta columns) and for a single record: the filter's count when `query` has a filter, the kept count
/// of live records otherwise; when the object's last complete pass ended; when its last delivery
/// arrived.
pub fn meta_statement(dialect: Dialect, object: &str, query: Option<&ListQuery>) -> Statement {
    let mut b = Builder::new(dialect);
    b.push("SELECT ");
    b.meta(object, query.filter(|query| query.filter.is_some()));
    b.finish()
}

struct Builder {
    dialect: Dialect,
    sql: String,
    binds: Vec<Bind>,
    /// The parameters holding each `SELECT` field's options, bound once per statement.
    options: HashMap<Vec<String>, Vec<usize>>,
}

impl Builder {
    fn new(dialect: Dialect) -> Self {
        Builder { dialect, sql: String::with_capacity(512), binds: Vec::new(), options: HashMap::new() }
    }

    fn finish(self) -> Statement {
        Statement { sql: self.sql, binds: self.binds }
    }

    fn push(&mut self, text: &str) {
        self.sql.push_str(text);
    }

    fn is_postgres(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    /// Adds a parameter; returns its number.
    fn bind(&mut self, bind: Bind) -> usize {
        self.binds.push(bind);
        self.binds.len()
    }

    /// Writes a reference to parameter `index`.
    fn param(&mut self, index: usize) {
        let reference = self.param_text(index);
        self.push(&reference);
    }

    /// A reference to parameter `index`, as text.
    fn param_text(&self, index: usize) -> String {
        let sigil = if self.is_postgres() { '$' } else { '?' };
        format!("{sigil}{index}")
    }

    /// The object, the life cycle and the filter: the rows a listing ranges over.
    fn scope(&mut self, object: &str, query: &ListQuery) {
        self.push("object = ");
        let index = self.bind(Bind::Text(object.to_owned()));
        self.param(index);
        self.push(" AND destroyed_at IS NULL");
        if !query.include_soft_deleted {
            self.push(" AND deleted_at IS NULL");
        }
        if let Some(filter) = &query.filter {
            self.push(" AND ");
            self.predicate(filter);
        }
    }

    /// The meta columns, one value per statement: each is a subquery that depends on no row, which
    /// both databases compute once. In the page's statement they make the page, its `totalCount`
    /// and the freshness one read, of one snapshot, and one statement instead of three. On SQLite
    /// they are one value, a JSON array of the three (see [`PageStatement`]).
    fn meta(&mut self, object: &str, filtered: Option<&ListQuery>) {
        let sqlite = !self.is_postgres();
        if sqlite {
            self.push("json_array(");
        }
        if let Some(query) = filtered {
            self.push("(SELECT COUNT(*) FROM twenty_records WHERE ");
            self.scope(object, query);
            self.push(")");
        }
        let index = self.bind(Bind::Text(object.to_owned()));
        let o = self.param_text(index);
        let columns = if self.is_postgres() {
            // The kept figures are `object_stats` plus the deltas not yet folded into it.
            let kept = |column: &str| {
                format!(
                    "SELECT {column} FROM object_stats WHERE object = {o} \
                     UNION ALL SELECT {column} FROM object_stats_deltas WHERE object = {o}"
                )
            };
            [
                format!("(SELECT COALESCE(sum(live), 0)::bigint FROM ({}) AS kept)", kept("live")),
                format!("(SELECT GREATEST(last_delta_at, last_full_at) FROM sync_state WHERE object = {o})"),
                format!("(SELECT max(last_delivery_at) FROM ({}) AS kept)", kept("last_delivery_at")),
            ]
        } else {
            [
                format!("COALESCE((SELECT live FROM object_stats WHERE object = {o}), 0)"),
                format!(
                    "(SELECT nullif(max(coalesce(last_delta_at, ''), coalesce(last_full_at, '')), '') \
                     FROM sync_state WHERE object = {o})"
                ),
                format!("(SELECT last_delivery_at FROM object_stats WHERE object = {o})"),
            ]
        };
        // Filtered, the count above is `totalCount` and the kept count of live records is not read.
        let [live, rest @ ..] = &columns;
        if filtered.is_none() {
            self.push(live);
        }
        for column in rest {
            self.push(", ");
            self.push(column);
        }
        if sqlite {
            self.push(")");
        }
    }

    /// A `'$.a.b'` JSON path or a PostgreSQL `->` chain. The segments are identifiers.
    fn json(&mut self, path: &[String], as_text: bool) {
        if self.is_postgres() {
            self.push("(data");
            for (i, segment) in path.iter().enumerate() {
                let last = i + 1 == path.len();
                self.push(if last && as_text { "->>'" } else { "->'" });
                self.push(segment);
                self.push("'");
            }
            self.push(")");
        } else {
            self.push(if as_text { "json_extract(data, '$" } else { "json_type(data, '$" });
            for segment in path {
                self.push(".");
                self.push(segment);
            }
            self.push("')");
        }
    }

    /// The leaf's value, typed: what a comparison with a coerced value and a cursor use.
    fn value(&mut self, leaf: &Leaf) {
        let path = leaf.path();
        match (leaf.kind(), self.dialect) {
            (LeafKind::Id, _) => self.push("id"),
            (LeafKind::UpdatedAt, _) => self.push("updated_at"),
            (LeafKind::DeletedAt, _) => self.push("deleted_at"),
            (LeafKind::Text { .. } | LeafKind::Date | LeafKind::Enum { .. }, Dialect::Sqlite) => {
                // A value of another JSON type still compares, and reads back, as text.
                self.push("CAST(");
                self.json(path, true);
                self.push(" AS TEXT)");
            }
            (
                LeafKind::Text { .. }
                | LeafKind::Date
                | LeafKind::Enum { .. }
                | LeafKind::Array { .. }
                | LeafKind::Json,
                _,
            ) => self.json(path, true),
            (LeafKind::Number, Dialect::Postgres) => {
                // Numbers, and integer strings (Twenty's NUMERIC and amountMicros may come as
                // strings); out of float8's range or of another type, NULL rather than an error.
                self.push("(CASE jsonb_typeof(");
                self.json(path, false);
                self.push(") WHEN 'number' THEN CASE WHEN abs(");
                self.json(path, false);
                self.push("::numeric) <= 1e300 THEN ");
                self.json(path, false);
                self.push("::float8 END WHEN 'string' THEN CASE WHEN ");
                self.json(path, true);
                self.push(" ~ '^-?[0-9]{1,18}$' THEN ");
                self.json(path, true);
                self.push("::float8 END END)");
            }
            (LeafKind::Number, Dialect::Sqlite) => {
                self.push("CAST(CASE ");
                self.json(path, false);
                self.push(" WHEN 'integer' THEN ");
                self.json(path, true);
                self.push(" WHEN 'real' THEN CASE WHEN abs(");
                self.json(path, true);
                self.push(") <= 1e300 THEN ");
                self.json(path, true);
                self.push(" END WHEN 'text' THEN CASE WHEN (");
                self.json(path, true);
                self.push(" GLOB '[0-9]*' OR ");
                self.json(path, true);
                self.push(" GLOB '-[0-9]*') AND substr(");
                self.json(path, true);
                self.push(", 2) NOT GLOB '*[^0-9]*' AND length(");
                self.json(path, true);
                self.push(") - (");
                self.json(path, true);
                self.push(" GLOB '-*') <= 18 THEN ");
                self.json(path, true);
                self.push(" END END AS REAL)");
            }
            (LeafKind::Boolean, Dialect::Postgres) => {
                self.push("(CASE WHEN jsonb_typeof(");
                self.json(path, false);
                self.push(") = 'boolean' THEN ");
                self.json(path, false);
                self.push("::boolean END)");
            }
            (LeafKind::Boolean, Dialect::Sqlite) => {
                self.push("(CASE ");
                self.json(path, false);
                self.push(" WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)");
            }
            // The same expressions as the createdAt indexes (PostgreSQL 0006, SQLite 0010), so
            // that they serve.
            (LeafKind::DateTime, Dialect::Postgres) => {
                self.push("twenty_mirror_instant(");
                self.json(path, true);
                self.push(")");
            }
            (LeafKind::DateTime, Dialect::Sqlite) => {
                // strftime reads 'now' as the current time: no date-time, and no value an index
                // may hold.
                self.push("(CASE WHEN lower(");
                self.json(path, true);
                self.push(") = 'now' THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%fZ', ");
                self.json(path, true);
                self.push(") END)");
            }
        }
    }

    /// What comparisons and the ordering use: text by code point, a `SELECT` by its option's
    /// position (a value that is no longer an option after every option).
    fn sort(&mut self, leaf: &Leaf) {
        match leaf.kind() {
            LeafKind::Id | LeafKind::Text { .. } | LeafKind::Date | LeafKind::DateTime
                if self.is_postgres() =>
            {
                self.value(leaf);
                self.push(" COLLATE \"C\"");
            }
            LeafKind::Enum { options } => {
                let params = match self.options.get(leaf.path()) {
                    Some(params) => params.clone(),
                    None => {
                        let params: Vec<usize> =
                            options.iter().map(|option| self.bind(Bind::Text(option.clone()))).collect();
                        self.options.insert(leaf.path().to_vec(), params.clone());
                        params
                    }
                };
                self.push("(CASE WHEN ");
                self.value(leaf);
                self.push(" IS NULL THEN NULL");
                for (position, param) in params.iter().enumerate() {
                    self.push(" WHEN ");
                    self.value(leaf);
                    self.push(" = ");
                    self.param(*param);
                    let _ = write!(self.sql, " THEN {position}");
                }
                let _ = write!(self.sql, " ELSE {} END)", params.len());
            }
            _ => self.value(leaf),
        }
    }

    /// Binds a coerced value in the leaf's sort domain.
    fn bind_sort(&mut self, leaf: &Leaf, value: &Scalar) -> usize {
        let bind = match (leaf.kind(), value) {
            (LeafKind::Enum { options }, Scalar::Text(text)) => {
                let position = options.iter().position(|option| option == text).unwrap_or(options.len());
                Bind::Integer(i64::try_from(position).unwrap_or(i64::MAX))
            }
            (kind, scalar) => self.scalar_bind(kind, scalar),
        };
        self.bind(bind)
    }

    /// Binds a coerced value for a comparison with the leaf's value.
    fn scalar_bind(&self, kind: &LeafKind, value: &Scalar) -> Bind {
        match (value, self.dialect) {
            (Scalar::Instant(at), _) if kind == &LeafKind::DateTime => Bind::Text(sqlite_timestamp(*at)),
            (Scalar::Text(text), _) => Bind::Text(text.clone()),
            (Scalar::Number(number), _) => Bind::Real(*number),
            (Scalar::Boolean(b), Dialect::Postgres) => Bind::Boolean(*b),
            (Scalar::Boolean(b), Dialect::Sqlite) => Bind::Integer(i64::from(*b)),
            (Scalar::Instant(at), Dialect::Postgres) => Bind::Instant(*at),
            (Scalar::Instant(at), Dialect::Sqlite) => Bind::Text(sqlite_timestamp(*at)),
        }
    }

    fn predicate(&mut self, predicate: &Predicate) {
        match predicate {
            Predicate::And(items) => self.junction(items, " AND ", "(1 = 1)"),
            Predicate::Or(items) => self.junction(items, " OR ", "(1 = 0)"),
            Predicate::Not(item) => {
                self.push("(NOT ");
                self.predicate(item);
                self.push(")");
            }
            Predicate::Compare { leaf, comparison, value } => self.compare(leaf, *comparison, value),
            Predicate::In { leaf, values } => self.is_in(leaf, values),
            Predicate::IsNull { leaf, null } => {
                self.push("(");
                self.value(leaf);
                match (leaf.kind(), null) {
                    (LeafKind::Text { empty_is_null: true }, true) => {
                        self.push(" IS NULL OR ");
                        self.value(leaf);
                        self.push(" = '')");
                    }
                    (_, true) => self.push(" IS NULL)"),
                    (_, false) => self.push(" IS NOT NULL)"),
                }
            }
            Predicate::ContainsAny { leaf, values } => self.contains_any(leaf, values),
            Predicate::Like { leaf, pattern, case_insensitive } => {
                self.like(leaf, pattern, *case_insensitive)
            }
        }
    }

    fn junction(&mut self, items: &[Predicate], separator: &str, empty: &str) {
        if items.is_empty() {
            return self.push(empty);
        }
        self.push("(");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(separator);
            }
            self.predicate(item);
        }
        self.push(")");
    }

    fn compare(&mut self, leaf: &Leaf, comparison: Comparison, value: &Scalar) {
        let operator = match comparison {
            Comparison::Eq => " = ",
            Comparison::Neq => " <> ",
            Comparison::Gt => " > ",
            Comparison::Gte => " >= ",
            Comparison::Lt => " < ",
            Comparison::Lte => " <= ",
        };
        let empty_text = matches!(value, Scalar::Text(text) if text.is_empty());
        if comparison == Comparison::Eq
            && empty_text
            && leaf.kind() == &(LeafKind::Text { empty_is_null: true })
        {
            // Twenty's rule: `eq:""` matches the empty text and null alike.
            self.push("(");
            self.value(leaf);
            self.push(" = '' OR ");
            self.value(leaf);
            return self.push(" IS NULL)");
        }
        self.push("(");
        let index = if matches!(leaf.kind(), LeafKind::Enum { .. })
            && matches!(comparison, Comparison::Eq | Comparison::Neq)
        {
            self.value(leaf);
            let bind = self.scalar_bind(leaf.kind(), value);
            self.bind(bind)
        } else {
            self.sort(leaf);
            self.bind_sort(leaf, value)
        };
        self.push(operator);
        self.param(index);
        self.push(")");
    }

    fn is_in(&mut self, leaf: &Leaf, values: &[Scalar]) {
        if values.is_empty() {
            // False, but unknown for a null, as `IN` over an empty array is in SQL: `not(…)` of it
            // must not select the nulls.
            self.push("(CASE WHEN ");
            self.value(leaf);
            return self.push(" IS NOT NULL THEN 1 = 0 END)");
        }
        let by_value = matches!(leaf.kind(), LeafKind::Enum { .. });
        self.push("(");
        if by_value {
            self.value(leaf)
        } else {
            self.sort(leaf)
        }
        self.push(" IN (");
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            let index = if by_value {
                let bind = self.scalar_bind(leaf.kind(), value);
                self.bind(bind)
            } else {
                self.bind_sort(leaf, value)
            };
            self.param(index);
        }
        self.push("))");
    }

    /// `containsAny`: some string element of the array is one of `values`; null when the value is
    /// not an array.
    fn contains_any(&mut self, leaf: &Leaf, values: &[String]) {
        let path = leaf.path();
        if values.is_empty() {
            // False for an array, unknown for anything else, as the overlap with an empty array is.
            self.push(if self.is_postgres() { "(CASE WHEN jsonb_typeof(" } else { "(CASE WHEN (" });
            self.json(path, false);
            return self.push(") = 'array' THEN 1 = 0 END)");
        }
        if self.is_postgres() {
            self.push("(CASE WHEN jsonb_typeof(");
            self.json(path, false);
            self.push(") = 'array' THEN jsonb_exists_any(");
            self.json(path, false);
            self.push(", ");
            let index = self.bind(Bind::TextArray(values.to_vec()));
            self.param(index);
            self.push(") END)");
        } else {
            self.push("(CASE WHEN ");
            self.json(path, false);
            self.push(" = 'array' THEN EXISTS (SELECT 1 FROM json_each(data, '$");
            for segment in path {
                self.push(".");
                self.push(segment);
            }
            self.push("') AS element WHERE element.type = 'text' AND element.value IN (");
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                let index = self.bind(Bind::Text(value.clone()));
                self.param(index);
            }
            self.push(")) END)");
        }
    }

    /// `like` is case-sensitive and `ilike` not; both match the whole value. SQLite's `LIKE` folds
    /// ASCII case, so a case-sensitive match there is a `GLOB`.
    fn like(&mut self, leaf: &Leaf, pattern: &LikePattern, case_insensitive: bool) {
        self.push("(");
        self.value(leaf);
        let (operator, text) = match (self.dialect, case_insensitive) {
            (Dialect::Postgres, false) => (" LIKE ", like_text(pattern)),
            (Dialect::Postgres, true) => (" ILIKE ", like_text(pattern)),
            (Dialect::Sqlite, false) => (" GLOB ", glob_text(pattern)),
            (Dialect::Sqlite, true) => (" LIKE ", like_text(pattern)),
        };
        self.push(operator);
        let index = self.bind(Bind::Text(text));
        self.param(index);
        if self.dialect == Dialect::Sqlite && case_insensitive {
            self.push(" ESCAPE '\\'");
        }
        self.push(")");
    }

    /// The rows after (or, for a backward page, before) the cursor's in the ordering: for keys
    /// `k1…kn`, `k1 beyond v1 OR (k1 = v1 AND k2 beyond v2) OR …`, with nulls where the
    /// direction puts them.
    fn keyset(&mut self, order: &[SortKey], values: &[Option<Scalar>], backward: bool) {
        let directions: Vec<Direction> =
            order.iter().map(|key| if backward { key.direction.reversed() } else { key.direction }).collect();
        let params: Vec<Option<usize>> = order
            .iter()
            .zip(values)
            .map(|(key, value)| value.as_ref().map(|value| self.bind_sort(&key.leaf, value)))
            .collect();
        let same_way = directions.iter().all(|d| d.is_descending() == directions[0].is_descending());
        let never_null = order.iter().all(|key| !key.leaf.kind().is_nullable());
        if same_way && never_null && params.iter().all(Option::is_some) {
            // A row comparison, which both planners turn into one index range.
            return self.row_comparison(order, &params, directions[0].is_descending());
        }
        let beyond = |d: Direction| if d.is_descending() { " < " } else { " > " };
        if let (Some(first), Some(Some(param))) = (order.first(), params.first()) {
            // A bound on the first key that every row of the result meets, for the index.
            if directions[0].nulls_first() || !first.leaf.kind().is_nullable() {
                self.push("(");
                self.sort(&first.leaf);
                self.push(if directions[0].is_descending() { " <= " } else { " >= " });
                self.param(*param);
                self.push(") AND ");
            }
        }
        self.push("(");
        let mut branches = 0;
        for (i, key) in order.iter().enumerate() {
            let nullable = key.leaf.kind().is_nullable();
            if params[i].is_none() && !directions[i].nulls_first() {
                continue; // nothing comes after a null that sorts last, on this key alone
            }
            if branches > 0 {
                self.push(" OR ");
            }
            branches += 1;
            self.push("(");
            for (earlier, param) in order[..i].iter().zip(&params) {
                self.sort(&earlier.leaf);
                match param {
                    Some(param) => {
                        self.push(" = ");
                        self.param(*param);
                    }
                    None => self.push(" IS NULL"),
                }
                self.push(" AND ");
            }
            match params[i] {
                None => {
                    self.sort(&key.leaf);
                    self.push(" IS NOT NULL");
                }
                Some(param) if nullable && !directions[i].nulls_first() => {
                    self.push("(");
                    self.sort(&key.leaf);
                    self.push(beyond(directions[i]));
                    self.param(param);
                    self.push(" OR ");
                    self.sort(&key.leaf);
                    self.push(" IS NULL)");
                }
                Some(param) => {
                    self.sort(&key.leaf);
                    self.push(beyond(directions[i]));
                    self.param(param);
                }
            }
            self.push(")");
        }
        if branches == 0 {
            self.push("1 = 0");
        }
        self.push(")");
    }

    fn row_comparison(&mut self, order: &[SortKey], params: &[Option<usize>], descending: bool) {
        self.push("((");
        for (i, key) in order.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.sort(&key.leaf);
        }
        self.push(if descending { ") < (" } else { ") > (" });
        for (i, param) in params.iter().flatten().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.param(*param);
        }
        self.push("))");
    }
}

/// A pattern for `LIKE`: `%`, `_` and `\` escaped with `\` (PostgreSQL's default escape and
/// SQLite's `ESCAPE '\'`).
fn like_text(pattern: &LikePattern) -> String {
    let mut text = String::new();
    for piece in &pattern.0 {
        match piece {
            LikePiece::AnyRun => text.push('%'),
            LikePiece::AnyChar => text.push('_'),
            LikePiece::Literal(literal) => {
                for c in literal.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        text.push('\\');
                    }
                    text.push(c);
                }
            }
        }
    }
    text
}

/// A pattern for SQLite's `GLOB`: `*` and `?` are its wildcards, and a one-character class
/// (`[*]`) makes a special character literal.
fn glob_text(pattern: &LikePattern) -> String {
    let mut text = String::new();
    for piece in &pattern.0 {
        match piece {
            LikePiece::AnyRun => text.push('*'),
            LikePiece::AnyChar => text.push('?'),
            LikePiece::Literal(literal) => {
                for c in literal.chars() {
                    match c {
                        '*' | '?' | '[' => {
                            text.push('[');
                            text.push(c);
                            text.push(']');
                        }
                        c => text.push(c),
                    }
                }
            }
        }
    }
    text
}
