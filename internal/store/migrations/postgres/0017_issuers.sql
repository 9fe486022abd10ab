-- PostgreSQL twin of migrations/sqlite/0017_issuers.sql.
CREATE TABLE trusted_issuers (
    id         TEXT COLLATE "C" PRIMARY KEY,
    issuer     TEXT COLLATE "C" NOT NULL UNIQUE,
    definition TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL,
    updated_by TEXT   NOT NULL DEFAULT ''
);
