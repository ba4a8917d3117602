-- The mirror: one row per Twenty record, written only through the apply rule (src/mirror/rule.rs).
CREATE TABLE twenty_records (
    object       text        NOT NULL,  -- Twenty's nameSingular, e.g. 'person'
    id           text        NOT NULL,  -- the record's id in Twenty
    data         jsonb       NOT NULL,  -- the full record as Twenty sent it, unknown fields included
    updated_at   timestamptz NOT NULL,  -- the record's updatedAt: its version
    deleted_at   timestamptz,           -- soft-deleted in Twenty; null when live
    destroyed_at timestamptz,           -- hard-deleted in Twenty; null otherwise
    source       text        NOT NULL CHECK (source IN ('webhook', 'reconcile')),
    synced_at    timestamptz NOT NULL DEFAULT now(),  -- when the mirror last wrote the row
    PRIMARY KEY (object, id)
);
CREATE INDEX twenty_records_object_updated_at ON twenty_records (object, updated_at);

-- Every verified delivery, with what it did; pruned after EVENT_RETENTION.
CREATE TABLE webhook_events (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at       timestamptz NOT NULL,
    event_name        text,                 -- null when the body had none
    object            text,
    record_id         text,
    record_updated_at timestamptz,
    outcome           text        NOT NULL
        CHECK (outcome IN ('applied', 'stale', 'duplicate', 'ignored', 'failed')),
    error             text,
    body              text        NOT NULL  -- the raw delivery
);
CREATE INDEX webhook_events_received_at ON webhook_events (received_at);
CREATE INDEX webhook_events_object_record ON webhook_events (object, record_id);
