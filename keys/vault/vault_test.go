package vault_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/xroute/xroute/internal/store/sqlitetest"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys/vault"
)

func TestVaultRoundTripAndFormat(t *testing.T) {
	db, _ := sqlitetest.Open(t)
	v := sqlitetest.Vault(t, db, vault.GenerateMasterKey())
	if v.ActiveTerm() != 1 || v.Terms() != 1 {
		t.Fatalf("new vault: active %d, %d terms", v.ActiveTerm(), v.Terms())
	}
	for _, pt := range [][]byte{{}, []byte("x"), []byte("sk-proj-0123456789abcdefghijklmnop"), bytes.Repeat([]byte{0xff, 0}, 5000)} {
		ct, err := v.Seal("pk_1", pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(ct) != 4+1+12+len(pt)+16 {
			t.Fatalf("ciphertext of %d bytes is %d bytes", len(pt), len(ct))
		}
		if !bytes.Equal(ct[:5], []byte{0, 0, 0, 1, 1}) || vault.Term(ct) != 1 || v.Term(ct) != 1 {
			t.Fatalf("header % x: want term 1, version 1", ct[:5])
		}
		if len(pt) > 8 && bytes.Contains(ct, pt[:8]) {
			t.Fatal("plaintext visible in ciphertext")
		}
		got, err := v.Open("pk_1", ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("open: %v (equal %v)", err, bytes.Equal(got, pt))
		}
	}
}

func TestVaultRejects(t *testing.T) {
	db, _ := sqlitetest.Open(t)
	v := sqlitetest.Vault(t, db, vault.GenerateMasterKey())
	ct, err := v.Seal("pk_1", []byte("sk-secret-value-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	unknownTerm := bytes.Clone(ct)
	unknownTerm[3] = 9
	badVersion := bytes.Clone(ct)
	badVersion[4] = 2
	tests := []struct {
		name string
		id   string
		ct   []byte
		want error
	}{
		{"other id (associated data)", "pk_2", ct, vault.ErrDecrypt},
		{"id prefix", "pk_", ct, vault.ErrDecrypt},
		{"empty id", "", ct, vault.ErrNoID},
		{"unknown term", "pk_1", unknownTerm, vault.ErrUnknownTerm},
		{"unknown version", "pk_1", badVersion, vault.ErrMalformedCiphertext},
		{"nil", "pk_1", nil, vault.ErrMalformedCiphertext},
		{"header only", "pk_1", ct[:17], vault.ErrMalformedCiphertext},
		{"no tag", "pk_1", ct[:17+15], vault.ErrMalformedCiphertext},
		{"last byte cut", "pk_1", ct[:len(ct)-1], vault.ErrDecrypt},
		{"extra byte", "pk_1", append(bytes.Clone(ct), 0), vault.ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := v.Open(tt.id, tt.ct)
			if !errors.Is(err, tt.want) || pt != nil {
				t.Fatalf("got %q, %v; want %v", pt, err, tt.want)
			}
		})
	}
	t.Run("every truncation", func(t *testing.T) {
		for n := 0; n < len(ct); n++ {
			if _, err := v.Open("pk_1", ct[:n]); err == nil {
				t.Fatalf("opened a ciphertext cut to %d bytes", n)
			}
		}
	})
	t.Run("every tampered byte", func(t *testing.T) {
		for i := range ct {
			for _, bit := range []byte{0x01, 0x80} {
				bad := bytes.Clone(ct)
				bad[i] ^= bit
				if pt, err := v.Open("pk_1", bad); err == nil {
					t.Fatalf("byte %d ^ %#x: opened to %q", i, bit, pt)
				}
			}
		}
	})
	if _, err := v.Seal("", []byte("x")); !errors.Is(err, vault.ErrNoID) {
		t.Fatalf("seal without id: %v", err)
	}
	if vault.Term(nil) != 0 || vault.Term([]byte{1, 2}) != 0 {
		t.Fatal("Term of a short ciphertext should be 0")
	}
}

func TestVaultNoncesAreUnique(t *testing.T) {
	db, _ := sqlitetest.Open(t)
	v := sqlitetest.Vault(t, db, vault.GenerateMasterKey())
	const n = 20000
	seen := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		ct, err := v.Seal("pk_1", []byte("same plaintext"))
		if err != nil {
			t.Fatal(err)
		}
		nonce := string(ct[5:17])
		if seen[nonce] {
			t.Fatalf("nonce repeated after %d seals", i)
		}
		seen[nonce] = true
	}
}

func TestVaultRotationKeepsOldCiphertexts(t *testing.T) {
	ctx := context.Background()
	db, _ := sqlitetest.Open(t)
	master := vault.GenerateMasterKey()
	v := sqlitetest.Vault(t, db, master)
	old, _ := v.Seal("pk_1", []byte("old"))
	term, err := v.Rotate(ctx)
	if err != nil || term != 2 || v.ActiveTerm() != 2 || v.Terms() != 2 {
		t.Fatalf("rotate: term %d active %d, %v", term, v.ActiveTerm(), err)
	}
	cur, _ := v.Seal("pk_1", []byte("new"))
	if vault.Term(cur) != 2 {
		t.Fatalf("new ciphertext under term %d", vault.Term(cur))
	}
	if term, _ = v.Rotate(ctx); term != 3 {
		t.Fatalf("second rotate: term %d", term)
	}
	// A fresh start (another process) sees every term.
	v2 := sqlitetest.Vault(t, db, master)
	if v2.ActiveTerm() != 3 || v2.Terms() != 3 {
		t.Fatalf("reopened: active %d, %d terms", v2.ActiveTerm(), v2.Terms())
	}
	for _, vv := range []*vault.Vault{v, v2} {
		if pt, err := vv.Open("pk_1", old); err != nil || string(pt) != "old" {
			t.Fatalf("old ciphertext: %q, %v", pt, err)
		}
		if pt, err := vv.Open("pk_1", cur); err != nil || string(pt) != "new" {
			t.Fatalf("term-2 ciphertext: %q, %v", pt, err)
		}
	}
}

func TestVaultWrongMasterKeyFailsAtOpen(t *testing.T) {
	ctx := context.Background()
	db, _ := sqlitetest.Open(t)
	sqlitetest.Vault(t, db, vault.GenerateMasterKey())
	_, err := vault.Open(ctx, db, vault.GenerateMasterKey())
	if !errors.Is(err, vault.ErrWrongMasterKey) {
		t.Fatalf("wrong master key: want ErrWrongMasterKey, got %v", err)
	}
	if _, err := vault.Open(ctx, db, make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte master key was accepted")
	}
}

func TestVaultTamperedKeyringFailsAtOpen(t *testing.T) {
	db, path := sqlitetest.Open(t)
	master := vault.GenerateMasterKey()
	sqlitetest.Vault(t, db, master)
	raw := sqlitetest.Raw(t, path)
	var blob []byte
	if err := raw.QueryRow(`SELECT blob FROM vault_keyring`).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	blob[20] ^= 1
	if _, err := raw.Exec(`UPDATE vault_keyring SET blob = ?`, blob); err != nil {
		t.Fatal(err)
	}
	if _, err := vault.Open(context.Background(), db, master); err == nil {
		t.Fatal("a tampered keyring opened")
	}
}

func TestVaultRewrapMaster(t *testing.T) {
	ctx := context.Background()
	db, _ := sqlitetest.Open(t)
	oldMaster, newMaster := vault.GenerateMasterKey(), vault.GenerateMasterKey()
	v := sqlitetest.Vault(t, db, oldMaster)
	v.Rotate(ctx)
	ct, _ := v.Seal("pk_1", []byte("kept"))
	if err := v.RewrapMaster(ctx, newMaster); err != nil {
		t.Fatal(err)
	}
	if _, err := vault.Open(ctx, db, oldMaster); !errors.Is(err, vault.ErrWrongMasterKey) {
		t.Fatalf("old master after rewrap: %v", err)
	}
	v2 := sqlitetest.Vault(t, db, newMaster)
	if v2.ActiveTerm() != 2 {
		t.Fatalf("rewrap lost the active term: %d", v2.ActiveTerm())
	}
	if pt, err := v2.Open("pk_1", ct); err != nil || string(pt) != "kept" {
		t.Fatalf("open after rewrap: %q, %v", pt, err)
	}
	// The rewrapping vault keeps working and persists under the new key.
	if _, err := v.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if v3 := sqlitetest.Vault(t, db, newMaster); v3.ActiveTerm() != 3 {
		t.Fatalf("rotation after rewrap: active %d", v3.ActiveTerm())
	}
	if err := v.RewrapMaster(ctx, []byte("short")); err == nil {
		t.Fatal("a short master key was accepted")
	}
}

func TestVaultReplicas(t *testing.T) {
	ctx := context.Background()
	db, _ := sqlitetest.Open(t)
	master := vault.GenerateMasterKey()
	a, b := sqlitetest.Vault(t, db, master), sqlitetest.Vault(t, db, master)
	if _, err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	ct, _ := a.Seal("pk_1", []byte("from a"))
	if _, err := b.Open("pk_1", ct); !errors.Is(err, vault.ErrUnknownTerm) {
		t.Fatalf("stale replica: want ErrUnknownTerm, got %v", err)
	}
	// b rotates from a stale keyring: the compare-and-swap makes it build
	// on a's term 2 instead of overwriting it.
	term, err := b.Rotate(ctx)
	if err != nil || term != 3 {
		t.Fatalf("stale rotate: term %d, %v", term, err)
	}
	if pt, err := b.Open("pk_1", ct); err != nil || string(pt) != "from a" {
		t.Fatalf("b after rotate: %q, %v", pt, err)
	}
	if err := a.Reload(ctx); err != nil || a.ActiveTerm() != 3 {
		t.Fatalf("a reload: active %d, %v", a.ActiveTerm(), err)
	}
}

func TestVaultConcurrentFirstOpen(t *testing.T) {
	db, _ := sqlitetest.Open(t)
	master := vault.GenerateMasterKey()
	vaults := make([]*vault.Vault, 6)
	var wg sync.WaitGroup
	for i := range vaults {
		wg.Go(func() {
			v, err := vault.Open(context.Background(), db, master)
			if err != nil {
				t.Error(err)
				return
			}
			vaults[i] = v
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ct, _ := vaults[0].Seal("pk_1", []byte("shared"))
	for i, v := range vaults {
		if pt, err := v.Open("pk_1", ct); err != nil || string(pt) != "shared" {
			t.Fatalf("vault %d does not share the keyring: %v", i, err)
		}
	}
}

func TestVaultConcurrentUse(t *testing.T) {
	ctx := context.Background()
	db, _ := sqlitetest.Open(t)
	v := sqlitetest.Vault(t, db, vault.GenerateMasterKey())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 200; i++ {
				ct, err := v.Seal("pk_c", []byte("concurrent"))
				if err != nil {
					t.Error(err)
					return
				}
				if pt, err := v.Open("pk_c", ct); err != nil || string(pt) != "concurrent" {
					t.Errorf("open: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := 0; i < 5; i++ {
			if _, err := v.Rotate(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if v.ActiveTerm() != 6 {
		t.Fatalf("active term %d after 5 rotations", v.ActiveTerm())
	}
}

func TestParseMasterKey(t *testing.T) {
	key := vault.GenerateMasterKey()
	good := []struct{ name, in string }{
		{"std base64", base64.StdEncoding.EncodeToString(key)},
		{"raw url base64", base64.RawURLEncoding.EncodeToString(key)},
		{"hex", hex.EncodeToString(key)},
		{"hex upper, spaces", "  " + strings.ToUpper(hex.EncodeToString(key)) + "\n"},
		{"encoded form", vault.EncodeMasterKey(key)},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vault.ParseMasterKey(tt.in)
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("got %x, %v", got, err)
			}
		})
	}
	bad := []struct{ name, in string }{
		{"empty", ""},
		{"16 bytes", base64.StdEncoding.EncodeToString(key[:16])},
		{"33 bytes hex", hex.EncodeToString(append(bytes.Clone(key), 1))},
		{"passphrase", "correct horse battery staple!!"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := vault.ParseMasterKey(tt.in)
			if err == nil {
				t.Fatal("accepted")
			}
			if tt.in != "" && strings.Contains(err.Error(), tt.in) {
				t.Fatalf("error echoes the input: %v", err)
			}
		})
	}
}

func TestLoadMasterKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "xroute.master")
	cfg := config.Vault{MasterKeyFile: file}

	if _, _, err := vault.LoadMasterKey(cfg, false); err == nil {
		t.Fatal("missing file without create: no error")
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("file created without create")
	}
	k1, generated, err := vault.LoadMasterKey(cfg, true)
	if err != nil || !generated || len(k1) != vault.MasterKeySize {
		t.Fatalf("create: %d bytes, generated %v, %v", len(k1), generated, err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	k2, generated, err := vault.LoadMasterKey(cfg, true)
	if err != nil || generated || !bytes.Equal(k1, k2) {
		t.Fatalf("reload: generated %v, same %v, %v", generated, bytes.Equal(k1, k2), err)
	}

	env := vault.GenerateMasterKey()
	k3, generated, err := vault.LoadMasterKey(config.Vault{MasterKey: hex.EncodeToString(env), MasterKeyFile: file}, true)
	if err != nil || generated || !bytes.Equal(k3, env) {
		t.Fatalf("env should win over the file: %v", err)
	}
	if _, _, err := vault.LoadMasterKey(config.Vault{MasterKey: "not-a-key"}, true); err == nil {
		t.Fatal("bad env key accepted")
	}
	os.WriteFile(file, []byte("garbage\n"), 0o600)
	if _, _, err := vault.LoadMasterKey(cfg, true); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("bad file: %v", err)
	}
}
