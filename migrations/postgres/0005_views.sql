-- Typed views (src/mirror/views/): one view per mirrored object, in a schema of its own.
CREATE SCHEMA IF NOT EXISTS twenty;

-- The views the service created. Only these are ever replaced or dropped: a table or view in
-- schema twenty that is not listed here is left alone, and a view that would take its name gets a
-- suffix.
CREATE TABLE twenty_views (
    name        text        PRIMARY KEY,  -- the view's name in schema twenty
    object      text        NOT NULL,     -- the object's nameSingular
    definition  text        NOT NULL,     -- the SELECT it was created with: an unchanged view is left alone
    plan        jsonb       NOT NULL,     -- its columns and types, the fields that are not columns and why
    replaced_at timestamptz NOT NULL DEFAULT now()
);

-- Reading a value of a record as a column's type. Each takes the JSON value (`data -> 'key'`) and
-- gives NULL, never an error, for a value that does not fit: a cast that raised would make the
-- whole view fail for one bad record. None uses an exception handler (a subtransaction per row,
-- and no parallel query): the checks are jsonpath methods run with `silent`, which turns their
-- errors into no result. Each is a single SQL expression that PostgreSQL inlines into the view's
-- query, so a view costs about what the same expressions written by hand cost.

-- A JSON number, or a string holding one, within double precision's range.
CREATE FUNCTION twenty_mirror_double(value jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
    SELECT (jsonb_path_query_first(value, 'strict $.double()', '{}', true))::double precision
$body$;

-- true or false only.
CREATE FUNCTION twenty_mirror_boolean(value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
    SELECT CASE value WHEN 'true'::jsonb THEN true WHEN 'false'::jsonb THEN false END
$body$;

-- An integer JSON number of magnitude below 10^18, or a string of 1 to 18 digits with an optional
-- minus sign (Twenty sends amountMicros either way).
CREATE FUNCTION twenty_mirror_bigint(value jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
    SELECT (jsonb_path_query_first(value,
        'strict $ ? ((@.type() == "number" && @ == @.floor() && @ > -1e18 && @ < 1e18)
                     || (@.type() == "string" && @ like_regex "^-?[0-9]{1,18}$"))',
        '{}', true) #>> '{}')::numeric::bigint
$body$;

-- An ISO 8601 date and time with Z or an offset. The jsonpath datetime() method checks the value
-- and the cast reads what datetime() wrote, which it always can. Twenty's own form
-- (2026-09-21T10:15:30.412Z) is tried first, so it costs one check; datetime() without a template
-- reads ISO forms with an offset but not Z.
CREATE FUNCTION twenty_mirror_timestamptz(value jsonb) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $body$
    SELECT COALESCE(
        (jsonb_path_query_first(value,
            'strict $.datetime("YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"") ? (@.type() == "timestamp without time zone")',
            '{}', true) #>> '{}')::timestamp AT TIME ZONE 'UTC',
        (jsonb_path_query_first(value,
            'strict $.datetime("YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"") ? (@.type() == "timestamp without time zone")',
            '{}', true) #>> '{}')::timestamp AT TIME ZONE 'UTC',
        (jsonb_path_query_first(value,
            'strict $.datetime() ? (@.type() == "timestamp with time zone")',
            '{}', true) #>> '{}')::timestamptz)
$body$;

-- A date, YYYY-MM-DD.
CREATE FUNCTION twenty_mirror_date(value jsonb) RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $body$
    SELECT (jsonb_path_query_first(value,
        'strict $.datetime("YYYY-MM-DD") ? (@.type() == "date")', '{}', true) #>> '{}')::date
$body$;

-- A JSON array, each element as text (a string as itself, anything else as its JSON text).
CREATE FUNCTION twenty_mirror_text_array(value jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $body$
    SELECT CASE WHEN jsonb_typeof(value) = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(value)) END
$body$;

-- Any JSON value but null.
CREATE FUNCTION twenty_mirror_json(value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
    SELECT NULLIF(value, 'null'::jsonb)
$body$;
