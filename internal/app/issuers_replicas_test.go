package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/exchange/oidctest"
	"github.com/xroute/xroute/internal/store/storetest"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
)

// TestIssuerChangeReachesTheOtherReplica: two replicas on one PostgreSQL
// and Redis, polling the stored issuers only once an hour; an issuer
// added through one replica's admin API is trusted by the other (the
// Redis fan-out delivered it), and deleted through the other it is
// refused by the first.
func TestIssuerChangeReachesTheOtherReplica(t *testing.T) {
	redisURL := os.Getenv("XROUTE_TEST_REDIS_URL")
	if redisURL == "" {
		t.Skip("integration test: set XROUTE_TEST_REDIS_URL and XROUTE_TEST_POSTGRES_URL to run it; .ci/run does")
	}
	pgURL := storetest.Postgres(t)
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Database.URL = pgURL
	cfg.Redis.URL = redisURL
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	ctx := context.Background()
	var bases []string
	var admin string
	for i := range 2 {
		c := cfg
		c.Usage.SpoolDir = filepath.Join(dir, "spool", string(rune('a'+i)))
		a, err := Build(ctx, c, zap.NewNop(), WithIssuerPoll(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler)
		t.Cleanup(func() { srv.Close(); a.Close() })
		bases = append(bases, srv.URL)
		if i == 0 {
			if admin, _, err = a.Keys.Create(ctx, keys.CreateParams{Name: "ops", Kind: keys.KindAdmin}); err != nil {
				t.Fatal(err)
			}
		}
	}
	is := oidctest.New(t)
	call := func(method, u, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}
	exchangeOn := func(base string) int {
		t.Helper()
		form := url.Values{"grant_type": {exchange.GrantTokenExchange}, "subject_token_type": {exchange.TokenTypeJWT},
			"subject_token": {is.Sign(is.Kubernetes("ml-a", "inference"))}}
		resp, err := http.PostForm(base+"/v1/auth/token", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// eventually polls the other replica: the message crosses Redis
	// asynchronously.
	eventually := func(base string, want int) {
		t.Helper()
		testutil.Eventually(t, fmt.Sprintf("an exchange on %s to answer %d", base, want), func() bool { return exchangeOn(base) == want })
	}

	if st := exchangeOn(bases[1]); st != 400 {
		t.Fatalf("before the issuer is added: %d", st)
	}
	doc := `{"issuer":"` + is.URL + `","audiences":["xroute"],"rules":[{"name":"k8s","claims":{"kubernetes.io.namespace":"ml-*"},"account":"` + keys.DefaultAccountID + `","key":{"ttl":"10m"}}]}`
	st, created := call("POST", bases[0]+"/admin/v1/issuers", doc)
	if st != 201 {
		t.Fatalf("add through replica 0: %d %v", st, created)
	}
	if st := exchangeOn(bases[0]); st != 200 {
		t.Fatalf("on the replica that added it: %d", st)
	}
	eventually(bases[1], 200)
	if st, out := call("DELETE", bases[1]+"/admin/v1/issuers/"+created["id"].(string), ""); st != 200 {
		t.Fatalf("delete through replica 1: %d %v", st, out)
	}
	if st := exchangeOn(bases[1]); st != 400 {
		t.Fatalf("on the replica that deleted it: %d", st)
	}
	eventually(bases[0], 400)
}
