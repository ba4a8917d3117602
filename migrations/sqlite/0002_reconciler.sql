-- The objects discovered through Twenty's metadata API.
CREATE TABLE twenty_objects (
    name_singular  TEXT    PRIMARY KEY,  -- as in twenty_records.object and webhook event names
    name_plural    TEXT    NOT NULL,     -- as in REST paths
    label_singular TEXT    NOT NULL,
    label_plural   TEXT    NOT NULL,
    metadata_id    TEXT    NOT NULL,
    is_custom      INTEGER NOT NULL,     -- boolean
    fields         TEXT    NOT NULL,     -- field definitions as the metadata API gave them (JSON)
    mirrored       INTEGER NOT NULL,     -- boolean: active, not a system object, allowed by TWENTY_OBJECTS
    discovered_at  TEXT    NOT NULL
);

-- The reconciler's position per object.
CREATE TABLE sync_state (
    object        TEXT PRIMARY KEY,
    watermark     TEXT,     -- the newest updatedAt applied; deltas read from here minus the overlap
    last_delta_at TEXT,     -- when the last complete delta pass ended
    last_full_at  TEXT,     -- when the last complete full pass ended
    last_run_id   INTEGER,
    last_counts   TEXT      -- the counts of the object's last complete pass (JSON)
);

-- One row per reconciler run.
CREATE TABLE sync_runs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger    TEXT    NOT NULL CHECK (trigger IN ('schedule', 'operator', 'startup')),
    mode       TEXT    NOT NULL CHECK (mode IN ('delta', 'full')),
    objects    TEXT    NOT NULL,  -- JSON array of object names
    started_at TEXT    NOT NULL,
    ended_at   TEXT,              -- null while running
    status     TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    error      TEXT,
    fetched    INTEGER NOT NULL DEFAULT 0,
    inserted   INTEGER NOT NULL DEFAULT 0,
    updated    INTEGER NOT NULL DEFAULT 0,
    deleted    INTEGER NOT NULL DEFAULT 0,
    destroyed  INTEGER NOT NULL DEFAULT 0,
    unchanged  INTEGER NOT NULL DEFAULT 0,
    repaired   INTEGER NOT NULL DEFAULT 0  -- writes that changed the mirror: what the webhooks missed
);
CREATE INDEX sync_runs_status ON sync_runs (status);

-- One reconciler at a time: a `reconcile` command and the server's scheduler take this lease
-- (PostgreSQL uses a session advisory lock instead).
CREATE TABLE sync_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
