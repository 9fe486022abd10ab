-- Accounts own keys; every existing key joins the default account.
CREATE TABLE accounts (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL UNIQUE,
    status     TEXT COLLATE "C" NOT NULL DEFAULT 'active',
    metadata   TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
-- created_at in unix ms, whole seconds as SQLite's strftime('%s') gives.
INSERT INTO accounts (id, name, created_at) VALUES ('acct_default', 'default', CAST(FLOOR(EXTRACT(EPOCH FROM now())) AS BIGINT) * 1000);

-- The whole key lifecycle: kind (caller or admin), scopes, network and rate
-- limits, suspension and rotation lineage.
ALTER TABLE api_keys ADD COLUMN account_id        TEXT COLLATE "C" NOT NULL DEFAULT 'acct_default';
ALTER TABLE api_keys ADD COLUMN kind              TEXT COLLATE "C" NOT NULL DEFAULT 'caller';
ALTER TABLE api_keys ADD COLUMN allowed_endpoints TEXT COLLATE "C" NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN allowed_cidrs     TEXT COLLATE "C" NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN rpm               BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN tpm               BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN max_concurrent    BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN metadata          TEXT COLLATE "C" NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD COLUMN suspended_at      BIGINT;
ALTER TABLE api_keys ADD COLUMN suspend_reason    TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN rotated_from      TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX api_keys_account ON api_keys (account_id, created_at);

ALTER TABLE usage_records ADD COLUMN account_id TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX usage_records_account_time ON usage_records (account_id, created_at);
