// Package vault is the provider-key vault: a small crypto core in the spirit of Vault's
// AES-GCM barrier. It knows nothing of HTTP or SQL; it seals and opens byte
// strings bound to an id, and persists its keyring through KeyringStore.
//
// Two layers of keys:
//
//   - the master key (32 bytes) comes from the environment or a file and is
//     never stored in the database. It encrypts only the keyring.
//   - the keyring holds the data keys, one per term (1, 2, ...). Seal uses
//     the active term; Open uses whichever term a ciphertext names, so a
//     rotation never breaks stored ciphertexts.
//
// Ciphertext format (version 1):
//
//	+----------------+-----------+--------------+-----------------------+
//	| term (4 bytes, | version   | nonce        | AES-256-GCM sealed    |
//	| big endian)    | (1 byte)  | (12 bytes)   | data + 16-byte tag    |
//	+----------------+-----------+--------------+-----------------------+
//
// The id given to Seal (the provider-key row id) is the associated data: a
// ciphertext copied to another row does not open there.
package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/dberr"
)

// Vault errors. Callers branch on them with errors.Is; none of them ever
// carries key material or plaintext.
var (
	// ErrWrongMasterKey: the stored keyring does not decrypt under the
	// master key given (wrong key, or the keyring blob was altered).
	ErrWrongMasterKey = errors.New("vault: the master key does not open the stored keyring (wrong XROUTE_VAULT_MASTER_KEY or master key file?)")
	// ErrUnknownTerm: the ciphertext names a term this keyring does not
	// hold (corrupt data, or another replica rotated: Reload and retry).
	ErrUnknownTerm = errors.New("vault: unknown key term")
	// ErrMalformedCiphertext: too short, or an unknown version byte.
	ErrMalformedCiphertext = errors.New("vault: malformed ciphertext")
	// ErrDecrypt: authentication failed: tampered data, or a ciphertext
	// presented under another id than the one it was sealed for.
	ErrDecrypt = errors.New("vault: ciphertext does not authenticate (tampered, or sealed for another id)")
	// ErrNoID: Seal and Open require an id to bind the ciphertext to.
	ErrNoID = errors.New("vault: an id is required")
)

const (
	// MasterKeySize is the size of the master key and of every data key.
	MasterKeySize = 32

	ctVersion     byte = 1
	termSize           = 4
	nonceSize          = 12
	headerSize         = termSize + 1 + nonceSize
	tagSize            = 16
	keyringAD          = "xroute-keyring"
	keyringBlobV1 byte = 1
)

// KeyringStore persists the encrypted keyring: one blob, replaced with a
// compare-and-swap on a generation counter so two replicas rotating at once
// cannot overwrite each other's term.
type KeyringStore interface {
	// Keyring returns the blob and its generation; dberr.ErrNotFound when
	// none has been saved yet.
	Keyring(ctx context.Context) (blob []byte, gen int64, err error)
	// SaveKeyring stores blob if the stored generation is still gen (0: no
	// keyring yet) and returns the new generation; dberr.ErrConflict when
	// another writer got there first.
	SaveKeyring(ctx context.Context, blob []byte, gen int64) (int64, error)
}

// Vault seals and opens provider keys. It is safe for concurrent use.
type Vault struct {
	st KeyringStore

	// wmu serialises the writers (Rotate, RewrapMaster, Reload) so the
	// store I/O happens outside mu and readers never wait on the database.
	wmu sync.Mutex

	mu     sync.RWMutex
	master []byte
	gen    int64
	active uint32
	keys   map[uint32][]byte // term -> data key, kept for re-persisting
	aeads  map[uint32]cipher.AEAD
	marks  map[string]int64
}

// keyringDoc is the keyring's plaintext form (JSON, then sealed under the
// master key).
type keyringDoc struct {
	Active uint32      `json:"active"`
	Terms  []termEntry `json:"terms"`
	// Marks are facts kept where someone who can write the database
	// cannot change them (the keyring is sealed under the master key):
	// e.g. from where the audit chain and the ledger are keyed.
	Marks map[string]int64 `json:"marks,omitempty"`
}

type termEntry struct {
	Term uint32 `json:"term"`
	Key  []byte `json:"key"` // base64 in JSON
}

// Open loads and decrypts the keyring, creating it with term 1 on
// first use. A wrong master key fails here with ErrWrongMasterKey, at start
// rather than at the first request.
func Open(ctx context.Context, st KeyringStore, master []byte) (*Vault, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("vault: master key must be %d bytes, got %d", MasterKeySize, len(master))
	}
	v := &Vault{st: st, master: append([]byte(nil), master...)}
	for attempt := 0; attempt < 3; attempt++ {
		err := v.Reload(ctx)
		if !errors.Is(err, dberr.ErrNotFound) {
			if err != nil {
				return nil, err
			}
			return v, nil
		}
		// First use: create term 1. Another replica may do the same at the
		// same moment; the loser of the insert loads the winner's keyring.
		doc := keyringDoc{Active: 1, Terms: []termEntry{{Term: 1, Key: randomKey()}}}
		blob, err := sealKeyring(v.master, doc)
		if err != nil {
			return nil, err
		}
		gen, err := st.SaveKeyring(ctx, blob, 0)
		if errors.Is(err, dberr.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("vault: save new keyring: %w", err)
		}
		if err := v.install(doc, gen, nil); err != nil {
			return nil, err
		}
		return v, nil
	}
	return nil, errors.New("vault: could not load or create the keyring (concurrent writers?)")
}

// Reload re-reads the keyring from the store (after another replica
// rotated). It returns dberr.ErrNotFound when no keyring exists.
func (v *Vault) Reload(ctx context.Context) error {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	return v.reloadLocked(ctx)
}

func (v *Vault) reloadLocked(ctx context.Context) error {
	blob, gen, err := v.st.Keyring(ctx)
	if errors.Is(err, dberr.ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("vault: load keyring: %w", err)
	}
	v.mu.RLock()
	master := v.master
	v.mu.RUnlock()
	doc, err := openKeyring(master, blob)
	if err != nil {
		return err
	}
	return v.install(doc, gen, nil)
}

// install swaps in a keyring (and a new master key when non-nil).
func (v *Vault) install(doc keyringDoc, gen int64, master []byte) error {
	keys := make(map[uint32][]byte, len(doc.Terms))
	aeads := make(map[uint32]cipher.AEAD, len(doc.Terms))
	for _, t := range doc.Terms {
		if t.Term == 0 || len(t.Key) != MasterKeySize {
			return fmt.Errorf("vault: keyring term %d is invalid", t.Term)
		}
		if _, dup := keys[t.Term]; dup {
			return fmt.Errorf("vault: keyring holds term %d twice", t.Term)
		}
		a, err := newGCM(t.Key)
		if err != nil {
			return err
		}
		keys[t.Term] = t.Key
		aeads[t.Term] = a
	}
	if _, ok := aeads[doc.Active]; !ok {
		return fmt.Errorf("vault: keyring's active term %d is missing", doc.Active)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.keys, v.aeads, v.active, v.gen = keys, aeads, doc.Active, gen
	v.marks = maps.Clone(doc.Marks)
	if master != nil {
		v.master = master
	}
	return nil
}

// doc returns a copy of the current keyring.
func (v *Vault) doc() (keyringDoc, int64, []byte) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	d := keyringDoc{Active: v.active, Terms: make([]termEntry, 0, len(v.keys)), Marks: maps.Clone(v.marks)}
	for _, term := range slices.Sorted(maps.Keys(v.keys)) {
		d.Terms = append(d.Terms, termEntry{Term: term, Key: v.keys[term]})
	}
	return d, v.gen, v.master
}

// Seal encrypts plaintext under the active term, bound to id.
func (v *Vault) Seal(id string, plaintext []byte) ([]byte, error) {
	if id == "" {
		return nil, ErrNoID
	}
	v.mu.RLock()
	term, aead := v.active, v.aeads[v.active]
	v.mu.RUnlock()
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	binary.BigEndian.PutUint32(out, term)
	out[termSize] = ctVersion
	nonce := out[termSize+1 : headerSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("vault: nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, []byte(id)), nil
}

// Open decrypts a ciphertext Seal produced for the same id.
func (v *Vault) Open(id string, ct []byte) ([]byte, error) {
	if id == "" {
		return nil, ErrNoID
	}
	if len(ct) < headerSize+tagSize || ct[termSize] != ctVersion {
		return nil, ErrMalformedCiphertext
	}
	term := binary.BigEndian.Uint32(ct)
	v.mu.RLock()
	aead := v.aeads[term]
	v.mu.RUnlock()
	if aead == nil {
		return nil, fmt.Errorf("%w %d", ErrUnknownTerm, term)
	}
	pt, err := aead.Open(nil, ct[termSize+1:headerSize], ct[headerSize:], []byte(id))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Term returns the key term a ciphertext was sealed under (0 when ct is too
// short to name one).
func Term(ct []byte) uint32 {
	if len(ct) < termSize {
		return 0
	}
	return binary.BigEndian.Uint32(ct)
}

// Term is the package-level Term, for callers holding a *Vault.
func (v *Vault) Term(ct []byte) uint32 { return Term(ct) }

// DeriveKey returns a 32-byte key for purpose, derived with HKDF-SHA256
// from the data key of term (0: the active term), and the term it used.
// Different purposes give unrelated keys, and none reveals the data key;
// a rotation adds a term, so keys derived from older terms stay
// available. ErrUnknownTerm when the keyring has no such term.
func (v *Vault) DeriveKey(purpose string, term uint32) ([]byte, uint32, error) {
	v.mu.RLock()
	if term == 0 {
		term = v.active
	}
	k := v.keys[term]
	v.mu.RUnlock()
	if k == nil {
		return nil, term, fmt.Errorf("%w %d", ErrUnknownTerm, term)
	}
	out, err := hkdf.Key(sha256.New, k, nil, "xroute derived key: "+purpose, MasterKeySize)
	if err != nil {
		return nil, term, fmt.Errorf("vault: derive %s key: %w", purpose, err)
	}
	return out, term, nil
}

// ActiveTerm is the term new ciphertexts are sealed under.
func (v *Vault) ActiveTerm() uint32 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.active
}

// Terms is how many terms the keyring holds.
func (v *Vault) Terms() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.keys)
}

// Rotate adds a fresh data key as a new term, makes it active and persists
// the keyring. Old terms keep opening their ciphertexts; re-seal them under
// the new term with ProviderKeys.Reencrypt. Replicas that did not rotate
// pick the new term up with Reload (ProviderKeys does so on ErrUnknownTerm).
func (v *Vault) Rotate(ctx context.Context) (uint32, error) {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	for attempt := 0; attempt < 3; attempt++ {
		doc, gen, master := v.doc()
		next := uint32(0)
		for _, t := range doc.Terms {
			next = max(next, t.Term)
		}
		if next == ^uint32(0) {
			return 0, errors.New("vault: key terms exhausted")
		}
		next++
		doc.Terms = append(doc.Terms, termEntry{Term: next, Key: randomKey()})
		doc.Active = next
		newGen, err := v.save(ctx, master, doc, gen)
		if errors.Is(err, dberr.ErrConflict) {
			// Another replica changed the keyring: load it, rotate on top.
			if err := v.reloadLocked(ctx); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		if err := v.install(doc, newGen, nil); err != nil {
			return 0, err
		}
		return next, nil
	}
	return 0, errors.New("vault: rotate: the keyring kept changing under us")
}

// Mark returns the value recorded under name in the keyring (as this
// process last loaded it) and whether there is one.
func (v *Vault) Mark(name string) (int64, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	val, ok := v.marks[name]
	return val, ok
}

// SetMark records name = value in the keyring unless a value is there
// already: the first writer wins, across replicas, and its value is
// returned. A mark is never changed or removed.
func (v *Vault) SetMark(ctx context.Context, name string, value int64) (int64, error) {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	for attempt := 0; attempt < 3; attempt++ {
		doc, gen, master := v.doc()
		if old, ok := doc.Marks[name]; ok {
			return old, nil
		}
		if doc.Marks == nil {
			doc.Marks = map[string]int64{}
		}
		doc.Marks[name] = value
		newGen, err := v.save(ctx, master, doc, gen)
		if errors.Is(err, dberr.ErrConflict) {
			if err := v.reloadLocked(ctx); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		return value, v.install(doc, newGen, nil)
	}
	return 0, errors.New("vault: set mark: the keyring kept changing under us")
}

// RewrapMaster re-encrypts the keyring under a new master key. Provider-key
// ciphertexts do not change. Write the new master key where the next start
// reads it (env or file) BEFORE calling this: from here on the old master
// key fails with ErrWrongMasterKey, on this and on every other replica.
func (v *Vault) RewrapMaster(ctx context.Context, newMaster []byte) error {
	if len(newMaster) != MasterKeySize {
		return fmt.Errorf("vault: master key must be %d bytes, got %d", MasterKeySize, len(newMaster))
	}
	newMaster = append([]byte(nil), newMaster...)
	v.wmu.Lock()
	defer v.wmu.Unlock()
	for attempt := 0; attempt < 3; attempt++ {
		doc, gen, _ := v.doc()
		newGen, err := v.save(ctx, newMaster, doc, gen)
		if errors.Is(err, dberr.ErrConflict) {
			if err := v.reloadLocked(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		return v.install(doc, newGen, newMaster)
	}
	return errors.New("vault: rewrap: the keyring kept changing under us")
}

func (v *Vault) save(ctx context.Context, master []byte, doc keyringDoc, gen int64) (int64, error) {
	blob, err := sealKeyring(master, doc)
	if err != nil {
		return 0, err
	}
	newGen, err := v.st.SaveKeyring(ctx, blob, gen)
	if err != nil {
		return 0, fmt.Errorf("vault: save keyring: %w", err)
	}
	return newGen, nil
}

// sealKeyring encrypts the keyring under the master key:
// version byte | nonce | AES-256-GCM(json) with AD "xroute-keyring".
func sealKeyring(master []byte, doc keyringDoc) ([]byte, error) {
	pt, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("vault: encode keyring: %w", err)
	}
	defer clear(pt)
	a, err := newGCM(master)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(pt)+tagSize)
	out[0] = keyringBlobV1
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("vault: nonce: %w", err)
	}
	return a.Seal(out, out[1:], pt, []byte(keyringAD)), nil
}

func openKeyring(master, blob []byte) (keyringDoc, error) {
	if len(blob) < 1+nonceSize+tagSize || blob[0] != keyringBlobV1 {
		return keyringDoc{}, errors.New("vault: stored keyring is malformed")
	}
	a, err := newGCM(master)
	if err != nil {
		return keyringDoc{}, err
	}
	pt, err := a.Open(nil, blob[1:1+nonceSize], blob[1+nonceSize:], []byte(keyringAD))
	if err != nil {
		return keyringDoc{}, ErrWrongMasterKey
	}
	defer clear(pt)
	var doc keyringDoc
	if err := json.Unmarshal(pt, &doc); err != nil {
		return keyringDoc{}, fmt.Errorf("vault: decode keyring: %w", err)
	}
	return doc, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return a, nil
}

func randomKey() []byte {
	k := make([]byte, MasterKeySize)
	rand.Read(k) // crypto/rand.Read never fails on supported platforms
	return k
}

// GenerateMasterKey returns a fresh random master key.
func GenerateMasterKey() []byte { return randomKey() }

// EncodeMasterKey is the text form of a master key (standard base64), as
// written to the master key file and accepted by ParseMasterKey.
func EncodeMasterKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// ParseMasterKey decodes a master key given as base64 (standard or URL,
// padded or not) or hex; it must decode to exactly 32 bytes. The error
// never echoes the input.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*MasterKeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) == MasterKeySize {
				return k, nil
			}
			return nil, fmt.Errorf("vault: master key decodes to %d bytes, want %d", len(k), MasterKeySize)
		}
	}
	return nil, fmt.Errorf("vault: master key must be %d bytes in base64 or hex", MasterKeySize)
}

// LoadMasterKey returns the master key: cfg.MasterKey (from
// XROUTE_VAULT_MASTER_KEY) wins; otherwise
// cfg.MasterKeyFile. When the file does not exist and create is true (demo,
// first start), a fresh key is written to it with mode 0600 and generated
// reports true: the caller should log "generated a master key at FILE:
// back it up", because without it the stored provider keys are lost. With
// create false a missing file is an error.
func LoadMasterKey(cfg config.Vault, create bool) (key []byte, generated bool, err error) {
	if cfg.MasterKey != "" {
		k, err := ParseMasterKey(cfg.MasterKey)
		if err != nil {
			return nil, false, fmt.Errorf("%w (from XROUTE_VAULT_MASTER_KEY or vault.master_key)", err)
		}
		return k, false, nil
	}
	if cfg.MasterKeyFile == "" {
		return nil, false, errors.New("vault: no master key: set XROUTE_VAULT_MASTER_KEY or vault.master_key_file")
	}
	data, err := os.ReadFile(cfg.MasterKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, false, fmt.Errorf("vault: master key file %s does not exist (set XROUTE_VAULT_MASTER_KEY, or create the file)", cfg.MasterKeyFile)
		}
		k := GenerateMasterKey()
		f, err := os.OpenFile(cfg.MasterKeyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			return LoadMasterKey(cfg, false) // another process created it first
		}
		if err != nil {
			return nil, false, fmt.Errorf("vault: create master key file %s: %w", cfg.MasterKeyFile, err)
		}
		_, werr := f.WriteString(EncodeMasterKey(k) + "\n")
		if serr := f.Sync(); werr == nil {
			werr = serr
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(cfg.MasterKeyFile) // never leave a half-written key behind
			return nil, false, fmt.Errorf("vault: write master key file %s: %w", cfg.MasterKeyFile, werr)
		}
		return k, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("vault: read master key file %s: %w", cfg.MasterKeyFile, err)
	}
	k, err := ParseMasterKey(string(data))
	if err != nil {
		return nil, false, fmt.Errorf("%w (in %s)", err, cfg.MasterKeyFile)
	}
	return k, false, nil
}
