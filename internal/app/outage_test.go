package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/internal/store/storetest"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/loadtest/mock"
)

// cutProxy forwards TCP to a target and can be cut (every connection
// closed, new ones refused) and restored on the same address: PostgreSQL
// going away and coming back, as a replica sees it.
type cutProxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	p := &cutProxy{t: t, target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.cut(); p.wg.Wait() })
	return p
}

func (p *cutProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *cutProxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("re-listen on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// TestPostgresOutage cuts a replica off its PostgreSQL in the middle of
// a stream: new requests get 503 store_unavailable, the stream finishes,
// its usage record waits in the local spool, and once the database is
// back the replica serves again and the record reaches PostgreSQL.
func TestPostgresOutage(t *testing.T) {
	pgURL := storetest.Postgres(t) // skips without XROUTE_TEST_POSTGRES_URL
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.addr

	// 40 tokens at 20 tokens/s: a 2 s stream, long enough to cut the
	// database under it.
	up := httptest.NewServer(mock.New(mock.Config{TokensPerSec: 20, CompletionTokens: 40}))
	defer up.Close()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Database.URL = u.String()
	cfg.Auth.PepperFile = filepath.Join(dir, "pepper")
	cfg.Vault.MasterKeyFile = filepath.Join(dir, "master")
	cfg.Usage.SpoolDir = filepath.Join(dir, "spool")
	cfg.Usage.FlushInterval = 20 * time.Millisecond
	cfg.Providers = []config.Provider{{Name: "up", Type: "openai", BaseURL: up.URL + "/v1"}}
	cfg.Models = []config.Model{{Name: "m", Deployments: []config.Deployment{{Provider: "up", Model: "m", Free: true}}}}
	a, err := Build(context.Background(), cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	defer func() { srv.Close(); a.Close() }()
	key, _, err := a.Keys.Create(context.Background(), keys.CreateParams{Name: "app"})
	if err != nil {
		t.Fatal(err)
	}
	var served []string // request ids answered 200: each must get its record
	post := func(body string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			served = append(served, resp.Header.Get("x-request-id"))
		}
		return resp
	}
	errCode := func(resp *http.Response) string {
		defer resp.Body.Close()
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return e.Error.Code
	}
	if resp := post(`{"model":"m","messages":[{"role":"user","content":"warm"}],"max_tokens":2}`); resp.StatusCode != 200 {
		t.Fatalf("before the outage: %d %s", resp.StatusCode, errCode(resp))
	} else {
		resp.Body.Close()
	}

	stream := post(`{"model":"m","stream":true,"messages":[{"role":"user","content":"a long answer"}]}`)
	if stream.StatusCode != 200 {
		t.Fatalf("stream: %d", stream.StatusCode)
	}
	streamID := stream.Header.Get("x-request-id")
	cutAt := time.Now()
	proxy.cut()

	// New requests are refused with a clear 503 once the replica notices.
	testutil.Eventually(t, "a new request refused 503 after the database went away", func() bool {
		resp := post(`{"model":"m","messages":[{"role":"user","content":"during"}],"max_tokens":2}`)
		if resp.StatusCode != 503 {
			resp.Body.Close()
			return false
		}
		if code := errCode(resp); code != "store_unavailable" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("503 with code %q, Retry-After %q", code, resp.Header.Get("Retry-After"))
		}
		return true
	})
	refusedAfter := time.Since(cutAt)
	if refusedAfter > 5*time.Second {
		t.Fatalf("new requests still served %v after the database went away; want under 5 s", refusedAfter)
	}
	if hz, err := http.Get(srv.URL + "/healthz"); err != nil || hz.StatusCode != 503 {
		t.Fatalf("/healthz during the outage: %v %v", hz, err)
	} else {
		hz.Body.Close()
	}

	// The stream in flight finishes whole.
	done := false
	sc := bufio.NewScanner(stream.Body)
	for sc.Scan() {
		if sc.Text() == "data: [DONE]" {
			done = true
		}
	}
	stream.Body.Close()
	if !done {
		t.Fatal("the stream in flight did not finish")
	}
	spooled, _ := a.Recorder.Spooled()
	if !a.Recorder.Outage() || spooled == 0 {
		t.Fatalf("recorder outage=%v with %d records spooled; want the stream's record waiting in the spool", a.Recorder.Outage(), spooled)
	}

	restoredAt := time.Now()
	proxy.restore()
	testutil.Eventually(t, "a request served after the database came back", func() bool {
		resp := post(`{"model":"m","messages":[{"role":"user","content":"after"}],"max_tokens":2}`)
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	servedAfter := time.Since(restoredAt)
	if servedAfter > 10*time.Second {
		t.Fatalf("not served until %v after the database came back; want under 10 s", servedAfter)
	}
	db, err := store.OpenPostgres(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	missing := len(served)
	replayed := testutil.Wait(testutil.Timeout, func() bool {
		recs, err := db.ListUsage(context.Background(), books.UsageFilter{})
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]books.UsageRecord{}
		for _, r := range recs {
			byID[r.RequestID] = r
		}
		missing = 0
		for _, id := range served {
			if _, ok := byID[id]; !ok {
				missing++
			}
		}
		return missing == 0 && byID[streamID].CompletionTokens == 40
	})
	replayedAfter := time.Since(restoredAt)
	if !replayed || replayedAfter > 15*time.Second {
		t.Fatalf("%d of %d served requests had no usage record (or the stream's not its 40 tokens) in PostgreSQL %v after it came back; want all within 15 s", missing, len(served), replayedAfter.Round(time.Millisecond))
	}
	t.Logf("PostgreSQL cut mid-stream: new requests refused 503 store_unavailable after %s; the stream finished; %d record(s) waited in the spool; after the database returned: serving again in %s, all %d served requests' records (the stream's included) in PostgreSQL in %s",
		refusedAfter.Round(time.Millisecond), spooled, servedAfter.Round(time.Millisecond), len(served), replayedAfter.Round(time.Millisecond))
}
