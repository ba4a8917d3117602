-- Per object: rows by stage and the last delivery, kept as rows are written (by the triggers below,
-- in the writer's own transaction), so that a scrape or a status call reads a handful of rows
-- instead of counting the whole mirror. SQLite has one writer at a time, so a counter row per
-- object costs no concurrency.
CREATE TABLE object_stats (
    object           TEXT    PRIMARY KEY,
    live             INTEGER NOT NULL DEFAULT 0,
    soft_deleted     INTEGER NOT NULL DEFAULT 0,
    destroyed        INTEGER NOT NULL DEFAULT 0,
    last_delivery_at TEXT                          -- the newest received_at of a delivery for it
);

INSERT INTO object_stats (object, live, soft_deleted, destroyed)
SELECT object,
       sum(deleted_at IS NULL AND destroyed_at IS NULL),
       sum(deleted_at IS NOT NULL AND destroyed_at IS NULL),
       sum(destroyed_at IS NOT NULL)
FROM twenty_records GROUP BY object;

INSERT INTO object_stats (object, last_delivery_at)
SELECT object, max(received_at) FROM webhook_events WHERE object IS NOT NULL GROUP BY object
ON CONFLICT (object) DO UPDATE SET last_delivery_at = excluded.last_delivery_at;

CREATE TRIGGER object_stats_record_inserted AFTER INSERT ON twenty_records
BEGIN
    INSERT INTO object_stats (object, live, soft_deleted, destroyed)
    VALUES (new.object,
            new.deleted_at IS NULL AND new.destroyed_at IS NULL,
            new.deleted_at IS NOT NULL AND new.destroyed_at IS NULL,
            new.destroyed_at IS NOT NULL)
    ON CONFLICT (object) DO UPDATE SET live = live + excluded.live,
        soft_deleted = soft_deleted + excluded.soft_deleted, destroyed = destroyed + excluded.destroyed;
END;

-- Only when a row changes stage: most updates (a new version of a live record) leave it alone.
CREATE TRIGGER object_stats_record_moved AFTER UPDATE OF object, deleted_at, destroyed_at ON twenty_records
WHEN old.object IS NOT new.object
  OR (old.deleted_at IS NULL) IS NOT (new.deleted_at IS NULL)
  OR (old.destroyed_at IS NULL) IS NOT (new.destroyed_at IS NULL)
BEGIN
    UPDATE object_stats
    SET live = live - (old.deleted_at IS NULL AND old.destroyed_at IS NULL),
        soft_deleted = soft_deleted - (old.deleted_at IS NOT NULL AND old.destroyed_at IS NULL),
        destroyed = destroyed - (old.destroyed_at IS NOT NULL)
    WHERE object = old.object;
    INSERT INTO object_stats (object, live, soft_deleted, destroyed)
    VALUES (new.object,
            new.deleted_at IS NULL AND new.destroyed_at IS NULL,
            new.deleted_at IS NOT NULL AND new.destroyed_at IS NULL,
            new.destroyed_at IS NOT NULL)
    ON CONFLICT (object) DO UPDATE SET live = live + excluded.live,
        soft_deleted = soft_deleted + excluded.soft_deleted, destroyed = destroyed + excluded.destroyed;
END;

CREATE TRIGGER object_stats_record_deleted AFTER DELETE ON twenty_records
BEGIN
    UPDATE object_stats
    SET live = live - (old.deleted_at IS NULL AND old.destroyed_at IS NULL),
        soft_deleted = soft_deleted - (old.deleted_at IS NOT NULL AND old.destroyed_at IS NULL),
        destroyed = destroyed - (old.destroyed_at IS NOT NULL)
    WHERE object = old.object;
END;

-- Pruning the event log leaves the last delivery where it was.
CREATE TRIGGER object_stats_delivery_logged AFTER INSERT ON webhook_events
WHEN new.object IS NOT NULL
BEGIN
    INSERT INTO object_stats (object, last_delivery_at) VALUES (new.object, new.received_at)
    ON CONFLICT (object) DO UPDATE SET
        last_delivery_at = max(coalesce(last_delivery_at, ''), excluded.last_delivery_at);
END;
