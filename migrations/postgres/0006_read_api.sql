-- Indexes and a function for the read API (src/mirror/read/): keyset pages and filters on id,
-- createdAt, updatedAt and deletedAt. Text compares by code point (COLLATE "C"), as in Twenty.

-- A date-time of the data as fixed-width UTC text to the millisecond (text order is time order),
-- NULL when it is none: a day that does not exist or an offset out of range must not fail every
-- read of the object. Immutable, so an index may hold it: the offset is always explicit, so the
-- session's time zone plays no part. Older releases sent microseconds and +00:00 offsets.
CREATE FUNCTION twenty_mirror_instant_slow(value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF value !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN
        RETURN NULL;
    END IF;
    RETURN to_char(date_trunc('milliseconds', value::timestamptz) AT TIME ZONE 'UTC',
                   'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_time_zone_displacement_value THEN
    RETURN NULL;
END
$$;

-- Twenty's own format (2026-09-21T10:15:30.412Z) passes as it is. Inlinable (a SQL expression of
-- immutable parts), so a page pays a regular expression per row, not a function call.
CREATE FUNCTION twenty_mirror_instant(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' THEN value
        ELSE twenty_mirror_instant_slow(value) END
$$;

-- Partial: the read API never returns destroyed rows. id ends each index, as it ends every
-- ordering; NULLS FIRST serves the default direction, AscNullsFirst, read forward.
CREATE INDEX twenty_records_read_id ON twenty_records (object, id COLLATE "C") WHERE destroyed_at IS NULL;
CREATE INDEX twenty_records_read_updated_at ON twenty_records (object, updated_at, id COLLATE "C")
    WHERE destroyed_at IS NULL;
CREATE INDEX twenty_records_read_deleted_at ON twenty_records (object, deleted_at NULLS FIRST, id COLLATE "C")
    WHERE destroyed_at IS NULL;
CREATE INDEX twenty_records_read_created_at
    ON twenty_records (object, twenty_mirror_instant(data ->> 'createdAt') COLLATE "C" NULLS FIRST, id COLLATE "C")
    WHERE destroyed_at IS NULL;
