-- Prompt tokens written to the provider's prompt cache (Anthropic's
-- cache_creation_input_tokens): part of prompt_tokens, priced at their own
-- rate, so a usage record says how many there were.
ALTER TABLE usage_records ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
