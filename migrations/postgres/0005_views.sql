-- Typed views (src/mirror/views/postgres.rs explains the functions).
CREATE SCHEMA IF NOT EXISTS twenty;

-- The views the service created; only these are ever replaced or dropped.
CREATE TABLE twenty_views (
    name        text        PRIMARY KEY,  -- in schema twenty
    object      text        NOT NULL,     -- nameSingular
    definition  text        NOT NULL,     -- its SELECT
    plan        jsonb       NOT NULL,     -- columns, types, fields left out and why
    replaced_at timestamptz NOT NULL DEFAULT now()
);

-- A value (data -> 'key') as a column's type: NULL, never an error, when it does not fit.
CREATE FUNCTION twenty_mirror_double(value jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
    SELECT (jsonb_path_query_first(value, 'strict $.double()', '{}', true))::double precision
$body$;

CREATE FUNCTION twenty_mirror_boolean(value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
    SELECT CASE value WHEN 'true'::jsonb THEN true WHEN 'false'::jsonb THEN false END
$body$;

CREATE FUNCTION twenty_mirror_bigint(value jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
    SELECT (jsonb_path_query_first(value,
        'strict $ ? ((@.type() == "number" && @ == @.floor() && @ > -1e18 && @ < 1e18)
                     || (@.type() == "string" && @ like_regex "^-?[0-9]{1,18}$"))',
        '{}', true) #>> '{}')::numeric::bigint
$body$;

CREATE FUNCTION twenty_mirror_timestamptz(value jsonb) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $body$
    SELECT COALESCE(
        (jsonb_path_query_first(value, 'strict $.datetime("YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"")', '{}', true)
            #>> '{}')::timestamp AT TIME ZONE 'UTC',
        (jsonb_path_query_first(value, 'strict $.datetime("YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"")', '{}', true)
            #>> '{}')::timestamp AT TIME ZONE 'UTC',
        (jsonb_path_query_first(value, 'strict $.datetime() ? (@.type() == "timestamp with time zone")', '{}', true)
            #>> '{}')::timestamptz)
$body$;

CREATE FUNCTION twenty_mirror_date(value jsonb) RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $body$
    SELECT (jsonb_path_query_first(value, 'strict $.datetime("YYYY-MM-DD")', '{}', true) #>> '{}')::date
$body$;

CREATE FUNCTION twenty_mirror_text_array(value jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $body$
    SELECT CASE WHEN jsonb_typeof(value) = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(value)) END
$body$;

CREATE FUNCTION twenty_mirror_json(value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
    SELECT NULLIF(value, 'null'::jsonb)
$body$;
