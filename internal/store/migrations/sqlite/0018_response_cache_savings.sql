-- The response cache's savings (issue 20): what a request answered from
-- the response cache would have cost at full price, minus what it was
-- billed (cache.price_fraction), in nano-USD; 0 for every other request.
-- Reports sum it per account and model as "money saved". Named for the
-- *response* cache: the provider's prompt cache has its own column.
ALTER TABLE usage_records ADD COLUMN response_cache_saved_nano INTEGER NOT NULL DEFAULT 0;
