-- Keys minted by the token exchange (issue 19), so that their rows can be
-- swept once expired. A table of its own rather than a marker in
-- api_keys.metadata: an admin may set any metadata on a key, so only a
-- row written by the exchange itself says reliably that the exchange
-- made the key. expires_at is the key's expiry when minted (the sweep
-- still checks api_keys.expires_at, so a key whose expiry was moved
-- later is not swept early).
CREATE TABLE exchanged_keys (
    key_id     TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX exchanged_keys_expires ON exchanged_keys (expires_at);

-- Keys the exchange minted before this table existed carry both of its
-- marks: the "exchange:" name and the exchange_issuer metadata.
INSERT INTO exchanged_keys (key_id, expires_at)
SELECT id, expires_at FROM api_keys
 WHERE name LIKE 'exchange:%' AND metadata LIKE '%"exchange_issuer"%' AND expires_at IS NOT NULL AND kind = 'caller';

-- The sweep keeps a key while a refresh token names it (the refresh
-- grant reads the previous key's row).
CREATE INDEX refresh_tokens_key ON refresh_tokens (key_id);
