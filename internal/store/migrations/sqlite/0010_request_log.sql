-- The request log (issue 18). usage_records already is one row per
-- request; it gains what the log shows beside the usage:
--   deployment  the deployment ("provider/model") that served, or the
--               last one tried when none did ('' when routing never ran)
--   endpoint    the ingress: chat, responses, messages, completions,
--               embeddings
--   trace_id    the W3C trace id (32 hex) of the request, '' when none
ALTER TABLE usage_records ADD COLUMN deployment TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_records ADD COLUMN endpoint   TEXT NOT NULL DEFAULT '';
ALTER TABLE usage_records ADD COLUMN trace_id   TEXT NOT NULL DEFAULT '';

-- The log lists newest first by (created_at, id), the keyset its cursor
-- carries, optionally for one account or one key. The time, account and
-- key indexes gain id as their last column so that such a page is one
-- range scan in the listing's order, with no sort; they replace the
-- indexes without it (reports range over created_at, which the new ones
-- serve as well), so the insert path keeps three indexes, not six.
CREATE INDEX usage_records_time_id         ON usage_records (created_at, id);
CREATE INDEX usage_records_account_time_id ON usage_records (account_id, created_at, id);
CREATE INDEX usage_records_key_time_id     ON usage_records (key_id, created_at, id);
DROP INDEX usage_records_time;
DROP INDEX usage_records_account_time;
DROP INDEX usage_records_key_time;

-- Capture of request and response bodies, per account, off by default.
-- A row here is an operator's setting; an account without one captures
-- nothing. retention_ms is how long a capture is kept, max_bytes the most
-- kept of each body.
CREATE TABLE capture_settings (
    account_id   TEXT    PRIMARY KEY,
    enabled      INTEGER NOT NULL DEFAULT 0,
    retention_ms INTEGER NOT NULL,
    max_bytes    INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- One capture per request of an account with capture on: the request
-- body as received and the answer as sent (a stream's SSE text), both
-- passed through the redactor (no provider key, no key shape) and cut at
-- the account's max_bytes (truncated = 1). Never a header. Rows expire at
-- expires_at (unix milliseconds); readers treat a row past it as gone,
-- and a sweep deletes it.
CREATE TABLE request_captures (
    request_id    TEXT    PRIMARY KEY,
    account_id    TEXT    NOT NULL,
    request_body  TEXT    NOT NULL,
    response_body TEXT    NOT NULL,
    truncated     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX request_captures_expires ON request_captures (expires_at);
