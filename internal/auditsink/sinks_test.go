package auditsink

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/internal/store/storetest"
	"github.com/xroute/xroute/keys/auditlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testSecret = "0123456789abcdef-sink-secret"

// open opens (or reopens) the SQLite database at path and returns it with
// an auditor writing to it.
func open(t *testing.T, path string) (*store.DB, *auditlog.Auditor) {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return db, auditlog.NewAuditor(db, time.Now)
}

// forEachBackend runs fn on SQLite and, when XROUTE_TEST_POSTGRES_URL is
// set, on PostgreSQL; reopen opens the same database again each call (a
// restart, or another replica).
func forEachBackend(t *testing.T, fn func(t *testing.T, reopen func() (*store.DB, *auditlog.Auditor))) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "x.db")
		fn(t, func() (*store.DB, *auditlog.Auditor) { return open(t, path) })
	})
	t.Run("postgres", func(t *testing.T) {
		url := storetest.Postgres(t)
		fn(t, func() (*store.DB, *auditlog.Auditor) {
			db, err := store.OpenPostgres(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			return db, auditlog.NewAuditor(db, time.Now)
		})
	})
}

func record(t *testing.T, a *auditlog.Auditor, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := a.Record(context.Background(), auditlog.Event{Kind: auditlog.KeyCreated, Actor: "admin:key_a", Subject: fmt.Sprint("key_", i), Details: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
}

// receiver is a webhook receiver that fails its first fail requests
// (503), checks every request's signature and idempotency key, and
// reports each accepted batch's seqs.
type receiver struct {
	t     *testing.T
	mu    sync.Mutex
	fail  int
	seen  map[int64]int
	first []int64 // each accepted batch's first seq
	got   chan int64
	hang  chan struct{} // non-nil: hold every request until closed
}

func newReceiver(t *testing.T, fail int) *receiver {
	return &receiver{t: t, fail: fail, seen: map[int64]int{}, got: make(chan int64, 1000)}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rc.hang != nil {
		select {
		case <-rc.hang:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(r.Body)
	ts := r.Header.Get(HeaderTimestamp)
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(ts + "." + string(body)))
	if want := "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil)); r.Header.Get(HeaderSignature) != want {
		rc.t.Errorf("signature %q, want %q", r.Header.Get(HeaderSignature), want)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.fail > 0 {
		rc.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var seqs []int64
	for _, l := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		var line Line
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			rc.t.Errorf("line %q: %v", l, err)
			continue
		}
		if line.Kind != auditlog.KeyCreated || line.MAC == "" || string(line.Details) != fmt.Sprintf(`{"i":%d}`, line.Seq) {
			rc.t.Errorf("line %+v", line)
		}
		seqs = append(seqs, line.Seq)
	}
	if want := fmt.Sprintf("%d-%d", seqs[0], seqs[len(seqs)-1]); r.Header.Get(HeaderIdempotency) != want {
		rc.t.Errorf("Idempotency-Key %q, want %q", r.Header.Get(HeaderIdempotency), want)
	}
	rc.first = append(rc.first, seqs[0])
	for _, s := range seqs {
		rc.seen[s]++
		rc.got <- s
	}
}

// waitFor reads accepted seqs until seq arrives.
func (rc *receiver) waitFor(t *testing.T, seq int64) {
	t.Helper()
	deadline := time.After(30 * time.Second) // a hang guard, not a timing assertion
	for {
		select {
		case s := <-rc.got:
			if s >= seq {
				return
			}
		case <-deadline:
			t.Fatalf("the receiver never got seq %d", seq)
		}
	}
}

func webhookSink(url string) config.AuditSink {
	return config.AuditSink{Name: "siem", Type: "webhook", URL: url, Secret: testSecret, BatchSize: 3,
		PollInterval: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

// TestWebhookFailsRecoversAcrossRestartNoGap: the receiver fails, then
// recovers; the gateway stops and starts again on the same database in
// between, with rows written while it was down. The receiver sees every
// seq at least once and none missing, and the second run resumes after
// the persisted cursor instead of from the start.
func TestWebhookFailsRecoversAcrossRestartNoGap(t *testing.T) {
	forEachBackend(t, testRestartNoGap)
}

func testRestartNoGap(t *testing.T, reopen func() (*store.DB, *auditlog.Auditor)) {
	rc := newReceiver(t, 3)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	cfg := []config.AuditSink{webhookSink(srv.URL)}

	db, audit := reopen()
	record(t, audit, 1, 7)
	m := NewMetrics()
	sh, err := Start(cfg, db, zap.NewNop(), Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	rc.waitFor(t, 7)
	sh.Close()
	if n := value(m.errors.WithLabelValues("siem")); n != 3 {
		t.Errorf("xroute_audit_sink_errors_total %v, want 3", n)
	}
	// Close may cut the shipper between the receiver's 2xx for seq 7 and
	// persisting it: the cursor is 6 or 7 (the batch before 7 was acked
	// before 7 was sent), and the restart resumes after whichever it is.
	acked, err := db.SinkAcked(context.Background(), "siem")
	if err != nil || acked < 6 || acked > 7 {
		t.Fatalf("persisted cursor %d (%v), want 6 or 7", acked, err)
	}
	if n := value(m.lag.WithLabelValues("siem")); n > float64(7-acked) {
		t.Errorf("xroute_audit_sink_lag %v with the cursor at %d of 7", n, acked)
	}
	record(t, audit, 8, 12) // written while no sink runs
	db.Close()

	// The restart: a new process on the same database, the receiver
	// failing again at first.
	rc.mu.Lock()
	rc.fail = 2
	before := len(rc.first)
	rc.mu.Unlock()
	db, audit = reopen()
	defer db.Close()
	m = NewMetrics()
	sh, err = Start(cfg, db, zap.NewNop(), Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	record(t, audit, 13, 14)
	sh.Nudge()
	rc.waitFor(t, 14)
	sh.Close()

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for seq := int64(1); seq <= 14; seq++ {
		if rc.seen[seq] < 1 {
			t.Errorf("seq %d never delivered", seq)
		}
	}
	if len(rc.seen) != 14 {
		t.Errorf("the receiver saw %d distinct seqs, want 14", len(rc.seen))
	}
	if got := rc.first[before]; got != acked+1 {
		t.Errorf("after the restart the first batch starts at seq %d, want %d (after the persisted cursor)", got, acked+1)
	}
	if n := value(m.errors.WithLabelValues("siem")); n != 2 {
		t.Errorf("errors after the restart %v, want 2", n)
	}
}

// TestLeaseOneShipperAtATime: two processes on one database ship a sink
// once between them: the second waits while the first holds the lease.
func TestLeaseOneShipperAtATime(t *testing.T) {
	forEachBackend(t, testLease)
}

func testLease(t *testing.T, reopen func() (*store.DB, *auditlog.Auditor)) {
	rc := newReceiver(t, 0)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	db, audit := reopen()
	defer db.Close()
	db2, _ := reopen() // the second replica's connection
	defer db2.Close()
	record(t, audit, 1, 9)
	a, err := Start([]config.AuditSink{webhookSink(srv.URL)}, db, zap.NewNop(), Options{Owner: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rc.waitFor(t, 9)
	b, err := Start([]config.AuditSink{webhookSink(srv.URL)}, db2, zap.NewNop(), Options{Owner: "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	record(t, audit, 10, 10)
	a.Nudge()
	b.Nudge()
	rc.waitFor(t, 10)
	a.Close()
	b.Close()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for seq, n := range rc.seen {
		if n != 1 {
			t.Errorf("seq %d delivered %d times with a healthy receiver, want once", seq, n)
		}
	}
}

// TestRecordNotDelayedByHangingSink: a receiver that never answers holds
// up only its shipper; recording (the request path) goes on, and Close
// cuts the delivery in flight.
func TestRecordNotDelayedByHangingSink(t *testing.T) {
	rc := newReceiver(t, 0)
	rc.hang = make(chan struct{})
	srv := httptest.NewServer(rc)
	defer srv.Close()
	defer close(rc.hang)
	db, audit := open(t, filepath.Join(t.TempDir(), "x.db"))
	defer db.Close()
	record(t, audit, 1, 1)
	c := webhookSink(srv.URL)
	c.Timeout = time.Hour // only Close ends the hanging delivery
	sh, err := Start([]config.AuditSink{c}, db, zap.NewNop(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	record(t, audit, 2, 50) // done while the delivery of seq 1 hangs
	sh.Nudge()
	sh.Close()
	if acked, _ := db.SinkAcked(context.Background(), "siem"); acked != 0 {
		t.Fatalf("cursor %d moved without an acknowledgement", acked)
	}
}

var rfc5424 = regexp.MustCompile(`^<109>1 (\S+) (\S+) xroute-test - audit \[xroute@32473 seq="(\d+)" kind="([^"]*)"\] (\{.*\})$`)

// syslogReceiver accepts one connection on ln and sends the seq of each
// RFC 6587 octet-counted RFC 5424 frame it parses to got, checking that
// the structured data and the JSON MSG agree; it ends when the
// connection closes.
func syslogReceiver(t *testing.T, ln net.Listener, got chan<- int64) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		size, err := r.ReadString(' ')
		if err != nil {
			return
		}
		l, err := strconv.Atoi(strings.TrimSuffix(size, " "))
		if err != nil {
			t.Errorf("frame length %q", size)
			return
		}
		msg := make([]byte, l)
		if _, err := io.ReadFull(r, msg); err != nil {
			t.Errorf("frame of %d bytes: %v", l, err)
			return
		}
		f := rfc5424.FindSubmatch(msg)
		if f == nil {
			t.Errorf("not an RFC 5424 message as expected: %q", msg)
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, string(f[1])); err != nil {
			t.Errorf("timestamp %q: %v", f[1], err)
		}
		var line Line
		if err := json.Unmarshal(f[5], &line); err != nil || strconv.FormatInt(line.Seq, 10) != string(f[3]) || line.Kind != string(f[4]) {
			t.Errorf("MSG %s does not match the structured data (%v)", f[5], err)
		}
		got <- line.Seq
	}
}

// TestSyslogFrames: an in-test receiver, over plain TCP and over TLS
// (its certificate's CA given as ca_file), parses the frames; every seq
// arrives in order, those written after the start too.
func TestSyslogFrames(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate
	tlsSrv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tls  bool
	}{{"tcp", false}, {"tls", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			sc := config.AuditSink{Name: "syslog", Type: "syslog", Address: ln.Addr().String(), AppName: "xroute-test",
				BatchSize: 2, PollInterval: 20 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
			if tc.tls {
				ln = tls.NewListener(ln, tlsSrv.TLS)
				sc.TLS, sc.CAFile = true, ca
			}
			got := make(chan int64, 1000)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); syslogReceiver(t, ln, got) }()
			db, audit := open(t, filepath.Join(t.TempDir(), "x.db"))
			defer db.Close()
			record(t, audit, 1, 5)
			sh, err := Start([]config.AuditSink{sc}, db, zap.NewNop(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			var seen []int64
			deadline := time.After(30 * time.Second) // a hang guard
			for len(seen) < 8 {
				if len(seen) == 5 {
					record(t, audit, 6, 8)
					sh.Nudge()
				}
				select {
				case s := <-got:
					seen = append(seen, s)
				case <-deadline:
					sh.Close()
					ln.Close()
					wg.Wait()
					t.Fatalf("seqs seen %v, want 1..8", seen)
				}
			}
			sh.Close() // closes the connection: the receiver ends
			ln.Close()
			wg.Wait()
			for i, s := range seen {
				if s != int64(i+1) {
					t.Fatalf("seqs %v, want 1..8 in order", seen)
				}
			}
		})
	}
}

// value reads a gauge's or a counter's value.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}
