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
