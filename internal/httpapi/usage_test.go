package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/billing"
	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/keys"
)

// usageSource stands in for the store: it keeps the last query and
// filters its rows by account and key as the store does.
type usageSource struct {
	mu   sync.Mutex
	got  *books.ReportQuery
	rows []books.ReportRow
	err  error
}

func (s *usageSource) UsageReport(_ context.Context, q books.ReportQuery) ([]books.ReportRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = &q
	var out []books.ReportRow
	for _, r := range s.rows {
		if (q.AccountID == "" || r.AccountID == q.AccountID) && (q.KeyID == "" || r.KeyID == q.KeyID) {
			out = append(out, r)
		}
	}
	return out, s.err
}

func (s *usageSource) query() *books.ReportQuery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got
}

var usageNow = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

func newUsageSource() *usageSource {
	return &usageSource{rows: []books.ReportRow{
		{AccountID: "acct_a", KeyID: "key_a1", Requests: 4, Errors: 1, PromptTokens: 600, CompletionTokens: 60, CostNano: 6_000_500, CacheHits: 1, ResponseCacheSavedNano: 3_000_000, LatencyP50: 20 * time.Millisecond, LatencyP95: 40 * time.Millisecond},
		{AccountID: "acct_b", KeyID: "key_b1", Requests: 20, PromptTokens: 20, CompletionTokens: 20, CostNano: 140},
	}}
}

// usageEngine mounts the usage routes behind a stand-in for the auth
// middleware: it sets the request info with key k, as authenticate does.
func usageEngine(t *testing.T, src *usageSource, k *keys.Key) http.Handler {
	t.Helper()
	gin.SetMode(gin.TestMode) // no route debug lines
	e := gin.New()
	e.Use(func(c *gin.Context) {
		c.Set(infoKey, &requestInfo{id: "req_test", start: usageNow, key: k})
		c.Next()
	})
	admin, caller := UsageRoutes(billing.NewReporter(src, func() time.Time { return usageNow }))
	admin(e.Group("/admin/v1"))
	caller(e.Group("/v1"))
	return e
}

func usageGet(t *testing.T, h http.Handler, url string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, url, nil))
	return w
}

type usageErrBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func decodeUsageError(t *testing.T, w *httptest.ResponseRecorder) usageErrBody {
	t.Helper()
	var b usageErrBody
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil || b.Error.Message == "" || b.Error.Type == "" {
		t.Fatalf("not an OpenAI-shaped error (%v): %s", err, w.Body)
	}
	return b
}

var (
	adminKey  = &keys.Key{Record: keys.Record{ID: "key_admin", AccountID: keys.DefaultAccountID, Kind: keys.KindAdmin}}
	callerKey = &keys.Key{Record: keys.Record{ID: "key_a1", AccountID: "acct_a", Kind: "caller"}}
)

func TestUsageReportAdminJSON(t *testing.T) {
	t.Parallel()
	src := newUsageSource()
	h := usageEngine(t, src, adminKey)
	w := usageGet(t, h, "/admin/v1/usage/report?group_by=account,key&group_by=model&from=2026-11-01&to=2026-11-02T06:00:00%2B02:00&account_id=acct_a&key_id=key_a1&model=gpt-4o&provider=openai")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	want := books.ReportQuery{
		GroupBy: []books.Dimension{books.ByAccount, books.ByKey, books.ByModel},
		From:    time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 2, 4, 0, 0, 0, time.UTC),
		AccountID: "acct_a", KeyID: "key_a1", Model: "gpt-4o", Provider: "openai",
	}
	if got := src.query(); got == nil || !reflect.DeepEqual(*got, want) {
		t.Fatalf("store query %+v\nwant %+v", got, want)
	}
	var rep billing.Report
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Object != "usage.report" || len(rep.Data) != 1 || rep.Data[0].CostUSD != "0.006001" || rep.Data[0].LatencyP95US != 40_000 || rep.Data[0].KeyID != "key_a1" {
		t.Fatalf("report %s", w.Body)
	}
}

func TestUsageReportAdminCSV(t *testing.T) {
	t.Parallel()
	src := newUsageSource()
	h := usageEngine(t, src, adminKey)
	w := usageGet(t, h, "/admin/v1/usage/report?group_by=account&from=2026-11-01&to=2026-12-01&format=csv")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := w.Header().Get("Content-Disposition"); cd != `attachment; filename="xroute-usage-20261101T000000Z-20261201T000000Z.csv"` {
		t.Fatalf("Content-Disposition %q", cd)
	}
	want := "account_id,requests,errors,prompt_tokens,completion_tokens,cached_tokens,cache_write_tokens,prompt_cache_hit_ratio,cost_usd,cost_nano,prompt_cache_saved_usd,prompt_cache_saved_nano,cache_hits,response_cache_hit_ratio,response_cache_saved_usd,response_cache_saved_nano,latency_p50_us,latency_p95_us\r\n" +
		"acct_a,4,1,600,60,0,0,0.0000,0.006001,6000500,0.000000,0,1,0.2500,0.003000,3000000,20000,40000\r\n" +
		"acct_b,20,0,20,20,0,0,0.0000,0.000000,140,0.000000,0,0,0.0000,0.000000,0,0,0\r\n"
	if w.Body.String() != want {
		t.Fatalf("csv %q\nwant %q", w.Body, want)
	}
}

func TestUsageReportDefaultsToTheLast30Days(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"/admin/v1/usage/report", "/v1/usage"} {
		src := newUsageSource()
		k := adminKey
		if strings.HasPrefix(url, "/v1") {
			k = callerKey
		}
		w := usageGet(t, usageEngine(t, src, k), url)
		got := src.query()
		if w.Code != http.StatusOK || got == nil || !got.To.Equal(usageNow) || !got.From.Equal(usageNow.AddDate(0, 0, -30)) || len(got.GroupBy) != 0 {
			t.Fatalf("%s: status %d, query %+v", url, w.Code, got)
		}
	}
}

func TestUsageReportBadRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query, param string
	}{
		{"unknown group", "group_by=account,colour", "group_by"},
		{"group twice", "group_by=model,model", "group_by"},
		{"day and hour", "group_by=day,hour", "group_by"},
		{"bad from", "from=yesterday", "from"},
		{"bad to", "from=2026-11-01&to=2026-13-01", "to"},
		{"from after to", "from=2026-11-02&to=2026-11-01", "from"},
		{"from equals to", "from=2026-11-01&to=2026-11-01", "from"},
		{"from after the default to", "from=2027-01-01", "from"},
		{"over 366 days", "from=2025-01-01&to=2026-01-03", "to"},
		{"bad format", "format=xml", "format"},
	}
	for _, route := range []struct {
		prefix string
		key    *keys.Key
	}{{"/admin/v1/usage/report?", adminKey}, {"/v1/usage?", callerKey}} {
		for _, tc := range tests {
			t.Run(route.prefix+tc.name, func(t *testing.T) {
				src := newUsageSource()
				w := usageGet(t, usageEngine(t, src, route.key), route.prefix+tc.query)
				if w.Code != http.StatusBadRequest {
					t.Fatalf("status %d: %s", w.Code, w.Body)
				}
				b := decodeUsageError(t, w)
				if b.Error.Type != "invalid_request_error" || b.Error.Param == nil || *b.Error.Param != tc.param || b.Error.Code == nil {
					t.Fatalf("error %s", w.Body)
				}
				if src.query() != nil {
					t.Fatal("a bad query reached the store")
				}
			})
		}
	}
	// Exactly 366 days is allowed.
	src := newUsageSource()
	if w := usageGet(t, usageEngine(t, src, adminKey), "/admin/v1/usage/report?from=2025-01-01&to=2026-01-02"); w.Code != http.StatusOK {
		t.Fatalf("366 days: status %d: %s", w.Code, w.Body)
	}
}

func TestUsageCallerSeesOnlyItsOwnAccount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		query    string
		key      *keys.Key
		status   int
		wantKeys []string // key ids of the rows answered
	}{
		{"own account", "group_by=key", callerKey, http.StatusOK, []string{"key_a1"}},
		{"own account named", "group_by=key&account_id=acct_a", callerKey, http.StatusOK, []string{"key_a1"}},
		{"another account named", "group_by=key&account_id=acct_b", callerKey, http.StatusNotFound, nil},
		{"another account's key", "group_by=key&key_id=key_b1", callerKey, http.StatusOK, []string{}},
		{"csv is for operators", "format=csv", callerKey, http.StatusBadRequest, nil},
		{"key without the usage scope", "", &keys.Key{Record: keys.Record{ID: "key_a2", AccountID: "acct_a", AllowedEndpoints: []string{keys.EndpointChat}}}, http.StatusForbidden, nil},
		{"key with the usage scope", "group_by=key", &keys.Key{Record: keys.Record{ID: "key_a3", AccountID: "acct_a", AllowedEndpoints: []string{keys.EndpointUsage}}}, http.StatusOK, []string{"key_a1"}},
		{"no key", "", nil, http.StatusUnauthorized, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newUsageSource()
			w := usageGet(t, usageEngine(t, src, tc.key), "/v1/usage?"+tc.query)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != http.StatusOK {
				decodeUsageError(t, w)
				if strings.Contains(w.Body.String(), "acct_b") && tc.status != http.StatusNotFound {
					t.Fatalf("answer names another account: %s", w.Body)
				}
				if src.query() != nil {
					t.Fatal("a refused request reached the store")
				}
				return
			}
			if got := src.query(); got == nil || got.AccountID != tc.key.AccountID {
				t.Fatalf("store query %+v: account not forced to %s", got, tc.key.AccountID)
			}
			var rep billing.Report
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			ids := []string{}
			for _, r := range rep.Data {
				ids = append(ids, r.KeyID)
			}
			if !reflect.DeepEqual(ids, tc.wantKeys) || strings.Contains(w.Body.String(), "acct_b") {
				t.Fatalf("rows for keys %v, want %v: %s", ids, tc.wantKeys, w.Body)
			}
		})
	}
}

func TestUsageReportStoreFailure(t *testing.T) {
	t.Parallel()
	src := newUsageSource()
	src.err = errors.New("database is locked at /var/lib/secret.db")
	for _, tc := range []struct {
		url string
		key *keys.Key
	}{{"/admin/v1/usage/report", adminKey}, {"/v1/usage", callerKey}} {
		w := usageGet(t, usageEngine(t, src, tc.key), tc.url)
		if w.Code != http.StatusInternalServerError {
			t.Fatalf("%s: status %d: %s", tc.url, w.Code, w.Body)
		}
		if b := decodeUsageError(t, w); b.Error.Type != "server_error" || strings.Contains(w.Body.String(), "secret.db") {
			t.Fatalf("%s: %s", tc.url, w.Body)
		}
	}
}
