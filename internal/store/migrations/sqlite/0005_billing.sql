-- Credits. Money is integer nano-USD (1e-9 USD). accounts.balance_nano is
-- a cache of SUM(ledger_entries.amount_nano) for the account, updated in
-- the same transaction as every entry (xroute credits verify recomputes it).
-- multiplier_bp scales the account's prices in basis points (10000 = 1x).
ALTER TABLE accounts ADD COLUMN balance_nano  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN multiplier_bp INTEGER NOT NULL DEFAULT 10000 CHECK (multiplier_bp > 0);

-- Append-only ledger: one row per balance change, amount signed (credits
-- positive, debits negative). idempotency_key is unique per account: a
-- replayed top-up finds its original row; a usage debit's key is
-- 'usage:' || request_id, so a retried usage batch never debits twice.
-- key_id is the caller key of a usage debit (budgets per key).
-- Times are unix milliseconds.
CREATE TABLE ledger_entries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id      TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('top_up', 'usage', 'refund', 'adjustment', 'expiry')),
    amount_nano     INTEGER NOT NULL,
    reference       TEXT    NOT NULL DEFAULT '',
    idempotency_key TEXT    NOT NULL,
    request_id      TEXT    NOT NULL DEFAULT '',
    key_id          TEXT    NOT NULL DEFAULT '',
    actor           TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    UNIQUE (account_id, idempotency_key)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);
CREATE INDEX ledger_entries_account_kind_time ON ledger_entries (account_id, kind, created_at);
CREATE INDEX ledger_entries_key_kind_time ON ledger_entries (key_id, kind, created_at);

CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger_entries is append-only');
END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger_entries is append-only');
END;

-- Spend limits per account or per caller key, per UTC day or month.
-- alert_percents is a JSON array of integers, e.g. [50,80,100].
CREATE TABLE budgets (
    scope          TEXT    NOT NULL CHECK (scope IN ('account', 'key')),
    scope_id       TEXT    NOT NULL,
    period         TEXT    NOT NULL CHECK (period IN ('daily', 'monthly')),
    limit_nano     INTEGER NOT NULL CHECK (limit_nano >= 0),
    alert_percents TEXT    NOT NULL DEFAULT '[50,80,100]',
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (scope, scope_id, period)
);

-- What a request cost (nano-USD, after the account multiplier) and whether
-- its token counts were estimated (a stream without provider usage).
ALTER TABLE usage_records ADD COLUMN cost_nano INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0;
