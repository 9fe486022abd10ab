-- The response cache (issue 20): a request answered from the cache is
-- recorded like any other, with the tokens of the answer it replayed,
-- and marked here (1) so that the request log and reports tell hits
-- from upstream calls. Its cost is the configured fraction of the price.
ALTER TABLE usage_records ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;
