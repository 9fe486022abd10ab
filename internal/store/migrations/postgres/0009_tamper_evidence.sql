-- Tamper evidence against someone who can write the database. Rows are
-- authenticated with HMAC-SHA256 keys derived from the vault's data keys,
-- which are never in the database in the clear (the keyring is sealed
-- under the master key). key_term is the vault term of the key; 0 marks a
-- row written before this version, which keeps its old form.

-- audit_log: a row with key_term > 0 has hash = HMAC over the same fields
-- as before plus key_term; the first such row is where the chain became
-- keyed, and its MAC covers the hash of the last plain SHA-256 row.
ALTER TABLE audit_log ADD COLUMN key_term BIGINT NOT NULL DEFAULT 0;

-- ledger_entries: mac = HMAC over the entry's fields and the MAC of the
-- account's previous keyed entry (one chain per account, so concurrent
-- accounts never wait on each other).
ALTER TABLE ledger_entries ADD COLUMN key_term BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_entries ADD COLUMN mac      TEXT COLLATE "C" NOT NULL DEFAULT '';

-- accounts: the head of the account's chain, written with every balance
-- change: ledger_last is the MAC of its newest entry (or the digest of the
-- entries written before the chain was keyed), ledger_head an HMAC over
-- the account id, balance_nano and ledger_last. A forged entry or balance
-- no longer matches it.
ALTER TABLE accounts ADD COLUMN ledger_key_term BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN ledger_last     TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE accounts ADD COLUMN ledger_head     TEXT COLLATE "C" NOT NULL DEFAULT '';
