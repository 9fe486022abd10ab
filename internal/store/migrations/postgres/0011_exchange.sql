-- Token exchange (issue 19): the jti of every identity token exchanged,
-- kept until the token's own expiry, so that one token is exchanged at
-- most once (a replay finds its row). The primary key is the replay
-- check; expires_at (unix milliseconds) is indexed for the sweep.
CREATE TABLE exchange_jtis (
    issuer     TEXT COLLATE "C" NOT NULL,
    jti        TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL,
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
    hash       TEXT COLLATE "C" PRIMARY KEY,
    family     TEXT COLLATE "C" NOT NULL,
    key_id     TEXT COLLATE "C" NOT NULL,
    account_id TEXT COLLATE "C" NOT NULL,
    issuer     TEXT COLLATE "C" NOT NULL,
    rule       TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_family  ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
