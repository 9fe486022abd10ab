-- Append-only, hash-chained audit log. hash = SHA-256 over a canonical
-- encoding of (seq, at, kind, actor, account_id, subject, ip, details,
-- prev_hash); the first row's prev_hash is 64 zeros. at is unix ms;
-- details is JSON text, hashed exactly as stored (keep it TEXT, not JSONB).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    account_id TEXT    NOT NULL DEFAULT '',
    subject    TEXT    NOT NULL DEFAULT '',
    ip         TEXT    NOT NULL DEFAULT '',
    details    TEXT    NOT NULL DEFAULT '{}',
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);
CREATE INDEX audit_log_kind ON audit_log (kind, seq);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
CREATE INDEX audit_log_account ON audit_log (account_id, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- The application never edits or deletes audit rows. These triggers stop
-- an accidental UPDATE/DELETE; someone with raw database access can drop
-- them, which is what the hash chain (keys.Auditor.Verify) detects.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
