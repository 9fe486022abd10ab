-- Audit sinks (issue 19): where each configured sink (a webhook, a syslog
-- receiver) has got to in the audit log, so that a restart, or another
-- replica taking over, resumes after the last sequence number the
-- receiver acknowledged and skips none.
--   acked_seq    the highest audit seq the sink delivered and the
--                receiver acknowledged (0: none yet)
--   lease_owner  the process shipping this sink ('' none); one replica
--   lease_until  ships a sink at a time, until its lease (unix ms) runs
--                out without renewal
CREATE TABLE audit_sink_state (
    name        TEXT   PRIMARY KEY,
    acked_seq   BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT   NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    updated_at  BIGINT NOT NULL DEFAULT 0
);
