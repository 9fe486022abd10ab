package auditlog

// The chain's hashing, which the external tests (package auditlog_test)
// use to forge rows the way an attacker with database access would.
var (
	GenesisHash = auditGenesisHash
	Hash        = auditHash
)
