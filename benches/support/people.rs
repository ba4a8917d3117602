//! The person records that the view and read benchmarks read: built by the database itself, the
//! same on both backends, about 1.1 to 2.2 KB of JSON each (the `intro` text grows with `i`); every
//! 33rd is soft-deleted. Record `i` has id `{i:08}-0000-4000-8000-{i:012}`, `createdAt` 2026-01-01
//! plus 7 i seconds, `updatedAt` plus 8 i seconds. `{records}` is the count.

/// The statement for SQLite.
pub const SQLITE_PEOPLE: &str = r#"
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {records})
INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, destroyed_at, source)
SELECT 'person', id, json_object(
    'id', id,
    'name', json_object('firstName', 'First' || (i % 100), 'lastName', 'Last' || (i % 300)),
    'emails', json_object('primaryEmail', 'p' || i || '@example.com', 'additionalEmails', json('[]')),
    'phones', json_object('primaryPhoneNumber', printf('6%08d', (i * 7919) % 100000000),
        'primaryPhoneCountryCode', 'FR', 'primaryPhoneCallingCode', '+33', 'additionalPhones', json('[]')),
    'linkedinLink', json_object('primaryLinkUrl', 'https://www.linkedin.com/in/p' || i, 'primaryLinkLabel', '',
        'secondaryLinks', json('[]')),
    'xLink', json_object('primaryLinkUrl', '', 'primaryLinkLabel', '', 'secondaryLinks', json('[]')),
    'jobTitle', CASE i % 4 WHEN 0 THEN 'CEO' WHEN 1 THEN 'CTO' WHEN 2 THEN 'Engineer' ELSE 'Sales' END,
    'city', CASE i % 12 WHEN 0 THEN 'Paris' WHEN 1 THEN 'Lyon' WHEN 2 THEN 'Berlin' WHEN 3 THEN 'London'
        WHEN 4 THEN 'Madrid' WHEN 5 THEN 'Milano' WHEN 6 THEN 'Amsterdam' WHEN 7 THEN 'New York'
        WHEN 8 THEN 'San Francisco' WHEN 9 THEN 'Montréal' WHEN 10 THEN 'Lisboa' ELSE 'Warszawa' END,
    'avatarUrl', '',
    'position', i,
    'companyId', printf('%08d-0000-4000-8000-%012d', i % 500, i % 500),
    'createdBy', json_object('source', 'MANUAL', 'workspaceMemberId', printf('%08d-0000-4000-8000-000000000000', i % 12),
        'name', 'Member', 'context', json('{}')),
    'createdAt', strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i * 7, 'unixepoch'),
    'updatedAt', updated_at,
    'deletedAt', deleted_at,
    'intro', replace(printf('%.*c', 10 + i % 25, '#'), '#', 'met at the conference interested in pricing ')
), updated_at, deleted_at, NULL, 'reconcile'
FROM (SELECT i, printf('%08d-0000-4000-8000-%012d', i, i) AS id,
             strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i * 8, 'unixepoch') AS updated_at,
             CASE WHEN i % 33 = 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i * 8, 'unixepoch') END AS deleted_at
      FROM n)
"#;

/// The statement for PostgreSQL.
pub const POSTGRES_PEOPLE: &str = r#"
INSERT INTO twenty_records (object, id, data, updated_at, deleted_at, destroyed_at, source)
SELECT 'person', id, jsonb_build_object(
    'id', id,
    'name', jsonb_build_object('firstName', 'First' || (i % 100), 'lastName', 'Last' || (i % 300)),
    'emails', jsonb_build_object('primaryEmail', 'p' || i || '@example.com', 'additionalEmails', '[]'::jsonb),
    'phones', jsonb_build_object('primaryPhoneNumber', '6' || lpad(((i * 7919) % 100000000)::text, 8, '0'),
        'primaryPhoneCountryCode', 'FR', 'primaryPhoneCallingCode', '+33', 'additionalPhones', '[]'::jsonb),
    'linkedinLink', jsonb_build_object('primaryLinkUrl', 'https://www.linkedin.com/in/p' || i,
        'primaryLinkLabel', '', 'secondaryLinks', '[]'::jsonb),
    'xLink', jsonb_build_object('primaryLinkUrl', '', 'primaryLinkLabel', '', 'secondaryLinks', '[]'::jsonb),
    'jobTitle', (ARRAY['CEO', 'CTO', 'Engineer', 'Sales'])[1 + i % 4],
    'city', (ARRAY['Paris', 'Lyon', 'Berlin', 'London', 'Madrid', 'Milano', 'Amsterdam', 'New York',
        'San Francisco', 'Montréal', 'Lisboa', 'Warszawa'])[1 + i % 12],
    'avatarUrl', '',
    'position', i,
    'companyId', lpad((i % 500)::text, 8, '0') || '-0000-4000-8000-' || lpad((i % 500)::text, 12, '0'),
    'createdBy', jsonb_build_object('source', 'MANUAL',
        'workspaceMemberId', lpad((i % 12)::text, 8, '0') || '-0000-4000-8000-000000000000',
        'name', 'Member', 'context', '{}'::jsonb),
    'createdAt', to_char(to_timestamp(1767225600 + i * 7) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'updatedAt', to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'deletedAt', to_char(deleted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'intro', repeat('met at the conference interested in pricing ', 10 + (i % 25)::int)
), updated_at, deleted_at, NULL, 'reconcile'
FROM (SELECT i, lpad(i::text, 8, '0') || '-0000-4000-8000-' || lpad(i::text, 12, '0') AS id,
             to_timestamp(1767225600 + i * 8) AS updated_at,
             CASE WHEN i % 33 = 0 THEN to_timestamp(1767225600 + i * 8) END AS deleted_at
      FROM generate_series(1::bigint, {records}) AS i) AS n
"#;
