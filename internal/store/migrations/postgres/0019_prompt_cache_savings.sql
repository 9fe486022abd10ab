-- PostgreSQL twin of migrations/sqlite/0019_prompt_cache_savings.sql.
-- Prompt-cache savings (issue 23): what the request's prompt would have
-- cost with its cached and cache-written tokens at the plain input price,
-- minus what it cost (nano-USD, after the account multiplier). Negative
-- when cache writes (priced above input) outweigh the reads. Reports sum
-- it per account, key and model. Not the response cache's savings.
ALTER TABLE usage_records ADD COLUMN prompt_cache_saved_nano BIGINT NOT NULL DEFAULT 0;
