-- Caller keys: only an HMAC of the key is stored, never the key.
CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    name           TEXT    NOT NULL,
    hash           TEXT    NOT NULL UNIQUE,
    pepper_version INTEGER NOT NULL DEFAULT 1,
    hint           TEXT    NOT NULL,
    allowed_models TEXT    NOT NULL DEFAULT '[]',
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER,
    revoked_at     INTEGER
);

-- One row per request that reached routing. Times are unix milliseconds,
-- durations microseconds.
CREATE TABLE usage_records (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id        TEXT    NOT NULL,
    key_id            TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    provider          TEXT    NOT NULL DEFAULT '',
    upstream_model    TEXT    NOT NULL DEFAULT '',
    stream            INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens     INTEGER NOT NULL DEFAULT 0,
    latency_us        INTEGER NOT NULL DEFAULT 0,
    ttft_us           INTEGER NOT NULL DEFAULT 0,
    status            INTEGER NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    error_code        TEXT    NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL
);
CREATE INDEX usage_records_key_time ON usage_records (key_id, created_at);
CREATE INDEX usage_records_time ON usage_records (created_at);
CREATE UNIQUE INDEX usage_records_request ON usage_records (request_id);
