-- The mirror: one row per Twenty record, written only through the apply rule (src/mirror/rule.rs).
-- Timestamps are fixed-width RFC 3339 text in UTC with milliseconds (2026-09-21T10:15:30.412Z), so
-- that text order is time order.
CREATE TABLE twenty_records (
    object       TEXT NOT NULL,  -- Twenty's nameSingular, e.g. 'person'
    id           TEXT NOT NULL,  -- the record's id in Twenty
    data         TEXT NOT NULL,  -- the full record as JSON text, unknown fields included
    updated_at   TEXT NOT NULL,  -- the record's updatedAt: its version
    deleted_at   TEXT,           -- soft-deleted in Twenty; null when live
    destroyed_at TEXT,           -- hard-deleted in Twenty; null otherwise
    source       TEXT NOT NULL CHECK (source IN ('webhook', 'reconcile')),
    synced_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (object, id)
);
-- A rowid table, not WITHOUT ROWID: records run to kilobytes, and SQLite keeps rows that large
-- better out of the key's B-tree.
CREATE INDEX twenty_records_object_updated_at ON twenty_records (object, updated_at);

-- Every verified delivery, with what it did; pruned after EVENT_RETENTION.
CREATE TABLE webhook_events (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at       TEXT NOT NULL,
    event_name        TEXT,          -- null when the body had none
    object            TEXT,
    record_id         TEXT,
    record_updated_at TEXT,
    outcome           TEXT NOT NULL
        CHECK (outcome IN ('applied', 'stale', 'duplicate', 'ignored', 'failed')),
    error             TEXT,
    body              TEXT NOT NULL  -- the raw delivery
);
CREATE INDEX webhook_events_received_at ON webhook_events (received_at);
CREATE INDEX webhook_events_object_record ON webhook_events (object, record_id);
