package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/router"
)

// fakeHealth is a database whose state the test sets.
type fakeHealth struct {
	down, full atomic.Bool
}

func (h *fakeHealth) StoreUp() bool   { return !h.down.Load() }
func (h *fakeHealth) SpoolFull() bool { return h.full.Load() }
func (h *fakeHealth) Unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// fakeVerifier accepts every key, or fails as its store does.
type fakeVerifier struct{ err atomic.Pointer[error] }

func (v *fakeVerifier) Verify(context.Context, string) (*keys.Key, error) {
	if p := v.err.Load(); p != nil {
		return nil, *p
	}
	return &keys.Key{Record: keys.Record{ID: "key_1", AccountID: "acct_1", Kind: keys.KindCaller}}, nil
}

// fakeRouter answers at once, and streams two chunks with a pause the
// test ends between them.
type fakeRouter struct{ midStream chan struct{} }

func (r *fakeRouter) Lookup(name string) (*router.Model, bool) {
	return &router.Model{Name: name}, true
}
func (r *fakeRouter) Models() []*router.Model { return []*router.Model{{Name: "m"}} }
func (r *fakeRouter) Chat(context.Context, *router.Model, *providers.ChatRequest) (*providers.ChatResponse, router.Result, error) {
	return &providers.ChatResponse{Body: []byte(`{"object":"chat.completion"}`), Usage: providers.Usage{PromptTokens: 3, CompletionTokens: 4}}, router.Result{Attempts: 1}, nil
}
func (r *fakeRouter) ChatStream(ctx context.Context, _ *router.Model, _ *providers.ChatRequest) (providers.Stream, router.Result, error) {
	return &pausedStream{ctx: ctx, pause: r.midStream}, router.Result{Attempts: 1}, nil
}
func (r *fakeRouter) Embed(context.Context, *router.Model, []string, int) ([][]float32, providers.Usage, router.Result, error) {
	return nil, providers.Usage{}, router.Result{}, errors.New("not used")
}

type pausedStream struct {
	ctx   context.Context
	pause chan struct{}
	n     int
}

func (s *pausedStream) Recv() (providers.Chunk, error) {
	s.n++
	switch s.n {
	case 1:
		return providers.Chunk{Data: []byte(`{"choices":[{"delta":{"content":"one"}}]}`)}, nil
	case 2:
		select {
		case <-s.pause:
		case <-s.ctx.Done():
			return providers.Chunk{}, s.ctx.Err()
		}
		return providers.Chunk{Data: []byte(`{"choices":[{"delta":{"content":"two"}}]}`)}, nil
	}
	return providers.Chunk{}, io.EOF
}
func (s *pausedStream) Close() error { return nil }

type fakeUsage struct {
	commitErr atomic.Pointer[error]
	committed atomic.Int32
}

func (u *fakeUsage) Record(books.UsageRecord) error { return nil }
func (u *fakeUsage) Commit(context.Context, books.UsageRecord) error {
	if p := u.commitErr.Load(); p != nil {
		return *p
	}
	u.committed.Add(1)
	return nil
}

type gateServer struct {
	url    string
	health *fakeHealth
	keys   *fakeVerifier
	usage  *fakeUsage
	router *fakeRouter
}

func newGateServer(t *testing.T) *gateServer {
	t.Helper()
	g := &gateServer{health: &fakeHealth{}, keys: &fakeVerifier{}, usage: &fakeUsage{}, router: &fakeRouter{midStream: make(chan struct{})}}
	s, err := httpapi.New(httpapi.Config{Keys: g.keys, Router: g.router, Log: zap.NewNop(),
		MaxBodyBytes: 1 << 20, StoreHealth: g.health, Model: httpapi.ModelConfig{Usage: g.usage, RequestTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

func (g *gateServer) chat(t *testing.T, stream bool) *http.Response {
	t.Helper()
	body := fmt.Sprintf(`{"model":"m","stream":%v,"messages":[{"role":"user","content":"hi"}]}`, stream)
	req, _ := http.NewRequest(http.MethodPost, g.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer xr-anything")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

const storeDownBody = `{"error":{"message":"xroute cannot reach its database; retry shortly","type":"server_error","param":null,"code":"store_unavailable"}}`

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStoreGate(t *testing.T) {
	t.Parallel()
	g := newGateServer(t)
	tests := []struct {
		name       string
		down, full bool
		status     int
		code       string // error code; "" for a success
		healthz    string
	}{
		{"store up", false, false, 200, "", `{"status":"ok","store":"up","usage_spool":"ok"}`},
		{"store down", true, false, 503, "store_unavailable", `{"status":"unavailable","store":"down","usage_spool":"ok"}`},
		{"usage spool full", false, true, 503, "usage_spool_full", `{"status":"unavailable","store":"up","usage_spool":"full"}`},
		{"store back up", false, false, 200, "", `{"status":"ok","store":"up","usage_spool":"ok"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g.health.down.Store(tt.down)
			g.health.full.Store(tt.full)
			resp := g.chat(t, false)
			body := readAll(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.code == "" {
				if body != `{"object":"chat.completion"}` {
					t.Fatalf("body %s", body)
				}
			} else {
				var e struct {
					Error struct{ Code, Type string }
				}
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != tt.code || e.Error.Type != "server_error" {
					t.Fatalf("error body %s (%v), want code %s", body, err, tt.code)
				}
				if ra := resp.Header.Get("Retry-After"); ra != "2" {
					t.Fatalf("Retry-After %q, want 2", ra)
				}
				if tt.code == "store_unavailable" && body != storeDownBody {
					t.Fatalf("body\n%s\nwant\n%s", body, storeDownBody)
				}
			}
			hz, err := http.Get(g.url + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			hbody := readAll(t, hz)
			want := 200
			if tt.status != 200 {
				want = 503
			}
			if hz.StatusCode != want || hbody != tt.healthz {
				t.Fatalf("healthz %d %s, want %d %s", hz.StatusCode, hbody, want, tt.healthz)
			}
		})
	}
}

// A stream that began before the database went down finishes normally;
// only new requests are refused.
func TestStoreDownSparesStreamsInFlight(t *testing.T) {
	t.Parallel()
	g := newGateServer(t)
	resp := g.chat(t, true)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream status %d", resp.StatusCode)
	}
	rd := bufio.NewReader(resp.Body)
	first, err := rd.ReadString('\n')
	if err != nil || !strings.Contains(first, `"one"`) {
		t.Fatalf("first event %q %v", first, err)
	}

	g.health.down.Store(true)
	refused := g.chat(t, false)
	if body := readAll(t, refused); refused.StatusCode != 503 || body != storeDownBody {
		t.Fatalf("new request while down: %d %s", refused.StatusCode, body)
	}

	close(g.router.midStream)
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rest), `"two"`) || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Fatalf("stream did not finish: %q", rest)
	}
	if n := g.usage.committed.Load(); n != 1 {
		t.Fatalf("usage commits %d, want the stream's one", n)
	}
}

func TestStoreErrorsOnTheRequestPath(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name      string
		verifyErr error
		commitErr error
		status    int
		code      string
	}{
		{"key lookup cannot reach the database", fmt.Errorf("keys: lookup: %w", refused), nil, 503, "store_unavailable"},
		{"key lookup fails otherwise", errors.New("keys: lookup: malformed row"), nil, 503, "auth_unavailable"},
		{"usage spool full at commit", nil, billing.ErrSpoolFull, 503, "usage_spool_full"},
		{"usage commit failing otherwise still serves", nil, billing.ErrStoreDown, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateServer(t)
			if tt.verifyErr != nil {
				g.keys.err.Store(&tt.verifyErr)
			}
			if tt.commitErr != nil {
				g.usage.commitErr.Store(&tt.commitErr)
			}
			resp := g.chat(t, false)
			body := readAll(t, resp)
			if resp.StatusCode != tt.status || (tt.code != "" && !strings.Contains(body, `"code":"`+tt.code+`"`)) {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
		})
	}
}
