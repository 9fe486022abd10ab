-- Accounts own keys; every existing key joins the default account.
CREATE TABLE accounts (
    id         TEXT PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    status     TEXT    NOT NULL DEFAULT 'active',
    metadata   TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL
);
INSERT INTO accounts (id, name, created_at) VALUES ('acct_default', 'default', CAST(strftime('%s','now') AS INTEGER) * 1000);

-- The whole key lifecycle: kind (caller or admin), scopes, network and rate
-- limits, suspension and rotation lineage.
ALTER TABLE api_keys ADD COLUMN account_id        TEXT    NOT NULL DEFAULT 'acct_default';
ALTER TABLE api_keys ADD COLUMN kind              TEXT    NOT NULL DEFAULT 'caller';
ALTER TABLE api_keys ADD COLUMN allowed_endpoints TEXT    NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN allowed_cidrs     TEXT    NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN rpm               INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN tpm               INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN max_concurrent    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN metadata          TEXT    NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD COLUMN suspended_at      INTEGER;
ALTER TABLE api_keys ADD COLUMN suspend_reason    TEXT    NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN rotated_from      TEXT    NOT NULL DEFAULT '';
CREATE INDEX api_keys_account ON api_keys (account_id, created_at);

ALTER TABLE usage_records ADD COLUMN account_id TEXT NOT NULL DEFAULT '';
CREATE INDEX usage_records_account_time ON usage_records (account_id, created_at);
