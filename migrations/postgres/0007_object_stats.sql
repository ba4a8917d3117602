-- Per object: rows by stage and the last delivery, kept as rows are written, so that a scrape or a
-- status call reads a handful of rows instead of counting the whole mirror.
--
-- A counter row per object updated by every writer would serialize concurrent group-commit
-- transactions on that row's lock. Instead, statement-level triggers append one delta row per
-- object and statement to object_stats_deltas (an append takes no lock another writer waits
-- for), and readers fold the deltas into object_stats now and then (src/mirror/postgres/stats.rs).
-- The kept figures are the sum of the two tables.
CREATE TABLE object_stats (
    object           text        PRIMARY KEY,
    live             bigint      NOT NULL DEFAULT 0,
    soft_deleted     bigint      NOT NULL DEFAULT 0,
    destroyed        bigint      NOT NULL DEFAULT 0,
    last_delivery_at timestamptz                     -- the newest received_at of a delivery for it
);

CREATE TABLE object_stats_deltas (
    object           text        NOT NULL,
    live             bigint      NOT NULL DEFAULT 0,
    soft_deleted     bigint      NOT NULL DEFAULT 0,
    destroyed        bigint      NOT NULL DEFAULT 0,
    last_delivery_at timestamptz
);

INSERT INTO object_stats (object, live, soft_deleted, destroyed)
SELECT object,
       count(*) FILTER (WHERE deleted_at IS NULL AND destroyed_at IS NULL),
       count(*) FILTER (WHERE deleted_at IS NOT NULL AND destroyed_at IS NULL),
       count(*) FILTER (WHERE destroyed_at IS NOT NULL)
FROM twenty_records GROUP BY object;

INSERT INTO object_stats (object, last_delivery_at)
SELECT object, max(received_at) FROM webhook_events WHERE object IS NOT NULL GROUP BY object
ON CONFLICT (object) DO UPDATE SET last_delivery_at = EXCLUDED.last_delivery_at;

-- An update: +1 for each new row's stage, -1 for each old row's; a statement that moved no row
-- between stages appends nothing. One function per event, since each sees only its own transition
-- tables.
CREATE FUNCTION object_stats_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO object_stats_deltas (object, live, soft_deleted, destroyed)
    SELECT object, sum(live), sum(soft_deleted), sum(destroyed)
    FROM (
        SELECT object,
               (deleted_at IS NULL AND destroyed_at IS NULL)::int AS live,
               (deleted_at IS NOT NULL AND destroyed_at IS NULL)::int AS soft_deleted,
               (destroyed_at IS NOT NULL)::int AS destroyed
        FROM new_rows
        UNION ALL
        SELECT object,
               -(deleted_at IS NULL AND destroyed_at IS NULL)::int,
               -(deleted_at IS NOT NULL AND destroyed_at IS NULL)::int,
               -(destroyed_at IS NOT NULL)::int
        FROM old_rows
    ) moved
    GROUP BY object
    HAVING sum(live) <> 0 OR sum(soft_deleted) <> 0 OR sum(destroyed) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION object_stats_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO object_stats_deltas (object, live, soft_deleted, destroyed)
    SELECT object,
           count(*) FILTER (WHERE deleted_at IS NULL AND destroyed_at IS NULL),
           count(*) FILTER (WHERE deleted_at IS NOT NULL AND destroyed_at IS NULL),
           count(*) FILTER (WHERE destroyed_at IS NOT NULL)
    FROM new_rows GROUP BY object;
    RETURN NULL;
END $$;

CREATE FUNCTION object_stats_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO object_stats_deltas (object, live, soft_deleted, destroyed)
    SELECT object,
           -count(*) FILTER (WHERE deleted_at IS NULL AND destroyed_at IS NULL),
           -count(*) FILTER (WHERE deleted_at IS NOT NULL AND destroyed_at IS NULL),
           -count(*) FILTER (WHERE destroyed_at IS NOT NULL)
    FROM old_rows GROUP BY object;
    RETURN NULL;
END $$;

CREATE TRIGGER object_stats_records_inserted AFTER INSERT ON twenty_records
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION object_stats_count_inserted();
CREATE TRIGGER object_stats_records_updated AFTER UPDATE ON twenty_records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION object_stats_count_updated();
CREATE TRIGGER object_stats_records_deleted AFTER DELETE ON twenty_records
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION object_stats_count_deleted();

CREATE FUNCTION object_stats_note_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO object_stats_deltas (object, last_delivery_at)
    SELECT object, max(received_at) FROM new_rows WHERE object IS NOT NULL GROUP BY object;
    RETURN NULL;
END $$;

-- Pruning the event log leaves the last delivery where it was.
CREATE TRIGGER object_stats_deliveries_logged AFTER INSERT ON webhook_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION object_stats_note_deliveries();
