-- The vault's keyring: the data keys, one per term, encrypted under the
-- master key (which is never stored here). One row; generation is bumped on
-- every save so concurrent rotations compare-and-swap instead of clobbering.
CREATE TABLE vault_keyring (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    blob       BLOB    NOT NULL,
    generation INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Upstream provider keys, stored only as AES-256-GCM ciphertext bound to
-- the row id (term | version | nonce | sealed). term repeats the
-- ciphertext's key term so re-encryption can find what is left to do.
-- hint is a masked display form (at most the first 3 and last 4 chars).
CREATE TABLE provider_keys (
    id              TEXT    PRIMARY KEY,
    provider        TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    ciphertext      BLOB    NOT NULL,
    term            INTEGER NOT NULL,
    hint            TEXT    NOT NULL,
    weight          INTEGER NOT NULL DEFAULT 1 CHECK (weight > 0),
    status          TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (provider, name)
);
CREATE INDEX provider_keys_provider ON provider_keys (provider, status);
CREATE INDEX provider_keys_term ON provider_keys (term);
