package billing

import (
	"bytes"
	"context"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/xroute/xroute/billing/books"
)

func TestReportFormatUSD(t *testing.T) {
	t.Parallel()
	tests := []struct {
		nano int64
		want string
	}{
		{0, "0.000000"},
		{499, "0.000000"},
		{500, "0.000001"},
		{1_234_567, "0.001235"},
		{1_000_000_000, "1.000000"},
		{12_345_678_901_234, "12345.678901"},
		{-1_500, "-0.000002"},
		{-499, "0.000000"},
		{math.MaxInt64, "9223372036.854776"},
		{math.MinInt64, "-9223372036.854776"},
	}
	for _, tc := range tests {
		if got := FormatUSD(tc.nano); got != tc.want {
			t.Errorf("FormatUSD(%d) = %q, want %q", tc.nano, got, tc.want)
		}
	}
}

func TestReportParseGroupBy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []books.Dimension
		wantErr bool
	}{
		{"", nil, false},
		{"account, Model", []books.Dimension{books.ByAccount, books.ByModel}, false},
		{"key,provider,hour", []books.Dimension{books.ByKey, books.ByProvider, books.ByHour}, false},
		{"color", nil, true},
		{"model,model", nil, true},
		{"day,hour", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseGroupBy(tc.in)
		var qe *QueryError
		if tc.wantErr {
			if !errors.As(err, &qe) || qe.Param != "group_by" {
				t.Errorf("ParseGroupBy(%q): want a group_by QueryError, got %v", tc.in, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseGroupBy(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestReportParseTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"", time.Time{}, false},
		{"2026-11-01", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), false},
		{"2026-11-01T10:00:00+02:00", time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), false},
		{"2026-11-01T10:00:00.5Z", time.Date(2026, 11, 1, 10, 0, 0, 5e8, time.UTC), false},
		{"yesterday", time.Time{}, true},
		{"2026-13-01", time.Time{}, true},
	}
	for _, tc := range tests {
		got, err := ParseTime("from", tc.in)
		var qe *QueryError
		if tc.bad {
			if !errors.As(err, &qe) || qe.Param != "from" {
				t.Errorf("ParseTime(%q): want a from QueryError, got %v", tc.in, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

type fakeSource struct {
	got  books.ReportQuery
	rows []books.ReportRow
	err  error
}

func (f *fakeSource) UsageReport(_ context.Context, q books.ReportQuery) ([]books.ReportRow, error) {
	f.got = q
	return f.rows, f.err
}

func TestReporterReport(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		name      string
		q         books.ReportQuery
		wantQuery books.ReportQuery
		errParam  string
	}{
		{"defaults: the last 30 days", books.ReportQuery{}, books.ReportQuery{From: now.Add(-30 * 24 * time.Hour), To: now}, ""},
		{"from only: up to now", books.ReportQuery{From: day(1)}, books.ReportQuery{From: day(1), To: now}, ""},
		{"exactly 366 days", books.ReportQuery{From: day(1), To: day(1).AddDate(0, 0, 366)}, books.ReportQuery{From: day(1), To: day(1).AddDate(0, 0, 366)}, ""},
		{"367 days", books.ReportQuery{From: day(1), To: day(1).AddDate(0, 0, 367)}, books.ReportQuery{}, "to"},
		{"from equals to", books.ReportQuery{From: day(2), To: day(2)}, books.ReportQuery{}, "from"},
		{"from after to", books.ReportQuery{From: day(3), To: day(2)}, books.ReportQuery{}, "from"},
		{"from after the default to", books.ReportQuery{From: day(20)}, books.ReportQuery{}, "from"},
		{"bad dimension", books.ReportQuery{GroupBy: []books.Dimension{"colour"}, From: day(1), To: day(2)}, books.ReportQuery{}, "group_by"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeSource{}
			rep, err := NewReporter(src, clock).Report(context.Background(), tc.q)
			if tc.errParam != "" {
				var qe *QueryError
				if !errors.As(err, &qe) || qe.Param != tc.errParam {
					t.Fatalf("want a QueryError on %s, got %v", tc.errParam, err)
				}
				if !src.got.From.IsZero() {
					t.Fatal("a bad query reached the store")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(src.got, tc.wantQuery) {
				t.Fatalf("store query %+v, want %+v", src.got, tc.wantQuery)
			}
			if !rep.From.Equal(tc.wantQuery.From) || !rep.To.Equal(tc.wantQuery.To) || rep.Data == nil || rep.GroupBy == nil {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}

func TestReporterConvertsRows(t *testing.T) {
	t.Parallel()
	bucket := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	src := &fakeSource{rows: []books.ReportRow{
		{AccountID: "acct_a", Bucket: bucket, Requests: 3, Errors: 1, PromptTokens: 10, CompletionTokens: 20, CachedTokens: 5, CacheWriteTokens: 3,
			CostNano: 1_234_567, PromptCacheSavedNano: -1_500, CacheHits: 1, ResponseCacheSavedNano: 2_000_000, LatencyP50: 1500 * time.Microsecond, LatencyP95: 2 * time.Second},
		{AccountID: "acct_b", Requests: 1},
	}}
	q := books.ReportQuery{GroupBy: []books.Dimension{books.ByAccount, books.ByDay}, From: bucket, To: bucket.Add(24 * time.Hour)}
	rep, err := NewReporter(src, nil).Report(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{AccountID: "acct_a", BucketStart: &bucket, Requests: 3, Errors: 1, PromptTokens: 10, CompletionTokens: 20, CachedTokens: 5,
			CacheWriteTokens: 3, PromptCacheHitRatio: 0.5, CostNano: 1_234_567, CostUSD: "0.001235",
			PromptCacheSavedNano: -1_500, PromptCacheSavedUSD: "-0.000002",
			CacheHits: 1, ResponseCacheHitRatio: 0.3333, ResponseCacheSavedNano: 2_000_000, ResponseCacheSavedUSD: "0.002000",
			LatencyP50US: 1500, LatencyP95US: 2_000_000},
		{AccountID: "acct_b", Requests: 1, CostUSD: "0.000000", PromptCacheSavedUSD: "0.000000", ResponseCacheSavedUSD: "0.000000"},
	}
	if !reflect.DeepEqual(rep.Data, want) {
		t.Fatalf("rows %+v\nwant %+v", rep.Data, want)
	}

	src.err = errors.New("disk on fire")
	if _, err := NewReporter(src, nil).Report(context.Background(), q); !errors.Is(err, src.err) {
		t.Fatalf("store error: %v", err)
	}
}

func sampleReport() Report {
	b1 := time.Date(2026, 11, 1, 23, 0, 0, 0, time.UTC)
	b2 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	return Report{
		GroupBy: []books.Dimension{books.ByModel, books.ByHour},
		From:    time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		To:      time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC),
		Data: []Row{
			// 900 tokens read from the prompt cache at 0.3 instead of 3 nano-USD
			// each, 200 written at 3.75: 900×2.7 − 200×0.75 = 2,280 nano-USD saved;
			// 3 of the 12 requests answered from the response cache, saving 1,500,000
			{Model: "gpt-4o", BucketStart: &b1, Requests: 12, Errors: 1, PromptTokens: 1200, CompletionTokens: 300, CachedTokens: 900,
				CacheWriteTokens: 200, PromptCacheSavedNano: 2_280, CostNano: 4_500_000, CostUSD: "0.004500", CacheHits: 3, ResponseCacheSavedNano: 1_500_000,
				LatencyP50US: 12_345, LatencyP95US: 250_050},
			{Model: `odd, "model"`, BucketStart: &b2, Requests: 3, PromptTokens: 9, CompletionTokens: 1, CachedTokens: 4,
				CostNano: 1_001, CostUSD: "0.000001", LatencyP50US: 900, LatencyP95US: 1_000},
			{Model: "=cmd()", BucketStart: &b2, Requests: 1, CostUSD: "0.000000"},
		},
	}
}

func TestReportWriteTable(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteTable(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	want := `Usage 2026-11-01T00:00:00Z to 2026-11-03T00:00:00Z (UTC, end exclusive)
MODEL         HOUR (UTC)        REQUESTS  ERRORS  PROMPT  COMPLETION  CACHED  CACHE WRITE  CACHED %  COST (USD)  PROMPT SAVED (USD)  CACHE HITS  HIT %  HITS SAVED (USD)  P50 MS  P95 MS
gpt-4o        2026-11-01 23:00        12       1    1200         300     900          200     75.0%    0.004500            0.000002           3  25.0%          0.001500    12.3   250.1
odd, "model"  2026-11-02 00:00         3       0       9           1       4            0     44.4%    0.000001            0.000000           0   0.0%          0.000000     0.9     1.0
=cmd()        2026-11-02 00:00         1       0       0           0       0            0      0.0%    0.000000            0.000000           0   0.0%          0.000000     0.0     0.0
TOTAL                                 16       1    1209         301     904          200     74.8%    0.004501            0.000002           3  18.8%          0.001500
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	if err := WriteTable(&b, Report{From: time.Unix(0, 0), To: time.Unix(86400, 0)}); err != nil {
		t.Fatal(err)
	}
	if want := "Usage 1970-01-01T00:00:00Z to 1970-01-02T00:00:00Z (UTC, end exclusive)\n" +
		"REQUESTS  ERRORS  PROMPT  COMPLETION  CACHED  CACHE WRITE  CACHED %  COST (USD)  PROMPT SAVED (USD)  CACHE HITS  HIT %  HITS SAVED (USD)  P50 MS  P95 MS\n(no usage in this range)\n"; b.String() != want {
		t.Fatalf("empty table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestReportWriteCSV(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteCSV(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	want := "model,bucket_start,requests,errors,prompt_tokens,completion_tokens,cached_tokens,cache_write_tokens,prompt_cache_hit_ratio,cost_usd,cost_nano,prompt_cache_saved_usd,prompt_cache_saved_nano,cache_hits,response_cache_hit_ratio,response_cache_saved_usd,response_cache_saved_nano,latency_p50_us,latency_p95_us\r\n" +
		"gpt-4o,2026-11-01T23:00:00Z,12,1,1200,300,900,200,0.7500,0.004500,4500000,0.000002,2280,3,0.2500,0.001500,1500000,12345,250050\r\n" +
		"\"odd, \"\"model\"\"\",2026-11-02T00:00:00Z,3,0,9,1,4,0,0.4444,0.000001,1001,0.000000,0,0,0.0000,0.000000,0,900,1000\r\n" +
		"'=cmd(),2026-11-02T00:00:00Z,1,0,0,0,0,0,0.0000,0.000000,0,0.000000,0,0,0.0000,0.000000,0,0,0\r\n"
	if b.String() != want {
		t.Fatalf("csv:\n%q\nwant:\n%q", b.String(), want)
	}
}
