package keys

// The audit log: append-only and hash-chained. Every row's hash covers its
// own fields and the previous row's hash, so editing a row breaks its hash
// and deleting one breaks the chain after it; Verify walks the chain and
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

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	AuditChainKeyed          = "audit.keyed"
	AuditAdminPrefix         = "admin."
	AuditAnomalyPrefix       = "anomaly."
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

// AuditStore is what the Auditor needs from persistence.
type AuditStore interface {
	AppendAudit(ctx context.Context, build func(lastSeq int64, lastHash string) (store.AuditRow, error)) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRow, error)
	ScanAudit(ctx context.Context, afterSeq int64, limit int) ([]store.AuditRow, error)
	// FirstKeyedAudit is the seq of the first keyed row (0: none).
	FirstKeyedAudit(ctx context.Context) (int64, error)
}

// AuditFilter selects events for List; zero fields do not filter.
type AuditFilter struct {
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

// AuditKeys authenticate the chain with keys the database does not hold:
// rows are HMACed, heads signed. (*ChainKeys is one.)
type AuditKeys interface {
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
	st   AuditStore
	now  func() time.Time
	keys AuditKeys  // nil: rows are plain SHA-256 (tests; never the gateway)
	mu   sync.Mutex // one appender at a time in this process
}

// AuditorOption configures NewAuditor.
type AuditorOption func(*Auditor)

// KeyedBy authenticates new rows with HMACs under k and lets the Auditor
// check keyed rows and sign heads. Without it, rows are plain SHA-256,
// which anyone who can write the database can recompute after an edit.
func KeyedBy(k AuditKeys) AuditorOption { return func(a *Auditor) { a.keys = k } }

// NewAuditor returns an auditor writing to st with the clock now.
func NewAuditor(st AuditStore, now func() time.Time, opts ...AuditorOption) *Auditor {
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
	err := a.st.AppendAudit(ctx, func(lastSeq int64, lastHash string) (store.AuditRow, error) {
		prev := lastHash
		if lastSeq == 0 {
			prev = auditGenesisHash
		}
		r := store.AuditRow{
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
		last, err := a.st.ListAudit(ctx, store.AuditFilter{Limit: 1})
		if err != nil {
			return false, fmt.Errorf("audit: seal: %w", err)
		}
		if len(last) > 0 {
			err = a.Record(ctx, Event{Kind: AuditChainKeyed, Actor: "system",
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
func (a *Auditor) List(ctx context.Context, f AuditFilter) ([]Event, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = auditDefaultListLimit
	}
	limit = min(limit, auditMaxListLimit)
	rows, err := a.st.ListAudit(ctx, store.AuditFilter{
		KindPrefix: f.Kind, Subject: f.Subject, AccountID: f.AccountID,
		Since: f.Since, Until: f.Until, BeforeSeq: f.BeforeSeq, Limit: limit,
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
// Truncation of the newest rows is caught only against a head kept
// outside the database: see Check.
func (a *Auditor) Verify(ctx context.Context) (int, error) {
	rep, err := a.Check(ctx, nil)
	return rep.Rows, err
}

// ChainReport is what Check found.
type ChainReport struct {
	Rows int // rows checked
	// LegacyRows were written before the chain was keyed (seq 1 to
	// LegacyRows, plain SHA-256): they could have been rewritten before
	// the first keyed row was appended, not since.
	LegacyRows int
	Keyed      bool   // the chain has keyed rows
	LastSeq    int64  // the newest row checked (0: empty log)
	LastHash   string // its hash
	// HeadChecked: an anchored head was given, its signature holds, and
	// the chain still reaches it with the same hash.
	HeadChecked bool
}

// Check walks the whole chain like Verify and, when anchor is not nil,
// also checks it against that head (see Head): its signature, that the
// row it names is still there (else the chain was truncated) and has the
// same hash (else it was rewritten). Rows appended since are checked too.
func (a *Auditor) Check(ctx context.Context, anchor *Head) (ChainReport, error) {
	var rep ChainReport
	if anchor != nil {
		if err := a.checkHeadSignature(*anchor); err != nil {
			return rep, err
		}
	}
	var epoch int64 // 0: not recorded (or no keys)
	if a.keys != nil {
		epoch, _ = a.keys.Epoch()
	}
	lastSeq, lastHash := int64(0), auditGenesisHash
	for {
		rows, err := a.st.ScanAudit(ctx, lastSeq, auditVerifyPage)
		if err != nil {
			return rep, fmt.Errorf("audit: verify: %w", err)
		}
		for _, r := range rows {
			if r.Seq != lastSeq+1 {
				reason := fmt.Sprintf("row %d is missing (deleted)", lastSeq+1)
				if r.Seq > lastSeq+2 {
					reason = fmt.Sprintf("rows %d..%d are missing (deleted)", lastSeq+1, r.Seq-1)
				}
				return rep, &ChainError{Seq: lastSeq + 1, Reason: reason}
			}
			if r.PrevHash != lastHash {
				reason := fmt.Sprintf("prev_hash is not seq %d's hash (a row before it was replaced or removed)", lastSeq)
				if lastSeq == 0 {
					reason = "prev_hash of the first row is not the genesis hash"
				}
				return rep, &ChainError{Seq: r.Seq, Reason: reason}
			}
			if epoch > 0 && r.Seq >= epoch && r.KeyTerm == 0 {
				return rep, &ChainError{Seq: r.Seq, Reason: fmt.Sprintf("a plain SHA-256 row where the vault records the chain keyed from seq %d (forged)", epoch)}
			}
			if err := a.checkRow(r, rep.Keyed); err != nil {
				return rep, err
			}
			if r.KeyTerm == 0 {
				rep.LegacyRows++
			} else {
				rep.Keyed = true
			}
			if anchor != nil && r.Seq == anchor.Seq && !hmac.Equal([]byte(r.Hash), []byte(anchor.Hash)) {
				return rep, &ChainError{Seq: r.Seq, Reason: "the row differs from the anchored head (rewritten since the head was taken)"}
			}
			lastSeq, lastHash = r.Seq, r.Hash
			rep.LastSeq, rep.LastHash = r.Seq, r.Hash
			rep.Rows++
		}
		if len(rows) < auditVerifyPage {
			break
		}
	}
	if epoch > 1 && lastSeq < epoch {
		return rep, &ChainError{Seq: lastSeq + 1, Reason: fmt.Sprintf(
			"the chain ends at seq %d but the vault records it keyed from seq %d: rows were removed (truncated)", lastSeq, epoch)}
	}
	if a.keys != nil && epoch == 0 && rep.Rows > 0 && !rep.Keyed {
		return rep, ErrAuditNotKeyed
	}
	if anchor != nil {
		if lastSeq < anchor.Seq {
			return rep, &ChainError{Seq: lastSeq + 1, Reason: fmt.Sprintf(
				"the chain ends at seq %d but the anchored head is seq %d: rows %d..%d were removed (truncated)", lastSeq, anchor.Seq, lastSeq+1, anchor.Seq)}
		}
		if anchor.Seq == 0 && anchor.Hash != auditGenesisHash {
			return rep, &ChainError{Seq: 1, Reason: "the anchored head is malformed"}
		}
		rep.HeadChecked = true
	}
	return rep, nil
}

// checkRow checks one row's hash; keyed says an earlier row was keyed.
func (a *Auditor) checkRow(r store.AuditRow, keyed bool) error {
	if r.KeyTerm == 0 {
		if keyed {
			return &ChainError{Seq: r.Seq, Reason: "a plain SHA-256 row after the chain was keyed (forged, or written without the vault's key)"}
		}
		if auditHash(r) != r.Hash {
			return &ChainError{Seq: r.Seq, Reason: "hash does not match the row's contents (row edited)"}
		}
		return nil
	}
	if a.keys == nil {
		return fmt.Errorf("%w (rows from seq %d are keyed)", ErrAuditKeyRequired, r.Seq)
	}
	mac, err := a.keys.MAC(r.KeyTerm, auditMessage(r))
	if errors.Is(err, ErrUnknownTerm) {
		return &ChainError{Seq: r.Seq, Reason: fmt.Sprintf("names key term %d, which the vault does not hold (forged)", r.KeyTerm)}
	}
	if err != nil {
		return fmt.Errorf("audit: verify seq %d: %w", r.Seq, err)
	}
	if !hmac.Equal([]byte(hex.EncodeToString(mac)), []byte(r.Hash)) {
		return &ChainError{Seq: r.Seq, Reason: "HMAC does not match the row's contents (edited, or forged without the vault's key)"}
	}
	return nil
}

// Head is a signed statement of the chain's newest row, to be kept
// outside the database (a file elsewhere, a ticket, a log shipped off the
// host): checked against it later, the chain shows whether rows were
// removed or rewritten since. The signature is Ed25519 under a key derived
// from the vault; PublicKey is its public half.
type Head struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	At        time.Time `json:"at"` // when the head was taken
	Term      uint32    `json:"term"`
	PublicKey string    `json:"public_key"` // base64
	Signature string    `json:"signature"`  // base64
}

// String is the head as one line of JSON, as ParseHead reads it.
func (h Head) String() string {
	b, _ := json.Marshal(h)
	return string(b)
}

// ParseHead reads a head printed by String (or the admin API's answer).
func ParseHead(s string) (Head, error) {
	var h Head
	if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &h); err != nil {
		return Head{}, fmt.Errorf("audit: not a head: %w", err)
	}
	if h.Seq < 0 || h.Term == 0 || h.Hash == "" || h.Signature == "" {
		return Head{}, errors.New("audit: not a head: seq, hash, term and signature are required")
	}
	return h, nil
}

// Head checks the whole chain and signs its newest row. It refuses a
// broken chain: a head vouches for what it covers.
func (a *Auditor) Head(ctx context.Context) (Head, error) {
	if a.keys == nil {
		return Head{}, ErrAuditKeyRequired
	}
	rep, err := a.Check(ctx, nil)
	if err != nil {
		return Head{}, err
	}
	sk, term, err := a.keys.SigningKey(0)
	if err != nil {
		return Head{}, fmt.Errorf("audit: head: %w", err)
	}
	h := Head{Seq: rep.LastSeq, Hash: rep.LastHash, At: a.now().UTC().Truncate(time.Millisecond), Term: term,
		PublicKey: base64.StdEncoding.EncodeToString(sk.Public().(ed25519.PublicKey))}
	if h.Seq == 0 {
		h.Hash = auditGenesisHash
	}
	h.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(sk, headMessage(h)))
	return h, nil
}

func (a *Auditor) checkHeadSignature(h Head) error {
	if a.keys == nil {
		return ErrAuditKeyRequired
	}
	sk, _, err := a.keys.SigningKey(h.Term)
	if errors.Is(err, ErrUnknownTerm) {
		return fmt.Errorf("%w: key term %d is not in the vault", ErrHeadSignature, h.Term)
	}
	if err != nil {
		return fmt.Errorf("audit: head: %w", err)
	}
	pub := sk.Public().(ed25519.PublicKey)
	sig, err := base64.StdEncoding.DecodeString(h.Signature)
	if err != nil || h.PublicKey != base64.StdEncoding.EncodeToString(pub) || !ed25519.Verify(pub, headMessage(h), sig) {
		return ErrHeadSignature
	}
	return nil
}

// headMessage is what a head's signature covers.
func headMessage(h Head) []byte {
	var b bytes.Buffer
	b.WriteString(auditHeadDomain)
	writeInt(&b, h.Seq)
	writeInt(&b, h.At.UnixMilli())
	writeInt(&b, int64(h.Term))
	writeField(&b, h.Hash)
	return b.Bytes()
}

// auditHash is hex SHA-256 over a domain tag, then seq and at as 8-byte
// big-endian integers, then each text field (kind, actor, account_id,
// subject, ip, details, prev_hash) as an 8-byte big-endian length and its
// bytes. Length prefixes make the encoding unambiguous: no two different
// rows encode the same. (The form of rows written before the chain was
// keyed.)
func auditHash(r store.AuditRow) string {
	h := sha256.New()
	h.Write([]byte(auditHashDomain))
	writeRowFields(h, r)
	return hex.EncodeToString(h.Sum(nil))
}

// auditMessage is what a keyed row's HMAC covers: its own domain tag, the
// key term, then the fields encoded as auditHash does.
func auditMessage(r store.AuditRow) []byte {
	var b bytes.Buffer
	b.WriteString(auditMACDomain)
	writeInt(&b, int64(r.KeyTerm))
	writeRowFields(&b, r)
	return b.Bytes()
}

func writeRowFields(w io.Writer, r store.AuditRow) {
	writeInt(w, r.Seq)
	writeInt(w, r.At)
	for _, f := range []string{r.Kind, r.Actor, r.AccountID, r.Subject, r.IP, r.Details, r.PrevHash} {
		writeField(w, f)
	}
}

func writeInt(w io.Writer, v int64) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(v))
	w.Write(buf[:])
}

func writeField(w io.Writer, f string) {
	writeInt(w, int64(len(f)))
	io.WriteString(w, f)
}

func eventFromRow(r store.AuditRow) (Event, error) {
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
