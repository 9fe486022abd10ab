package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
	"github.com/xroute/xroute/loadtest/mock"
	"github.com/xroute/xroute/providers/catalog"
)

// priced makes the mock deployment cost 1000 USD / 2000 USD per million
// prompt / completion tokens, so a request costs a visible amount.
func priced(c *config.Config) {
	for i := range c.Models {
		for j := range c.Models[i].Deployments {
			c.Models[i].Deployments[j].InputPrice = "1000"
			c.Models[i].Deployments[j].OutputPrice = "2000"
		}
	}
}

// TestConcurrentSpendNeverOverdraws: 200 simultaneous requests against a
// balance that covers 50 at their maximum cost. The balance never goes
// below zero, refusals are OpenAI's insufficient_quota and never reach the
// upstream, and afterwards top-ups − debits = balance exactly, with one
// usage record and one ledger debit per served request.
func TestConcurrentSpendNeverOverdraws(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: priced})
	ctx := context.Background()
	const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}],"max_tokens":8}`

	est, err := billing.NewEstimator()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := catalog.ParsePrice("1000")
	out, _ := catalog.ParsePrice("2000")
	maxCost := billing.MaxCost(catalog.Model{Input: in, Output: out, CachedInput: in}, est.PromptTokens([]byte(body)), 8, 0)
	topUp := 50 * maxCost
	if _, _, err := g.app.Ledger.TopUp(ctx, keys.DefaultAccountID, topUp, "t1", "test"); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	codes := map[string]int{}
	start := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, b, h := call(t, "POST", g.base+"/chat/completions", g.key, body)
			mu.Lock()
			defer mu.Unlock()
			statuses[st]++
			if st == 429 {
				codes[errCode(b)]++
				if h.Get("x-should-retry") != "false" {
					t.Error("insufficient_quota must carry x-should-retry: false")
				}
			}
		}()
	}
	close(start)
	wg.Wait()

	served := statuses[200]
	if served < 50 || statuses[200]+statuses[429] != 200 || codes["insufficient_quota"] != statuses[429] {
		t.Fatalf("statuses %v codes %v", statuses, codes)
	}
	bal, reserved, _, err := g.app.Ledger.Balance(ctx, keys.DefaultAccountID)
	if err != nil {
		t.Fatal(err)
	}
	recs := g.usage()
	var charged int64
	servedRecs := 0
	for _, r := range recs {
		charged += r.CostNano
		if r.Status == 200 {
			servedRecs++
			if r.CostNano <= 0 || r.CostNano > int64(maxCost) {
				t.Fatalf("record cost %d outside (0, %d]", r.CostNano, maxCost)
			}
		}
	}
	entries, err := g.app.Ledger.Entries(ctx, keys.DefaultAccountID, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	debits := 0
	var debited int64
	for _, e := range entries {
		if e.Kind == "usage" {
			debits++
			debited -= int64(e.Amount)
		}
	}
	mm, err := g.app.Ledger.Verify(ctx)
	if err != nil || len(mm) != 0 {
		t.Fatalf("ledger verify: %v %v", mm, err)
	}
	t.Logf("200 concurrent requests, balance for 50 at max cost: %d served, %d refused (insufficient_quota); top-up %s, charged %s, balance %s USD",
		served, statuses[429], topUp, billing.Nano(charged), bal)
	switch {
	case bal < 0:
		t.Fatalf("balance went negative: %s", bal)
	case reserved != 0:
		t.Fatalf("reservations left after every request ended: %s", reserved)
	case int64(bal) != int64(topUp)-charged || debited != charged:
		t.Fatalf("top-up %d − charged %d != balance %d (debited %d)", topUp, charged, bal, debited)
	case servedRecs != served || debits != served:
		t.Fatalf("served %d, records %d, debits %d: must reconcile one to one", served, servedRecs, debits)
	case g.primary.Stats().Chat != int64(served):
		t.Fatalf("the upstream saw %d requests, %d were served: refusals must not reach it", g.primary.Stats().Chat, served)
	}
}

func TestCreditsEndpointsAndTopUpIdempotency(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: priced})
	admin := g.adminKey(t)
	base := g.srv.URL + "/admin/v1/accounts/" + keys.DefaultAccountID
	st, b, _ := call(t, "POST", base+"/credits", admin, `{"amount":"10.00","idempotency_key":"k1"}`)
	if st != 201 || b["replayed"] != false {
		t.Fatalf("top-up: %d %v", st, b)
	}
	st, b, _ = call(t, "POST", base+"/credits", admin, `{"amount":"10.00","idempotency_key":"k1"}`)
	if st != 200 || b["replayed"] != true {
		t.Fatalf("replay: %d %v", st, b)
	}
	if st, b, _ := call(t, "POST", base+"/credits", admin, `{"amount":"20.00","idempotency_key":"k1"}`); st != 409 || errCode(b) != "idempotency_conflict" {
		t.Fatalf("same key, other amount: %d %v", st, b)
	}
	for _, bad := range []string{`{"amount":"-1","idempotency_key":"x"}`, `{"amount":"ten","idempotency_key":"x"}`, `{"amount":"1.00"}`} {
		if st, _, _ := call(t, "POST", base+"/credits", admin, bad); st != 400 {
			t.Errorf("%s: %d", bad, st)
		}
	}
	if st, _, _ := call(t, "POST", g.base+"/chat/completions", g.key, chatBody); st != 200 {
		t.Fatalf("a funded request: %d", st)
	}
	st, own, _ := call(t, "GET", g.base+"/credits", g.key, "")
	if st != 200 || own["account_id"] != keys.DefaultAccountID || own["balance_usd"] == "10.00" {
		t.Fatalf("caller credits after one request: %d %v", st, own)
	}
	bal, _ := strconv.ParseInt(strconv.FormatFloat(own["balance_nano"].(float64), 'f', 0, 64), 10, 64)
	if bal >= 10_000_000_000 || bal <= 0 {
		t.Fatalf("balance after a charge: %d", bal)
	}
	if st, v, _ := call(t, "GET", g.srv.URL+"/admin/v1/credits/verify", admin, ""); st != 200 || v["ok"] != true {
		t.Fatalf("verify: %d %v", st, v)
	}
	// A caller key cannot read another account's credits: /v1/credits has no
	// account parameter, and admin routes refuse caller keys.
	if st, _, _ := call(t, "GET", base+"/credits", g.key, ""); st != 403 {
		t.Fatalf("caller on admin credits: %d", st)
	}
}

// TestBudgetHardStop: a daily account budget stops spending once reached,
// with OpenAI's non-retryable 429, and the alert lands in the audit log.
func TestBudgetHardStop(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{mutate: priced})
	admin := g.adminKey(t)
	ctx := context.Background()
	g.app.Ledger.TopUp(ctx, keys.DefaultAccountID, 100*billing.NanoPerUSD, "t", "test")
	st, b, _ := call(t, "POST", g.srv.URL+"/admin/v1/budgets", admin, `{"scope":"account","scope_id":"`+keys.DefaultAccountID+`","period":"daily","limit_usd":"0.20"}`)
	if st != 200 {
		t.Fatalf("set budget: %d %v", st, b)
	}
	served, stopped := 0, 0
	for i := 0; i < 20 && stopped == 0; i++ {
		st, b, h := call(t, "POST", g.base+"/chat/completions", g.key, chatBody)
		switch {
		case st == 200:
			served++
		case st == 429 && errCode(b) == "budget_exceeded" && h.Get("x-should-retry") == "false":
			stopped++
		default:
			t.Fatalf("request %d: %d %v", i, st, b)
		}
	}
	if served == 0 || stopped != 1 {
		t.Fatalf("served %d, stopped %d", served, stopped)
	}
	var spent int64
	for _, r := range g.usage() {
		spent += r.CostNano
	}
	if spent > 200_000_000 {
		t.Fatalf("spent %d nano-USD past a 0.20 USD budget", spent)
	}
	testutil.Eventually(t, "a budget alert in the audit log", func() bool {
		events, _ := g.app.Audit.List(ctx, auditlog.Filter{Kind: "budget.alert"})
		return len(events) > 0
	})
}

// TestStreamWithoutUsageIsEstimated: an upstream that never reports usage
// is charged by counting the delivered text, and the record says so.
func TestStreamWithoutUsageIsEstimated(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, piece := range []string{"Hello", " there,", " friend."} {
			fmt.Fprintf(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", piece)
		}
		fmt.Fprint(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	}))
	defer up.Close()
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "nousage", Type: "openai", BaseURL: up.URL})
		c.Models = append(c.Models, config.Model{Name: "quiet", Deployments: []config.Deployment{{Provider: "nousage", Model: "m", InputPrice: "1000", OutputPrice: "2000"}}})
	}})
	g.app.Ledger.TopUp(context.Background(), keys.DefaultAccountID, 10*billing.NanoPerUSD, "t", "test")
	req, _ := http.NewRequest("POST", g.base+"/chat/completions", strings.NewReader(`{"model":"quiet","stream":true,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+g.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	rec := g.usageFor(resp.Header.Get("x-request-id"))
	if !rec.Estimated || rec.CompletionTokens < 4 || rec.PromptTokens == 0 || rec.CostNano <= 0 {
		t.Fatalf("record %+v", rec)
	}
}

// TestHedgedModelHoldsForTwoAttempts: a hedged request can complete on
// two deployments and pay for both, so its hold covers two maximum costs;
// a balance of 1.5 maximum costs serves it only without hedging.
func TestHedgedModelHoldsForTwoAttempts(t *testing.T) {
	t.Parallel()
	const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}],"max_tokens":8}`
	est, err := billing.NewEstimator()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := catalog.ParsePrice("1000")
	out, _ := catalog.ParsePrice("2000")
	maxCost := billing.MaxCost(catalog.Model{Input: in, Output: out, CachedInput: in}, est.PromptTokens([]byte(body)), 8, 0)
	for _, c := range []struct {
		name   string
		hedge  bool
		status int
	}{{"not hedged", false, 200}, {"hedged", true, 429}} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t, gwOptions{backup: &mock.Config{}, mutate: func(cfg *config.Config) {
				priced(cfg)
				cfg.Routing.Hedge.Enabled = c.hedge
			}})
			if _, _, err := g.app.Ledger.TopUp(context.Background(), keys.DefaultAccountID, maxCost*3/2, "t", "test"); err != nil {
				t.Fatal(err)
			}
			st, b, _ := call(t, "POST", g.base+"/chat/completions", g.key, body)
			if st != c.status || (st == 429 && errCode(b) != "insufficient_quota") {
				t.Fatalf("status %d (%s), want %d", st, b, c.status)
			}
		})
	}
}

// TestRequestWithoutMaxTokensIsNotFree: a deployment priced in the config
// and absent from the catalog has no known output limit. A request that
// sets no max_tokens must still reserve a completion (DefaultMaxOutput),
// or an account without the credits would be served, for free when the
// prompt is free.
func TestRequestWithoutMaxTokensIsNotFree(t *testing.T) {
	t.Parallel()
	const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}`
	for _, c := range []struct {
		name, input string
		credit      billing.Nano
	}{
		{"free prompt, no credits", "0", 0},
		{"balance covers the prompt only", "1000", 1_000_000},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t, gwOptions{mutate: func(cfg *config.Config) {
				for i := range cfg.Models {
					for j := range cfg.Models[i].Deployments {
						cfg.Models[i].Deployments[j].InputPrice = c.input
						cfg.Models[i].Deployments[j].OutputPrice = "2000"
					}
				}
			}})
			if c.credit > 0 {
				if _, _, err := g.app.Ledger.TopUp(context.Background(), keys.DefaultAccountID, c.credit, "t", "test"); err != nil {
					t.Fatal(err)
				}
			}
			st, b, _ := call(t, "POST", g.base+"/chat/completions", g.key, body)
			if st != 429 || errCode(b) != "insufficient_quota" {
				t.Fatalf("status %d (%s); want 429 insufficient_quota", st, b)
			}
			if n := g.primary.Stats().Chat; n != 0 {
				t.Fatalf("the upstream saw %d requests", n)
			}
		})
	}
}
