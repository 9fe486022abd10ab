-- PostgreSQL twin of migrations/sqlite/0014_ephemeral.sql.
CREATE TABLE ephemeral_keys (
    key_id       TEXT COLLATE "C" PRIMARY KEY,
    parent_id    TEXT COLLATE "C" NOT NULL,
    spend_cap    BIGINT NOT NULL DEFAULT 0,
    max_requests BIGINT NOT NULL DEFAULT 0,
    requests     BIGINT NOT NULL DEFAULT 0,
    spent        BIGINT NOT NULL DEFAULT 0,
    held         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX ephemeral_keys_parent ON ephemeral_keys (parent_id);

CREATE TABLE account_cors (
    account_id TEXT COLLATE "C" PRIMARY KEY,
    origins    TEXT   NOT NULL DEFAULT '[]',
    updated_at BIGINT NOT NULL
);
