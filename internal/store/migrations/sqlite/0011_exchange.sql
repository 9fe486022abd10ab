-- Token exchange (issue 19): the jti of every identity token exchanged,
-- kept until the token's own expiry, so that one token is exchanged at
-- most once (a replay finds its row). The primary key is the replay
-- check; expires_at (unix milliseconds) is indexed for the sweep.
CREATE TABLE exchange_jtis (
    issuer     TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX exchange_jtis_expires ON exchange_jtis (expires_at);

-- Refresh tokens, used once. Only the SHA-256 of a token is kept (the
-- token is 256 random bits, so no pepper is needed to make the hash
-- useless to a reader of the database). A family is every refresh token
-- and access key descended from one exchange; it ends at expires_at
-- whatever is refreshed. spent_at is set by the one refresh that wins;
-- presenting a spent token revokes the family (revoked_at on every row,
-- and the keys named by key_id).
CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    family     TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    account_id TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    rule       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family  ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
