-- Append-only, hash-chained audit log. hash = SHA-256 over a canonical
-- encoding of (seq, at, kind, actor, account_id, subject, ip, details,
-- prev_hash); the first row's prev_hash is 64 zeros. at is unix ms;
-- details is JSON text, hashed exactly as stored (keep it TEXT, not JSONB).
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT COLLATE "C" NOT NULL,
    actor      TEXT COLLATE "C" NOT NULL,
    account_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    subject    TEXT COLLATE "C" NOT NULL DEFAULT '',
    ip         TEXT COLLATE "C" NOT NULL DEFAULT '',
    details    TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    prev_hash  TEXT COLLATE "C" NOT NULL,
    hash       TEXT COLLATE "C" NOT NULL
);
CREATE INDEX audit_log_kind ON audit_log (kind, seq);
CREATE INDEX audit_log_subject ON audit_log (subject, seq);
CREATE INDEX audit_log_account ON audit_log (account_id, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- The application never edits or deletes audit rows. These triggers stop
-- an accidental UPDATE/DELETE (and TRUNCATE, which row triggers miss);
-- someone with raw database access can drop them, which is what the hash
-- chain (keys.Auditor.Verify) detects. Migration 0005 reuses the function.
CREATE FUNCTION xroute_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION xroute_append_only();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION xroute_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION xroute_append_only();
