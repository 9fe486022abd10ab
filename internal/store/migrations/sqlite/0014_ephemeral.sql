-- Ephemeral child keys (issue 19). A child is an ordinary api_keys row
-- (hashed, with its expires_at) plus this row, which names its parent and
-- its caps. A separate table, not columns on api_keys, so that the key
-- row's shape (and every query that reads it) stays as it was.
--   spend_cap     nano-USD the child may spend (0: no cap of its own)
--   max_requests  model calls the child may make (0: no cap)
--   requests      model calls admitted so far
--   spent         nano-USD settled so far
--   held          nano-USD reserved by requests in flight
CREATE TABLE ephemeral_keys (
    key_id       TEXT    PRIMARY KEY,
    parent_id    TEXT    NOT NULL,
    spend_cap    INTEGER NOT NULL DEFAULT 0,
    max_requests INTEGER NOT NULL DEFAULT 0,
    requests     INTEGER NOT NULL DEFAULT 0,
    spent        INTEGER NOT NULL DEFAULT 0,
    held         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ephemeral_keys_parent ON ephemeral_keys (parent_id);

-- Browser origins an operator allowed for an account (CORS on the model
-- API): a JSON array of "scheme://host[:port]".
CREATE TABLE account_cors (
    account_id TEXT    PRIMARY KEY,
    origins    TEXT    NOT NULL DEFAULT '[]',
    updated_at INTEGER NOT NULL
);
