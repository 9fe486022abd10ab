-- Trusted issuers added through the admin API or the CLI (issue 19);
-- those in the config file are not stored. definition is the issuer as
-- validated JSON (config.IssuerDoc); issuer repeats its iss so that two
-- stored issuers cannot claim the same one. Times are Unix milliseconds;
-- created_by and updated_by name the admin key ("admin:ID") or "cli".
CREATE TABLE trusted_issuers (
    id         TEXT    PRIMARY KEY,
    issuer     TEXT    NOT NULL UNIQUE,
    definition TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL,
    updated_by TEXT    NOT NULL DEFAULT ''
);
