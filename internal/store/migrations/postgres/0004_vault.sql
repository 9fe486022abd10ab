-- The vault's keyring: the data keys, one per term, encrypted under the
-- master key (which is never stored here). One row; generation is bumped on
-- every save so concurrent rotations compare-and-swap instead of clobbering.
CREATE TABLE vault_keyring (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    blob       BYTEA  NOT NULL,
    generation BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Upstream provider keys, stored only as AES-256-GCM ciphertext bound to
-- the row id (term | version | nonce | sealed). term repeats the
-- ciphertext's key term so re-encryption can find what is left to do.
-- hint is a masked display form (at most the first 3 and last 4 chars).
CREATE TABLE provider_keys (
    id              TEXT COLLATE "C" PRIMARY KEY,
    provider        TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL,
    ciphertext      BYTEA  NOT NULL,
    term            BIGINT NOT NULL,
    hint            TEXT COLLATE "C" NOT NULL,
    weight          BIGINT NOT NULL DEFAULT 1 CHECK (weight > 0),
    status          TEXT COLLATE "C" NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    disabled_reason TEXT COLLATE "C" NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (provider, name)
);
CREATE INDEX provider_keys_provider ON provider_keys (provider, status);
CREATE INDEX provider_keys_term ON provider_keys (term);
