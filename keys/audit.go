package keys

// The audit log: append-only and hash-chained. Every row's hash covers its
// own fields and the previous row's hash, so editing a row breaks its hash
// and deleting one breaks the chain after it; Verify walks the chain and
// names the first broken row.
//
// Out of scope: truncating the newest rows (the tail) leaves a shorter,
// valid chain. Detecting that needs the head (seq, hash) anchored outside
// the database (a log line, a backup, an external notary).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/xroute/xroute/internal/store"
)

// Audit event kinds. admin.* and anomaly.* take any suffix.
const (
	AuditKeyCreated          = "key.created"
	AuditKeyRotated          = "key.rotated"
	AuditKeyRevoked          = "key.revoked"
	AuditKeyExpired          = "key.expired"
	AuditKeySuspended        = "key.suspended"
	AuditKeyResumed          = "key.resumed"
	AuditAuthFailedBurst     = "auth.failed_burst"
	AuditProviderKeyAdded    = "provider_key.added"
	AuditProviderKeyDisabled = "provider_key.disabled"
	AuditProviderKeyEnabled  = "provider_key.enabled"
	AuditProviderKeyDeleted  = "provider_key.deleted"
	AuditVaultRotated        = "vault.rotated"
	AuditVaultRewrapped      = "vault.rewrapped"
	AuditCreditsChanged      = "credits.changed"
	AuditAdminPrefix         = "admin."
	AuditAnomalyPrefix       = "anomaly."
)

const (
	auditGenesisHash      = "0000000000000000000000000000000000000000000000000000000000000000"
	auditHashDomain       = "xroute-audit-v1\x00"
	auditVerifyPage       = 1000
	auditMaxDetailsBytes  = 16 << 10
	auditDefaultListLimit = 100
	auditMaxListLimit     = 1000
)

// kindPattern: lower-case dotted words, e.g. "key.created", "admin.login".
var kindPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$`)

// ErrSecretInDetails is returned by Record when a details value looks like
// an xroute key. It is a guard, not a guarantee: callers must never pass
// secrets (keys, provider keys, tokens, passwords) in details.
var ErrSecretInDetails = errors.New("audit: details hold what looks like an API key; never put secrets in the audit log")

// Event is one audit-log entry.
type Event struct {
	Seq       int64     // assigned by Record
	At        time.Time // assigned by Record (the Auditor's clock)
	Kind      string    // e.g. "key.revoked"; see the Audit* constants
	Actor     string    // who did it: "admin:key_x", "cli", "system"
	AccountID string
	Subject   string // what it was done to, e.g. a key id
	IP        string
	// Details is free-form context, stored as JSON. NEVER put secrets here
	// (keys, provider keys, tokens): the log is readable by every admin
	// and kept forever. Ids, names, hints and amounts are fine.
	Details  map[string]any
	PrevHash string // hex; 64 zeros for the first row
	Hash     string // hex SHA-256, see Auditor
}

// AuditStore is what the Auditor needs from persistence.
type AuditStore interface {
	AppendAudit(ctx context.Context, build func(lastSeq int64, lastHash string) (store.AuditRow, error)) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRow, error)
	ScanAudit(ctx context.Context, afterSeq int64, limit int) ([]store.AuditRow, error)
}

// AuditFilter selects events for List; zero fields do not filter.
type AuditFilter struct {
	Kind      string // prefix: "key." matches every key event
	Subject   string
	AccountID string
	Since     time.Time
	Limit     int   // default 100, at most 1000
	BeforeSeq int64 // pagination: pass the last page's smallest Seq
}

// ChainError pinpoints where the audit chain breaks.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit: chain broken at seq %d: %s", e.Seq, e.Reason)
}

// Auditor records and verifies the audit log.
type Auditor struct {
	st  AuditStore
	now func() time.Time
	mu  sync.Mutex // one appender at a time in this process
}

// NewAuditor returns an auditor writing to st with the clock now.
func NewAuditor(st AuditStore, now func() time.Time) *Auditor {
	return &Auditor{st: st, now: now}
}

// Record appends e. Seq, At, PrevHash and Hash are assigned here; the last
// hash is read and the row inserted in one transaction, so the chain stays
// linear. Details must not hold secrets (see Event.Details).
func (a *Auditor) Record(ctx context.Context, e Event) error {
	if !kindPattern.MatchString(e.Kind) {
		return fmt.Errorf("audit: bad event kind %q", e.Kind)
	}
	if strings.TrimSpace(e.Actor) == "" {
		return errors.New("audit: an event needs an actor")
	}
	if err := checkDetails(e.Details, 0); err != nil {
		return err
	}
	details := []byte("{}")
	if len(e.Details) > 0 {
		var err error
		if details, err = json.Marshal(e.Details); err != nil {
			return fmt.Errorf("audit: details: %w", err)
		}
	}
	if len(details) > auditMaxDetailsBytes {
		return fmt.Errorf("audit: details are %d bytes, at most %d", len(details), auditMaxDetailsBytes)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	at := a.now().UnixMilli() // under the lock: at never decreases along the chain here
	err := a.st.AppendAudit(ctx, func(lastSeq int64, lastHash string) (store.AuditRow, error) {
		prev := lastHash
		if lastSeq == 0 {
			prev = auditGenesisHash
		}
		r := store.AuditRow{
			Seq: lastSeq + 1, At: at, Kind: e.Kind, Actor: e.Actor, AccountID: e.AccountID,
			Subject: e.Subject, IP: e.IP, Details: string(details), PrevHash: prev,
		}
		r.Hash = auditHash(r)
		return r, nil
	})
	if err != nil {
		return fmt.Errorf("audit: record %s: %w", e.Kind, err)
	}
	return nil
}

// List returns matching events, newest first.
func (a *Auditor) List(ctx context.Context, f AuditFilter) ([]Event, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = auditDefaultListLimit
	}
	limit = min(limit, auditMaxListLimit)
	rows, err := a.st.ListAudit(ctx, store.AuditFilter{
		KindPrefix: f.Kind, Subject: f.Subject, AccountID: f.AccountID,
		Since: f.Since, BeforeSeq: f.BeforeSeq, Limit: limit,
	})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		if out[i], err = eventFromRow(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Verify walks the whole chain from seq 1 and returns how many rows it
// checked. A *ChainError names the first row that was edited (its hash no
// longer matches its fields), or the first seq that is missing (a deleted
// row: a gap in seq, or a prev_hash that is not its predecessor's hash).
// Truncation of the newest rows is not detected (see the package note).
func (a *Auditor) Verify(ctx context.Context) (int, error) {
	var n int
	lastSeq, lastHash := int64(0), auditGenesisHash
	for {
		rows, err := a.st.ScanAudit(ctx, lastSeq, auditVerifyPage)
		if err != nil {
			return n, fmt.Errorf("audit: verify: %w", err)
		}
		for _, r := range rows {
			if r.Seq != lastSeq+1 {
				reason := fmt.Sprintf("row %d is missing (deleted)", lastSeq+1)
				if r.Seq > lastSeq+2 {
					reason = fmt.Sprintf("rows %d..%d are missing (deleted)", lastSeq+1, r.Seq-1)
				}
				return n, &ChainError{Seq: lastSeq + 1, Reason: reason}
			}
			if r.PrevHash != lastHash {
				reason := fmt.Sprintf("prev_hash is not seq %d's hash (a row before it was replaced or removed)", lastSeq)
				if lastSeq == 0 {
					reason = "prev_hash of the first row is not the genesis hash"
				}
				return n, &ChainError{Seq: r.Seq, Reason: reason}
			}
			if auditHash(r) != r.Hash {
				return n, &ChainError{Seq: r.Seq, Reason: "hash does not match the row's contents (row edited)"}
			}
			lastSeq, lastHash = r.Seq, r.Hash
			n++
		}
		if len(rows) < auditVerifyPage {
			return n, nil
		}
	}
}

// auditHash is hex SHA-256 over a domain tag, then seq and at as 8-byte
// big-endian integers, then each text field (kind, actor, account_id,
// subject, ip, details, prev_hash) as an 8-byte big-endian length and its
// bytes. Length prefixes make the encoding unambiguous: no two different
// rows encode the same.
func auditHash(r store.AuditRow) string {
	h := sha256.New()
	var buf [8]byte
	h.Write([]byte(auditHashDomain))
	binary.BigEndian.PutUint64(buf[:], uint64(r.Seq))
	h.Write(buf[:])
	binary.BigEndian.PutUint64(buf[:], uint64(r.At))
	h.Write(buf[:])
	for _, f := range []string{r.Kind, r.Actor, r.AccountID, r.Subject, r.IP, r.Details, r.PrevHash} {
		binary.BigEndian.PutUint64(buf[:], uint64(len(f)))
		h.Write(buf[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func eventFromRow(r store.AuditRow) (Event, error) {
	e := Event{
		Seq: r.Seq, At: time.UnixMilli(r.At).UTC(), Kind: r.Kind, Actor: r.Actor, AccountID: r.AccountID,
		Subject: r.Subject, IP: r.IP, PrevHash: r.PrevHash, Hash: r.Hash,
	}
	d := json.NewDecoder(bytes.NewReader([]byte(r.Details)))
	d.UseNumber() // keep integers (nano-dollar amounts) exact
	if err := d.Decode(&e.Details); err != nil {
		return Event{}, fmt.Errorf("audit: seq %d: details: %w", r.Seq, err)
	}
	return e, nil
}

// checkDetails refuses string values shaped like xroute keys, at any depth.
func checkDetails(v any, depth int) error {
	if depth > 32 {
		return errors.New("audit: details nest too deep")
	}
	switch x := v.(type) {
	case string:
		if WellFormed(x) || WellFormed(strings.TrimPrefix(x, "Bearer ")) {
			return ErrSecretInDetails
		}
	case map[string]any:
		for k, e := range x {
			if WellFormed(k) {
				return ErrSecretInDetails
			}
			if err := checkDetails(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkDetails(e, depth+1); err != nil {
				return err
			}
		}
	case []string:
		for _, e := range x {
			if err := checkDetails(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
