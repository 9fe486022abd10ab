package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/store"
	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/loadtest/mock"
)

// The test binary doubles as the xroute binary in a subprocess, so that a
// test can kill a real server process with SIGKILL.
func TestMain(m *testing.M) {
	if args := os.Getenv("XROUTE_TEST_SUBPROCESS_ARGS"); args != "" {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		if err := run(ctx, strings.Fields(args), io.Discard, os.Stderr); err != nil {
			os.Exit(exitCode(err)) // run printed the error
		}
		os.Exit(0)
	}
	if cfg := os.Getenv("XROUTE_TEST_SUBPROCESS_SERVE"); cfg != "" {
		os.Exit(serveHandedOver(cfg))
	}
	os.Exit(m.Run())
}

// serveHandedOver is the subprocess side of spawn: `xroute serve --config
// cfg` on the listener the parent bound and handed over as fd 3, stopping
// gracefully on SIGTERM as main does.
func serveHandedOver(cfg string) int {
	ln, err := net.FileListener(os.NewFile(3, "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "xroute: the handed-over listener:", err)
		return exitFailure
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = serve(ctx, serveOptions{configPath: cfg, listener: ln}, io.Discard, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xroute:", err)
	}
	return exitCode(err)
}

// spawn starts `xroute serve --config x.yaml` in a subprocess run in dir
// with env, and returns it with its base URL once /healthz answers 200.
// The listener is bound here and handed to the child, never closed and
// re-bound: a port found free and then reused can be taken in between.
// Our copy is closed as soon as the child has its own, so that once the
// child dies its port refuses connections instead of queueing them.
func spawn(dir string, env []string) (*exec.Cmd, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	base := "http://" + ln.Addr().String()
	f, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(env[:len(env):len(env)], "XROUTE_TEST_SUBPROCESS_SERVE=x.yaml")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{f} // fd 3 in the child
	err = cmd.Start()
	f.Close()
	if err != nil {
		return nil, "", err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	healthy := func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !testutil.Wait(testutil.Timeout, healthy) {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, "", fmt.Errorf("the server at %s did not become healthy", base)
	}
	return cmd, base, nil
}

// TestSIGKILLLosesNoCompletedResponse kills a loaded server process and
// checks that every response the clients received whole has a usage record.
func TestSIGKILLLosesNoCompletedResponse(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	up := httptest.NewServer(mock.New(mock.Config{Latency: 5 * time.Millisecond, TokensPerSec: 400, CompletionTokens: 8}))
	defer up.Close()
	cfg := fmt.Sprintf("log:\n  level: error\nproviders:\n  - {name: up, type: openai, base_url: '%s/v1'}\nmodels:\n  - {name: m, deployments: [{provider: up, model: m, free: true}]}\n", up.URL)
	os.WriteFile("x.yaml", []byte(cfg), 0o600)
	var keyOut strings.Builder
	if err := run(context.Background(), []string{"keys", "create", "--config", "x.yaml", "--name", "load", "--quiet"}, &keyOut, io.Discard); err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(keyOut.String())

	var mu sync.Mutex
	completed := map[string]bool{}
	var sent atomic.Int64
	// Three rounds of start, load, SIGKILL on the same database: each
	// kill is another chance to catch a response that left before its
	// record was durable.
	for round := 0; round < 3; round++ {
		killUnderLoad(t, dir, key, &mu, completed, &sent)
	}

	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "xroute.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// What the next start does: replay the records the killed process
	// spooled (durably, before each final byte) but had not committed.
	spool, err := app.RecoverUsage(context.Background(), db, filepath.Join(dir, "xroute.db.spool"), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	spool.Close()
	recs, err := db.ListUsage(context.Background(), books.UsageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, r := range recs {
		stored[r.RequestID] = true
	}
	missing := 0
	for id := range completed {
		if !stored[id] {
			missing++
		}
	}
	t.Logf("SIGKILL under load: %d requests sent, %d completed whole, %d usage records after restart, %d completed without a record",
		sent.Load(), len(completed), len(recs), missing)
	if len(completed) < 50 {
		t.Fatalf("the load was too small to mean anything: %d completed", len(completed))
	}
	if missing != 0 {
		t.Fatalf("%d completed responses have no usage record", missing)
	}
}

// readWhole reads and closes an answer and reports its request id and
// whether it arrived whole: a 200 with its full Content-Length, or a
// stream that reached [DONE]. Only a whole answer reached its client.
func readWhole(resp *http.Response, stream bool) (id string, whole bool) {
	defer resp.Body.Close()
	id = resp.Header.Get("x-request-id")
	if stream {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() == "data: [DONE]" {
				whole = true
			}
		}
		return id, whole
	}
	b, err := io.ReadAll(resp.Body)
	return id, err == nil && resp.StatusCode == 200 && int64(len(b)) == resp.ContentLength
}

// killUnderLoad starts a server process, loads it from 16 clients, kills
// it with SIGKILL once 100 more responses came back whole, and notes the
// ids of whole responses.
func killUnderLoad(t *testing.T, dir, key string, mu *sync.Mutex, completed map[string]bool, sent *atomic.Int64) {
	t.Helper()
	cmd, base, err := spawn(dir, os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				stream := (w+i)%2 == 0
				body := fmt.Sprintf(`{"model":"m","stream":%v,"messages":[{"role":"user","content":"hi %d-%d"}]}`, stream, w, i)
				req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				sent.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				if id, whole := readWhole(resp, stream); whole {
					mu.Lock()
					completed[id] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	// Kill once this round has some load behind it, however long that
	// takes on a busy machine.
	mu.Lock()
	before := len(completed)
	mu.Unlock()
	testutil.Eventually(t, "100 whole responses before the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(completed) >= before+100
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(stop)
	wg.Wait()
}
