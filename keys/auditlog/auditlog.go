// Package auditlog is the audit log, append-only and hash-chained. Every
// row's hash covers its own fields and the previous row's hash, so editing
// a row breaks its hash and deleting one breaks the chain after it; Verify walks the chain and
// names the first broken row.
//
// Keyed (KeyedBy, as the gateway and the CLI always are), a row's hash is
// an HMAC under a key derived from the vault, which is not in the database
// in the clear: someone who can write the database cannot recompute the
// chain after an edit, nor append a forged row. Rows written before the
// chain was keyed stay plain SHA-256 (key_term 0): they were only as safe
// as the database until then, but the first keyed row's HMAC covers the
// last plain row's hash, so none of them can be changed since.
//
// Truncating the newest rows leaves a shorter chain that verifies: Head
// signs the chain's newest (seq, hash) for the operator to keep outside
// the database, and Check with that head catches rows removed (or
// rewritten) since.
//
// Anomaly detection (Detector) lives here too: it watches each key's
// requests and returns Alerts, which the gateway records in this log as
// anomaly.* events.
package auditlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/xroute/xroute/keys"
)

// Audit event kinds. admin.* and anomaly.* take any suffix.
const (
	KeyCreated          = "key.created"
	KeyRotated          = "key.rotated"
	KeyRevoked          = "key.revoked"
	KeyExpired          = "key.expired"
	KeySuspended        = "key.suspended"
	KeyResumed          = "key.resumed"
	AuthFailedBurst     = "auth.failed_burst"
	ProviderKeyAdded    = "provider_key.added"
	ProviderKeyDisabled = "provider_key.disabled"
	ProviderKeyEnabled  = "provider_key.enabled"
	ProviderKeyDeleted  = "provider_key.deleted"
	VaultRotated        = "vault.rotated"
	VaultRewrapped      = "vault.rewrapped"
	CreditsChanged      = "credits.changed"
	ChainKeyed          = "audit.keyed"
	AdminPrefix         = "admin."
	AnomalyPrefix       = "anomaly."
)

const (
	auditGenesisHash      = "0000000000000000000000000000000000000000000000000000000000000000"
	auditHashDomain       = "xroute-audit-v1\x00"
	auditMACDomain        = "xroute-audit-v2\x00"
	auditHeadDomain       = "xroute-audit-head-v1\x00"
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
	Hash     string // hex HMAC-SHA256 (keyed rows) or SHA-256, see Auditor
	KeyTerm  uint32 // the vault term of the HMAC key; 0: plain SHA-256
}

// Store is what the Auditor needs from persistence.
type Store interface {
	AppendAudit(ctx context.Context, build func(lastSeq int64, lastHash string) (Row, error)) error
	ListAudit(ctx context.Context, f Filter) ([]Row, error)
	ScanAudit(ctx context.Context, afterSeq int64, limit int) ([]Row, error)
	// FirstKeyedAudit is the seq of the first keyed row (0: none).
	FirstKeyedAudit(ctx context.Context) (int64, error)
}

// Row is one audit-log row as stored. At is unix milliseconds and
// Details JSON text, both exactly as hashed. KeyTerm is 0 for a row whose
// Hash is plain SHA-256 (written before the chain was keyed), else the
// vault term of the key whose HMAC Hash is.
type Row struct {
	Seq       int64
	At        int64
	Kind      string
	Actor     string
	AccountID string
	Subject   string
	IP        string
	Details   string
	PrevHash  string
	Hash      string
	KeyTerm   uint32
}

// Filter selects events for List (and rows for Store.ListAudit);
// zero fields do not filter.
type Filter struct {
	Kind      string // prefix: "key." matches every key event
	Subject   string
	AccountID string
	Since     time.Time
	Until     time.Time // events before this instant; zero: no bound
	Limit     int       // default 100, at most 1000
	BeforeSeq int64     // pagination: pass the last page's smallest Seq
}

// ChainError pinpoints where the audit chain breaks.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit: chain broken at seq %d: %s", e.Seq, e.Reason)
}

// Errors callers branch on.
var (
	// ErrAuditKeyRequired: the chain has keyed rows, and this Auditor was
	// built without the vault's keys (KeyedBy), so it cannot check them.
	ErrAuditKeyRequired = errors.New("audit: the chain is keyed; checking it or signing its head needs the vault master key")
	// ErrAuditNotKeyed: the chain has rows but none is keyed: written
	// only by versions before keyed chains (Seal fixes that), or rewritten
	// as plain SHA-256 by someone without the vault's key.
	ErrAuditNotKeyed = errors.New("audit: no row of the chain is keyed: rewritten as plain SHA-256, or never written by this version (xroute serve keys it at start)")
	// ErrHeadSignature: an anchored head does not carry this vault's
	// signature (altered, or not a head this deployment signed).
	ErrHeadSignature = errors.New("audit: the head's signature does not verify (altered, or signed by another vault)")
)

// Keys authenticate the chain with keys the database does not hold:
// rows are HMACed, heads signed. (*ChainKeys is one.)
type Keys interface {
	ActiveTerm() uint32
	MAC(term uint32, msg []byte) ([]byte, error)
	SigningKey(term uint32) (ed25519.PrivateKey, uint32, error)
	// Epoch is the seq of the chain's first keyed row, recorded out of
	// the database's reach; SetEpoch records it once.
	Epoch() (int64, bool)
	SetEpoch(ctx context.Context, seq int64) (int64, error)
}

// Auditor records and verifies the audit log.
type Auditor struct {
	st   Store
	now  func() time.Time
	keys Keys       // nil: rows are plain SHA-256 (tests; never the gateway)
	mu   sync.Mutex // one appender at a time in this process
}

// AuditorOption configures NewAuditor.
type AuditorOption func(*Auditor)

// KeyedBy authenticates new rows with HMACs under k and lets the Auditor
// check keyed rows and sign heads. Without it, rows are plain SHA-256,
// which anyone who can write the database can recompute after an edit.
func KeyedBy(k Keys) AuditorOption { return func(a *Auditor) { a.keys = k } }

// NewAuditor returns an auditor writing to st with the clock now.
func NewAuditor(st Store, now func() time.Time, opts ...AuditorOption) *Auditor {
	a := &Auditor{st: st, now: now}
	for _, o := range opts {
		o(a)
	}
	return a
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
	err := a.st.AppendAudit(ctx, func(lastSeq int64, lastHash string) (Row, error) {
		prev := lastHash
		if lastSeq == 0 {
			prev = auditGenesisHash
		}
		r := Row{
			Seq: lastSeq + 1, At: at, Kind: e.Kind, Actor: e.Actor, AccountID: e.AccountID,
			Subject: e.Subject, IP: e.IP, Details: string(details), PrevHash: prev,
		}
		if a.keys == nil {
			r.Hash = auditHash(r)
			return r, nil
		}
		r.KeyTerm = a.keys.ActiveTerm()
		mac, err := a.keys.MAC(r.KeyTerm, auditMessage(r))
		if err != nil {
			return r, err
		}
		r.Hash = hex.EncodeToString(mac)
		return r, nil
	})
	if err != nil {
		return fmt.Errorf("audit: record %s: %w", e.Kind, err)
	}
	return nil
}

// Seal records where the chain becomes keyed, once, in the vault's sealed
// keyring (so that someone who can write the database cannot move it):
// the seq of its first keyed row. A chain written by older versions (its
// rows plain SHA-256) first gets an audit.keyed event, whose HMAC covers
// the last plain row's hash, so no row before it can be changed from then
// on. It reports whether it appended that event. The gateway calls it at
// start; from then on a plain row at or after the epoch is a forgery, and
// a chain that ends before it was truncated.
func (a *Auditor) Seal(ctx context.Context) (bool, error) {
	if a.keys == nil {
		return false, ErrAuditKeyRequired
	}
	if _, ok := a.keys.Epoch(); ok {
		return false, nil
	}
	first, err := a.st.FirstKeyedAudit(ctx)
	if err != nil {
		return false, fmt.Errorf("audit: seal: %w", err)
	}
	appended := false
	if first == 0 {
		last, err := a.st.ListAudit(ctx, Filter{Limit: 1})
		if err != nil {
			return false, fmt.Errorf("audit: seal: %w", err)
		}
		if len(last) > 0 {
			err = a.Record(ctx, Event{Kind: ChainKeyed, Actor: "system",
				Details: map[string]any{"legacy_rows_through_seq": last[0].Seq, "key_term": a.keys.ActiveTerm()}})
			if err != nil {
				return false, err
			}
			appended = true
			if first, err = a.st.FirstKeyedAudit(ctx); err != nil {
				return appended, fmt.Errorf("audit: seal: %w", err)
			}
		} else {
			first = 1 // an empty chain: its first row will be keyed
		}
	}
	if _, err := a.keys.SetEpoch(ctx, first); err != nil {
		return appended, fmt.Errorf("audit: seal: %w", err)
	}
	return appended, nil
}

// List returns matching events, newest first.
func (a *Auditor) List(ctx context.Context, f Filter) ([]Event, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = auditDefaultListLimit
	}
	limit = min(limit, auditMaxListLimit)
	f.Limit = limit
	rows, err := a.st.ListAudit(ctx, f)
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

func eventFromRow(r Row) (Event, error) {
	e := Event{
		Seq: r.Seq, At: time.UnixMilli(r.At).UTC(), Kind: r.Kind, Actor: r.Actor, AccountID: r.AccountID,
		Subject: r.Subject, IP: r.IP, PrevHash: r.PrevHash, Hash: r.Hash, KeyTerm: r.KeyTerm,
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
		if keys.WellFormed(x) || keys.WellFormed(strings.TrimPrefix(x, "Bearer ")) {
			return ErrSecretInDetails
		}
	case map[string]any:
		for k, e := range x {
			if keys.WellFormed(k) {
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
