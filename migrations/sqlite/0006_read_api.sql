-- The read API (GET /rest/{plural}) pages by keyset in Twenty's orderings. Its filters and
-- orderings on id (the primary key), createdAt, updatedAt and deletedAt use these indexes; the id
-- column ends each of them, as it ends every ordering. SQLite's default collation, BINARY, orders
-- text by code point, as Twenty does.
-- Partial: the read API never returns a destroyed record, so tombstones stay out of its indexes,
-- and counting the live records of an object reads the deletedAt index alone.
CREATE INDEX twenty_records_read_updated_at ON twenty_records (object, updated_at, id)
    WHERE destroyed_at IS NULL;
-- destroyed_at, always null here, is a column too: SQLite counts from an index alone only when it
-- holds every column the statement names.
CREATE INDEX twenty_records_read_deleted_at ON twenty_records (object, deleted_at, id, destroyed_at)
    WHERE destroyed_at IS NULL;
-- The expression the read API's statements write for createdAt (src/mirror/read/sql.rs): a
-- record's date-time as fixed-width UTC text to the millisecond, whatever offset it was sent with.
CREATE INDEX twenty_records_read_created_at
    ON twenty_records (object, strftime('%Y-%m-%dT%H:%M:%fZ', json_extract(data, '$.createdAt')), id)
    WHERE destroyed_at IS NULL;
