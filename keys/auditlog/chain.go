package auditlog

// Checking the audit chain: walking it row by row (Verify, Check), the
// signed head an operator keeps outside the database (Head, ParseHead), and
// the one encoding every row's hash or HMAC covers. audit.go writes and
// reads the log.

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
	"strings"
	"time"

	"github.com/xroute/xroute/keys/vault"
)

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
func (a *Auditor) checkRow(r Row, keyed bool) error {
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
	if errors.Is(err, vault.ErrUnknownTerm) {
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
	if errors.Is(err, vault.ErrUnknownTerm) {
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
func auditHash(r Row) string {
	h := sha256.New()
	h.Write([]byte(auditHashDomain))
	writeRowFields(h, r)
	return hex.EncodeToString(h.Sum(nil))
}

// auditMessage is what a keyed row's HMAC covers: its own domain tag, the
// key term, then the fields encoded as auditHash does.
func auditMessage(r Row) []byte {
	var b bytes.Buffer
	b.WriteString(auditMACDomain)
	writeInt(&b, int64(r.KeyTerm))
	writeRowFields(&b, r)
	return b.Bytes()
}

func writeRowFields(w io.Writer, r Row) {
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
