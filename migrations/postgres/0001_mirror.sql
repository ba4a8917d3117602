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

-- The apply rule (src/mirror/rule.rs, `supersedes`): whether an incoming version of a row
-- overwrites the stored one. The guarded upsert calls it twice: to leave rows that would not change
-- untouched (ON CONFLICT locks the rows it considers), and as the conflict guard itself, which is
-- what keeps concurrent writers correct.
CREATE FUNCTION twenty_mirror_supersedes(
    in_updated_at timestamptz, in_deleted_at timestamptz, in_destroyed_at timestamptz,
    in_source text, in_data jsonb,
    st_updated_at timestamptz, st_deleted_at timestamptz, st_destroyed_at timestamptz,
    st_source text, st_data jsonb
) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        -- A tombstone the reconciler inferred yields to a read that returns the record.
        WHEN st_destroyed_at IS NOT NULL AND st_source = 'reconcile'
             AND in_source = 'reconcile' AND in_destroyed_at IS NULL
            THEN in_updated_at >= st_updated_at
        -- A newer version wins, an older one never does.
        WHEN in_updated_at <> st_updated_at
            THEN in_updated_at > st_updated_at
        -- At the same version, the later stage wins: destroyed > soft-deleted > live.
        WHEN (CASE WHEN in_destroyed_at IS NOT NULL THEN 2 WHEN in_deleted_at IS NOT NULL THEN 1 ELSE 0 END)
          <> (CASE WHEN st_destroyed_at IS NOT NULL THEN 2 WHEN st_deleted_at IS NOT NULL THEN 1 ELSE 0 END)
            THEN (CASE WHEN in_destroyed_at IS NOT NULL THEN 2 WHEN in_deleted_at IS NOT NULL THEN 1 ELSE 0 END)
               > (CASE WHEN st_destroyed_at IS NOT NULL THEN 2 WHEN st_deleted_at IS NOT NULL THEN 1 ELSE 0 END)
        -- At the same stage: a reconciler read whose data differs is the truth; a destroyed event
        -- makes an inferred tombstone final.
        ELSE (in_source = 'reconcile' AND in_data->>'updatedAt' IS NOT NULL AND in_data <> st_data)
          OR (st_destroyed_at IS NOT NULL AND st_source = 'reconcile' AND in_source = 'webhook')
    END
$$;
