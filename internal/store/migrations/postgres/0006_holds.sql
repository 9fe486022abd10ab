-- Credit holds: credits reserved for requests in flight, shared by every
-- replica. accounts.reserved_nano caches the sum of the account's holds
-- and moves in the same transaction as every hold row; a hold is placed
-- only while balance_nano - reserved_nano covers it. id is the request id,
-- so the transaction storing the request's usage releases it. Times are
-- unix milliseconds; expired holds (a replica died) are swept.
ALTER TABLE accounts ADD COLUMN reserved_nano BIGINT NOT NULL DEFAULT 0;

CREATE TABLE credit_holds (
    id          TEXT COLLATE "C" PRIMARY KEY,
    account_id  TEXT COLLATE "C" NOT NULL,
    amount_nano BIGINT NOT NULL CHECK (amount_nano >= 0),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX credit_holds_expires ON credit_holds (expires_at);
