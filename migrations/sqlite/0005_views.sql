-- Typed views (src/mirror/views/): the views the service created. Only these are ever replaced or
-- dropped: a table or view of the database that is not listed here is left alone, and a view that
-- would take its name gets a suffix.
CREATE TABLE twenty_views (
    name        TEXT PRIMARY KEY,  -- the view's name in the main database
    object      TEXT NOT NULL,     -- the object's nameSingular
    definition  TEXT NOT NULL,     -- the SELECT it was created with: an unchanged view is left alone
    plan        TEXT NOT NULL,     -- its columns and types, the fields that are not columns and why (JSON)
    replaced_at TEXT NOT NULL
);
