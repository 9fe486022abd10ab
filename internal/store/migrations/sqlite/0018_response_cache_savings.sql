-- The response cache's savings (issue 20): what a request answered from
-- the response cache would have cost at full price, minus what it was
-- billed (cache.price_fraction), in nano-USD; 0 for every other request.
-- Reports sum it per account and model as "money saved". Named for the
-- *response* cache: the provider's prompt cache has its own column.
ALTER TABLE usage_records ADD COLUMN response_cache_saved_nano INTEGER NOT NULL DEFAULT 0;

-- Per-model response cache policies set through the admin API
-- (PUT /admin/v1/cache/models/{model}): each row replaces the model's
-- `cache:` config on every replica until it is deleted. ttl_ms 0 and
-- max_entry_bytes 0 mean the defaults.
CREATE TABLE response_cache_models (
    model           TEXT    PRIMARY KEY,
    enabled         INTEGER NOT NULL,
    ttl_ms          INTEGER NOT NULL DEFAULT 0,
    scope           TEXT    NOT NULL DEFAULT 'account',
    sampled         INTEGER NOT NULL DEFAULT 0,
    max_entry_bytes INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    updated_by      TEXT    NOT NULL DEFAULT ''
);
