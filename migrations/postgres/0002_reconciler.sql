-- The objects discovered through Twenty's metadata API.
CREATE TABLE twenty_objects (
    name_singular  text        PRIMARY KEY,  -- as in twenty_records.object and webhook event names
    name_plural    text        NOT NULL,     -- as in REST paths
    label_singular text        NOT NULL,
    label_plural   text        NOT NULL,
    metadata_id    text        NOT NULL,
    is_custom      boolean     NOT NULL,
    fields         jsonb       NOT NULL,     -- field definitions as the metadata API gave them
    mirrored       boolean     NOT NULL,     -- active, not a system object, allowed by TWENTY_OBJECTS
    discovered_at  timestamptz NOT NULL
);

-- The reconciler's position per object.
CREATE TABLE sync_state (
    object        text        PRIMARY KEY,
    watermark     timestamptz,              -- the newest updatedAt applied; deltas read from here minus the overlap
    last_delta_at timestamptz,              -- when the last complete delta pass ended
    last_full_at  timestamptz,              -- when the last complete full pass ended
    last_run_id   bigint,
    last_counts   jsonb                     -- the counts of the object's last complete pass
);

-- One row per reconciler run.
CREATE TABLE sync_runs (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trigger    text        NOT NULL CHECK (trigger IN ('schedule', 'operator', 'startup')),
    mode       text        NOT NULL CHECK (mode IN ('delta', 'full')),
    objects    jsonb       NOT NULL,        -- array of object names
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,                 -- null while running
    status     text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    error      text,
    fetched    bigint      NOT NULL DEFAULT 0,
    inserted   bigint      NOT NULL DEFAULT 0,
    updated    bigint      NOT NULL DEFAULT 0,
    deleted    bigint      NOT NULL DEFAULT 0,
    destroyed  bigint      NOT NULL DEFAULT 0,
    unchanged  bigint      NOT NULL DEFAULT 0,
    repaired   bigint      NOT NULL DEFAULT 0  -- writes that changed the mirror: what the webhooks missed
);
CREATE INDEX sync_runs_status ON sync_runs (status);
