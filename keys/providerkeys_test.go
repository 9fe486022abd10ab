package keys_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/store/sqlitetest"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/xroute/xroute/internal/dberr"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/vault"
)

const pkTestSecret = "sk-proj-Zq81xWm4Lk2Hs9Pd0Tn7abcd"

type pkFixture struct {
	db    *store.DB
	path  string
	vault *vault.Vault
	pk    *keys.ProviderKeys
}

func newPKFixture(t *testing.T) pkFixture {
	t.Helper()
	db, path := sqlitetest.Open(t)
	v := sqlitetest.Vault(t, db, vault.GenerateMasterKey())
	clock := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return pkFixture{db: db, path: path, vault: v, pk: keys.NewProviderKeys(db, v, func() time.Time { return clock })}
}

func TestProviderKeysAddListActive(t *testing.T) {
	ctx := context.Background()
	f := newPKFixture(t)
	k, err := f.pk.Add(ctx, "openai", "main", "  "+pkTestSecret+"\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.ID, "pk_") || k.Hint != "sk-…abcd" || k.Weight != 1 || k.Status != keys.ProviderKeyActive || k.Term != 1 {
		t.Fatalf("added: %+v", k)
	}
	if _, err := f.pk.Add(ctx, "openai", "backup", "sk-other-secret-0123456789", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pk.Add(ctx, "anthropic", "main", "sk-ant-0123456789abcdef", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pk.Add(ctx, "openai", "main", "sk-dup-0123456789abcdef", 1); !errors.Is(err, dberr.ErrConflict) {
		t.Fatalf("duplicate name: want ErrConflict, got %v", err)
	}

	list, err := f.pk.List(ctx, "openai")
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	all, _ := f.pk.List(ctx, "")
	if len(all) != 3 {
		t.Fatalf("list all: %d", len(all))
	}
	js, _ := json.Marshal(all)
	if strings.Contains(string(js), pkTestSecret[3:20]) || strings.Contains(fmt.Sprintf("%+v", all), pkTestSecret[3:20]) {
		t.Fatalf("List leaks the secret: %s", js)
	}

	// The stored row holds ciphertext only.
	row, _ := f.db.ProviderKeyByID(ctx, k.ID)
	if bytes.Contains(row.Ciphertext, []byte(pkTestSecret[3:12])) {
		t.Fatal("secret stored in clear")
	}

	active, err := f.pk.Active(ctx, "openai")
	if err != nil || len(active) != 2 {
		t.Fatalf("active: %d, %v", len(active), err)
	}
	byName := map[string]keys.Secret{}
	for _, s := range active {
		byName[s.Name] = s
	}
	main, backup := byName["main"], byName["backup"]
	if main.ID != k.ID || main.Value.Reveal() != pkTestSecret || main.Provider != "openai" || backup.Weight != 3 ||
		backup.Value.Reveal() != "sk-other-secret-0123456789" {
		t.Fatalf("active = %v", active)
	}
}

func TestProviderKeysValidation(t *testing.T) {
	f := newPKFixture(t)
	tests := []struct {
		name, provider, keyName, secret string
		weight                          int
	}{
		{"no provider", "", "n", pkTestSecret, 1},
		{"no name", "openai", " ", pkTestSecret, 1},
		{"long name", "openai", strings.Repeat("n", 65), pkTestSecret, 1},
		{"empty secret", "openai", "n", " \n", 1},
		{"huge secret", "openai", "n", strings.Repeat("k", 65<<10), 1},
		{"binary secret", "openai", "n", "sk-\xff\xfe", 1},
		{"nul in secret", "openai", "n", "sk-a\x00b", 1},
		{"negative weight", "openai", "n", pkTestSecret, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.pk.Add(context.Background(), tt.provider, tt.keyName, tt.secret, tt.weight)
			if !errors.Is(err, keys.ErrInvalidProviderKey) {
				t.Fatalf("want ErrInvalidProviderKey, got %v", err)
			}
			if len(tt.secret) > 6 && strings.Contains(err.Error(), tt.secret) {
				t.Fatal("error echoes the secret")
			}
		})
	}
}

func TestProviderKeysDisableEnableDelete(t *testing.T) {
	ctx := context.Background()
	f := newPKFixture(t)
	k, _ := f.pk.Add(ctx, "openai", "main", pkTestSecret, 1)
	if err := f.pk.Disable(ctx, k.ID, "upstream 401"); err != nil {
		t.Fatal(err)
	}
	if act, _ := f.pk.Active(ctx, "openai"); len(act) != 0 {
		t.Fatalf("disabled key still active: %d", len(act))
	}
	got, err := f.pk.Get(ctx, k.ID)
	if err != nil || got.Status != keys.ProviderKeyDisabled || got.DisabledReason != "upstream 401" {
		t.Fatalf("after disable: %+v, %v", got, err)
	}
	if err := f.pk.Enable(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.pk.Get(ctx, k.ID); got.Status != keys.ProviderKeyActive || got.DisabledReason != "" {
		t.Fatalf("after enable: %+v", got)
	}
	if act, _ := f.pk.Active(ctx, "openai"); len(act) != 1 {
		t.Fatalf("enabled key not active: %d", len(act))
	}
	if err := f.pk.Delete(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"get":     func() error { _, err := f.pk.Get(ctx, k.ID); return err }(),
		"disable": f.pk.Disable(ctx, k.ID, ""),
		"enable":  f.pk.Enable(ctx, k.ID),
		"delete":  f.pk.Delete(ctx, k.ID),
	} {
		if !errors.Is(err, dberr.ErrNotFound) {
			t.Errorf("%s of a deleted key: want ErrNotFound, got %v", name, err)
		}
	}
}

func TestProviderKeyCopiedToAnotherRowFails(t *testing.T) {
	ctx := context.Background()
	f := newPKFixture(t)
	a, _ := f.pk.Add(ctx, "openai", "a", pkTestSecret, 1)
	b, _ := f.pk.Add(ctx, "openai", "b", "sk-b-0123456789abcdefgh", 1)
	raw := sqlitetest.Raw(t, f.path)
	if _, err := raw.Exec(`UPDATE provider_keys SET ciphertext = (SELECT ciphertext FROM provider_keys WHERE id = ?) WHERE id = ?`, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	_, err := f.pk.Active(ctx, "openai")
	if !errors.Is(err, vault.ErrDecrypt) || !strings.Contains(err.Error(), b.ID) {
		t.Fatalf("copied ciphertext: want ErrDecrypt naming %s, got %v", b.ID, err)
	}
}

func TestSecretValueNeverPrints(t *testing.T) {
	s := keys.Secret{ID: "pk_1", Provider: "openai", Weight: 1, Value: keys.NewSecretValue(pkTestSecret)}
	leak := pkTestSecret[3:12]
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.4s", "%T"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, s.Value), fmt.Sprintf(verb, &s))
	}
	outs = append(outs, s.Value.String(), s.Value.GoString(), fmt.Sprint(s.Value), fmt.Sprintln(s))
	js, _ := json.Marshal(s)
	outs = append(outs, string(js))
	txt, _ := s.Value.MarshalText()
	outs = append(outs, string(txt))

	var sl bytes.Buffer
	slog.New(slog.NewJSONHandler(&sl, nil)).Info("k", "secret", s, "value", s.Value)
	slog.New(slog.NewTextHandler(&sl, nil)).Info("k", "secret", s, "value", s.Value)
	outs = append(outs, sl.String())

	var zb bytes.Buffer
	zl := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&zb), zapcore.DebugLevel))
	zl.Info("k", zap.Any("secret", s), zap.Any("value", s.Value), zap.Stringer("str", s.Value), zap.Reflect("refl", s))
	zc := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(&zb), zapcore.DebugLevel))
	zc.Info("k", zap.Any("secret", s), zap.Any("value", s.Value))
	outs = append(outs, zb.String())

	for _, o := range outs {
		if strings.Contains(o, leak) || strings.Contains(o, fmt.Sprintf("%x", leak)) {
			t.Fatalf("secret leaked: %s", o)
		}
	}
	if !strings.Contains(fmt.Sprint(s.Value), "sk-…abcd") {
		t.Fatalf("mask should be the hint, got %s", s.Value)
	}
	if s.Value.Reveal() != pkTestSecret {
		t.Fatal("Reveal lost the secret")
	}
	if (keys.SecretValue{}).String() != "…" {
		t.Fatalf("zero value prints %q", keys.SecretValue{}.String())
	}
}

func TestMaskSecret(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sk-proj-0123456789abcdefWXYZ", "sk-…WXYZ"},
		{"0123456789abcdef", "012…cdef"},
		{"0123456789abcde", "…de"},
		{"01234567", "…67"},
		{"0123456", "…"},
		{"", "…"},
		{"ключ-секрет-очень-длинный", "клю…нный"},
	}
	for _, tt := range tests {
		if got := keys.MaskSecret(tt.in); got != tt.want {
			t.Errorf("MaskSecret(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReencryptAfterRotation(t *testing.T) {
	ctx := context.Background()
	f := newPKFixture(t)
	secrets := map[string]string{}
	for i := 0; i < 12; i++ {
		s := fmt.Sprintf("sk-key-%02d-0123456789abcdef", i)
		k, err := f.pk.Add(ctx, "openai", fmt.Sprint("k", i), s, 1)
		if err != nil {
			t.Fatal(err)
		}
		secrets[k.ID] = s
	}
	if _, err := f.vault.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// A key added after the rotation is already under term 2.
	k, _ := f.pk.Add(ctx, "openai", "late", "sk-late-0123456789abcdef", 1)
	secrets[k.ID] = "sk-late-0123456789abcdef"

	// Readers keep working while the re-encryption runs.
	stop := make(chan struct{})
	var reads atomic.Int64
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				act, err := f.pk.Active(ctx, "openai")
				if err != nil {
					t.Errorf("reader: %v", err)
					return
				}
				for _, s := range act {
					if s.Value.Reveal() != secrets[s.ID] {
						t.Errorf("reader: key %s decrypted wrong", s.ID)
						return
					}
				}
				reads.Add(1)
			}
		})
	}
	var calls []string
	err := f.pk.Reencrypt(ctx, func(done, total int) { calls = append(calls, fmt.Sprintf("%d/%d", done, total)) })
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 12 || calls[0] != "1/12" || calls[11] != "12/12" {
		t.Fatalf("progress calls: %v", calls)
	}
	list, _ := f.pk.List(ctx, "")
	for _, k := range list {
		row, _ := f.db.ProviderKeyByID(ctx, k.ID)
		if k.Term != 2 || vault.Term(row.Ciphertext) != 2 {
			t.Fatalf("key %s still under term %d (ciphertext %d)", k.ID, k.Term, vault.Term(row.Ciphertext))
		}
	}
	act, err := f.pk.Active(ctx, "openai")
	if err != nil || len(act) != 13 {
		t.Fatalf("after re-encrypt: %d, %v", len(act), err)
	}
	for _, s := range act {
		if s.Value.Reveal() != secrets[s.ID] {
			t.Fatalf("key %s decrypts wrong after re-encrypt", s.ID)
		}
	}
	// Nothing left to do: a second run touches nothing.
	calls = nil
	if err := f.pk.Reencrypt(ctx, func(done, total int) { calls = append(calls, "x") }); err != nil || len(calls) != 0 {
		t.Fatalf("second run: %d calls, %v", len(calls), err)
	}
	if reads.Load() == 0 {
		t.Log("note: readers did not overlap the re-encryption")
	}
}

func TestReencryptContinuesPastABadRow(t *testing.T) {
	ctx := context.Background()
	f := newPKFixture(t)
	a, _ := f.pk.Add(ctx, "openai", "a", "sk-a-0123456789abcdefgh", 1)
	b, _ := f.pk.Add(ctx, "openai", "b", "sk-b-0123456789abcdefgh", 1)
	c, _ := f.pk.Add(ctx, "openai", "c", "sk-c-0123456789abcdefgh", 1)
	f.vault.Rotate(ctx)
	raw := sqlitetest.Raw(t, f.path)
	if _, err := raw.Exec(`UPDATE provider_keys SET ciphertext = (SELECT ciphertext FROM provider_keys WHERE id = ?) WHERE id = ?`, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	err := f.pk.Reencrypt(ctx, nil)
	if !errors.Is(err, vault.ErrDecrypt) || !strings.Contains(err.Error(), b.ID) {
		t.Fatalf("want ErrDecrypt naming %s, got %v", b.ID, err)
	}
	for _, id := range []string{a.ID, c.ID} {
		if k, _ := f.pk.Get(ctx, id); k.Term != 2 {
			t.Fatalf("good key %s not re-encrypted (term %d)", id, k.Term)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.pk.Reencrypt(cctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestProviderKeysStaleReplicaReloads(t *testing.T) {
	ctx := context.Background()
	db, _ := sqlitetest.Open(t)
	master := vault.GenerateMasterKey()
	now := time.Now
	va, vb := sqlitetest.Vault(t, db, master), sqlitetest.Vault(t, db, master)
	pa, pb := keys.NewProviderKeys(db, va, now), keys.NewProviderKeys(db, vb, now)
	if _, err := pa.Add(ctx, "openai", "a", pkTestSecret, 1); err != nil {
		t.Fatal(err)
	}
	// Replica A rotates and re-encrypts; replica B still holds term 1 only.
	if _, err := va.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pa.Reencrypt(ctx, nil); err != nil {
		t.Fatal(err)
	}
	act, err := pb.Active(ctx, "openai")
	if err != nil || len(act) != 1 || act[0].Value.Reveal() != pkTestSecret {
		t.Fatalf("stale replica: %v", err)
	}
	if vb.ActiveTerm() != 2 {
		t.Fatalf("replica B did not reload: active %d", vb.ActiveTerm())
	}
}

// pkRacingStore runs interfere just before the first ciphertext swap of
// each row, standing in for another replica working at the same moment.
type pkRacingStore struct {
	*store.DB
	interfere func(id string)
	seen      map[string]bool
}

func (s *pkRacingStore) SwapProviderKeyCiphertext(ctx context.Context, id string, old, ct []byte, term uint32, at time.Time) error {
	if !s.seen[id] {
		s.seen[id] = true
		s.interfere(id)
	}
	return s.DB.SwapProviderKeyCiphertext(ctx, id, old, ct, term, at)
}

func TestReencryptRacesAnotherWriter(t *testing.T) {
	ctx := context.Background()
	f := newPKFixture(t)
	a, _ := f.pk.Add(ctx, "openai", "a", "sk-a-0123456789abcdefgh", 1)
	b, _ := f.pk.Add(ctx, "openai", "b", "sk-b-0123456789abcdefgh", 1)
	f.vault.Rotate(ctx)
	rs := &pkRacingStore{DB: f.db, seen: map[string]bool{}}
	rs.interfere = func(id string) {
		if id == b.ID { // deleted meanwhile
			if err := f.db.DeleteProviderKey(ctx, id); err != nil {
				t.Error(err)
			}
			return
		}
		// Re-encrypted meanwhile by someone else: our swap conflicts.
		row, _ := f.db.ProviderKeyByID(ctx, id)
		pt, _ := f.vault.Open(id, row.Ciphertext)
		ct, _ := f.vault.Seal(id, pt)
		if err := f.db.SwapProviderKeyCiphertext(ctx, id, row.Ciphertext, ct, vault.Term(ct), time.Now()); err != nil {
			t.Error(err)
		}
	}
	pk := keys.NewProviderKeys(rs, f.vault, time.Now)
	if err := pk.Reencrypt(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got, err := pk.Active(ctx, "openai")
	if err != nil || len(got) != 1 || got[0].ID != a.ID || got[0].Value.Reveal() != "sk-a-0123456789abcdefgh" {
		t.Fatalf("after racing re-encrypt: %v, %v", got, err)
	}
	if k, _ := pk.Get(ctx, a.ID); k.Term != 2 {
		t.Fatalf("term %d", k.Term)
	}
}
