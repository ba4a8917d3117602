-- The read API (GET /rest/{plural}) pages by keyset in Twenty's orderings. Its filters and
-- orderings on id, createdAt, updatedAt and deletedAt use the indexes below; the id column ends each
-- of them, as it ends every ordering. Ids and text compare by code point (COLLATE "C") whatever the
-- database's collation, as Twenty's do.

-- A date-time of a record's data as the fixed-width text 2026-09-21T10:15:30.412Z (UTC, to the
-- millisecond), so that text order is time order; NULL for anything else. Twenty writes every
-- timestamp that way, and the first branch returns those as they are; older releases sent
-- microseconds and +00:00 offsets, which the second converts. Both are immutable (an explicit
-- offset makes the conversion independent of the session's time zone), so an index may hold the
-- result, and this function stays inlinable, costing a regular expression per row.
CREATE FUNCTION twenty_mirror_instant_slow(value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF value !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$' THEN
        RETURN NULL;
    END IF;
    RETURN to_char(date_trunc('milliseconds', value::timestamptz) AT TIME ZONE 'UTC',
                   'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
EXCEPTION
    -- A day that does not exist (2026-02-30), a year 0000, an offset out of range: not a date-time,
    -- and never an error that would fail every read of the object.
    WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_time_zone_displacement_value THEN
        RETURN NULL;
END
$$;

CREATE FUNCTION twenty_mirror_instant(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' THEN value
        ELSE twenty_mirror_instant_slow(value)
    END
$$;

-- Partial: the read API never returns a destroyed record, so tombstones stay out of its indexes,
-- and counting the live records of an object reads the deletedAt index alone.
CREATE INDEX twenty_records_read_id ON twenty_records (object, id COLLATE "C") WHERE destroyed_at IS NULL;
CREATE INDEX twenty_records_read_updated_at ON twenty_records (object, updated_at, id COLLATE "C")
    WHERE destroyed_at IS NULL;
-- NULLS FIRST: the default direction, AscNullsFirst, reads it forward.
CREATE INDEX twenty_records_read_deleted_at ON twenty_records (object, deleted_at NULLS FIRST, id COLLATE "C")
    WHERE destroyed_at IS NULL;
CREATE INDEX twenty_records_read_created_at
    ON twenty_records (object, twenty_mirror_instant(data ->> 'createdAt') COLLATE "C" NULLS FIRST, id COLLATE "C")
    WHERE destroyed_at IS NULL;
