-- The createdAt index of 0006 made a record whose createdAt is the text 'now' (in any case)
-- impossible to write: strftime reads 'now' as the current time, and SQLite refuses a
-- non-deterministic value in an index ("non-deterministic use of strftime() in an index"), so the
-- delivery or the reconciler's page failed. 'now' is no date-time: it is NULL here, as in the
-- typed views. The read API's statements write this same expression (src/mirror/read/sql.rs).
DROP INDEX twenty_records_read_created_at;
CREATE INDEX twenty_records_read_created_at
    ON twenty_records (object,
        (CASE WHEN lower(json_extract(data, '$.createdAt')) = 'now' THEN NULL
              ELSE strftime('%Y-%m-%dT%H:%M:%fZ', json_extract(data, '$.createdAt')) END),
        id)
    WHERE destroyed_at IS NULL;
