-- Stored Responses API answers: GET /v1/responses/{id}, its input items,
-- DELETE, and previous_response_id, which rebuilds a conversation by
-- walking previous_id from a turn to its ancestors. Every read is scoped
-- to account_id and sees only rows whose expires_at (the retention end)
-- is still ahead of the database's clock; a sweep deletes the rest.
-- The payloads are JSON text: input_items and output_items are arrays,
-- response_body the whole response object. Times are unix milliseconds.
--
-- Reads go by primary key (the account check is a filter on that one
-- row), and the chain walks from a turn to its parent, also by primary
-- key, so no other lookup index is needed; expires_at is indexed for the
-- sweep.
CREATE TABLE responses (
    id            TEXT COLLATE "C" PRIMARY KEY,
    account_id    TEXT COLLATE "C" NOT NULL,
    key_id        TEXT COLLATE "C" NOT NULL DEFAULT '',
    previous_id   TEXT COLLATE "C" NOT NULL DEFAULT '',
    model         TEXT COLLATE "C" NOT NULL DEFAULT '',
    status        TEXT COLLATE "C" NOT NULL DEFAULT '',
    input_items   TEXT NOT NULL,
    output_items  TEXT NOT NULL,
    response_body TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX responses_expires ON responses (expires_at);
