package billing

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/xroute/xroute/billing/books"
)

// The hand-written spool line must be what encoding/json writes, so that
// replay (json.Unmarshal) reads back every field.
func TestSpoolLineMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	full := books.UsageRecord{}
	// Every field set, by reflection: a field added to UsageRecord and
	// not to appendRecordJSON fails here.
	v := reflect.ValueOf(&full).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name + "-value")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(1000 + i))
		case reflect.Struct:
			f.Set(reflect.ValueOf(time.Date(2026, 12, 7, 13, 4, 5, 123456789, time.UTC)))
		default:
			t.Fatalf("field %s of kind %s: teach appendRecordJSON and this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	for _, tt := range []struct {
		name string
		rec  books.UsageRecord
	}{
		{"zero", books.UsageRecord{}},
		{"every field", full},
		{"typical", books.UsageRecord{RequestID: "req_0123456789abcdef01234567", AccountID: "acct_default", KeyID: "key_1", Model: "gpt-4o-mini",
			Provider: "openai", UpstreamModel: "gpt-4o-mini-2024-07-18", Stream: true, PromptTokens: 12, CompletionTokens: 345,
			Latency: 1234567 * time.Microsecond, TTFT: 89 * time.Millisecond, Status: 200, Attempts: 1,
			CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), CostNano: 98765, Deployment: "openai/gpt-4o-mini", Endpoint: "chat"}},
		{"escapes", books.UsageRecord{RequestID: "a\"b\\c\n\r\t\b\f\x00\x1f<>&\u2028\u2029é😀", Model: "bad\xffutf8\xc3", ErrorCode: "\x7f",
			CostNano: -5, Latency: -1, CreatedAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendRecordJSON(nil, &tt.rec)
			if !ok || string(got) != string(want) {
				t.Fatalf("appendRecordJSON (ok %v)\n got %s\nwant %s", ok, got, want)
			}
			var back books.UsageRecord
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A time encoding/json refuses is refused the same way, not written in a
// form replay cannot read.
func TestSpoolLineRefusesWhatJSONRefuses(t *testing.T) {
	t.Parallel()
	rec := books.UsageRecord{RequestID: "r", CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, ok := appendRecordJSON(nil, &rec); ok {
		t.Fatal("year 10000 encoded")
	}
	if _, err := marshalLine(&rec); err == nil {
		t.Fatal("marshalLine took a record encoding/json refuses")
	}
}

func BenchmarkSpoolLine(b *testing.B) {
	rec := books.UsageRecord{RequestID: "req_0123456789abcdef01234567", AccountID: "acct_default", KeyID: "key_1", Model: "gpt-4o-mini",
		Provider: "openai", UpstreamModel: "gpt-4o-mini", Stream: true, PromptTokens: 12, CompletionTokens: 345, Status: 200, Attempts: 1,
		CreatedAt: time.Now(), CostNano: 98765, Deployment: "openai/gpt-4o-mini", Endpoint: "chat"}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := json.Marshal(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			p, err := marshalLine(&rec)
			if err != nil {
				b.Fatal(err)
			}
			putLine(p)
		}
	})
}
