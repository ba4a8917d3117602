-- Webhook health (design section 9): what an object's last delta pass says of its webhooks, kept
-- with the pass so that every instance and a restart see it. NULL until the first delta pass
-- (`unknown`); `ok`, `lossy` or `silent` after it.
ALTER TABLE sync_state ADD COLUMN webhook_health text;

-- Deliveries refused since the object's last pass, by reason: the signature checks' reasons and
-- `malformed`. `object` is the object the delivery named, read from a body that may not be verified,
-- only when the mirror knows that object; '' otherwise. So the table holds at most (known objects + 1)
-- × reasons rows, whatever a sender puts in its bodies. A pass of the object deletes its rows (and
-- the '' rows: those count since the last pass of any object). Every instance adds its own counts.
CREATE TABLE webhook_refusals (
    object          text        NOT NULL,
    reason          text        NOT NULL,
    refused         bigint      NOT NULL,
    last_refused_at timestamptz NOT NULL,
    PRIMARY KEY (object, reason)
);
