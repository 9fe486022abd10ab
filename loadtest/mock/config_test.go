package mock

import (
	"bufio"
	"context"
	"flag"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"
)

func TestFailuresDeterministic(t *testing.T) {
	t.Parallel()
	run := func() []int {
		_, base := startServer(t, Config{FailRate429: 0.2, FailRate500: 0.2, FailRate503: 0.2, Seed: 42})
		var out []int
		for range 30 {
			resp := post(t, context.Background(), base+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, nil)
			readAll(t, resp)
			out = append(out, resp.StatusCode)
		}
		return out
	}
	a, b := run(), run()
	kinds := map[int]bool{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("sequences differ: %v vs %v", a, b)
		}
		kinds[a[i]] = true
	}
	if len(kinds) < 3 {
		t.Fatalf("too few outcomes: %v", a)
	}
}

func TestSetConfigConcurrent(t *testing.T) {
	t.Parallel()
	srv, base := startServer(t, Config{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				stream := (i+j)%2 == 0
				resp := post(t, context.Background(), base+"/chat/completions", `{"model":"m","stream":`+strconv.FormatBool(stream)+`,"messages":[{"role":"user","content":"x"}]}`, nil)
				readAll(t, resp)
				if resp.StatusCode != 200 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	for i := range 50 {
		srv.SetConfig(Config{ChunkTokens: i%3 + 1, CompletionTokens: i%5 + 1, Seed: int64(i)})
		_ = srv.Stats()
	}
	wg.Wait()
	testutil.Eventually(t, "all handlers done", func() bool { return srv.Stats().Active == 0 })
	if s := srv.Stats(); s.Chat != 80 || s.Completed != 80 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRegisterFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	err := fs.Parse([]string{"-latency", "20ms", "-tokens-per-sec", "30", "-chunk-tokens", "2", "-fail-429", "0.1",
		"-fail-500", "0.2", "-fail-503", "0.3", "-reset-rate", "0.4", "-retry-after", "2s", "-seed", "7",
		"-api-key", "k", "-models", "a, b,,c", "-completion-tokens", "9"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Latency: 20 * time.Millisecond, TokensPerSec: 30, ChunkTokens: 2, CompletionTokens: 9, FailRate429: 0.1,
		FailRate500: 0.2, FailRate503: 0.3, ResetRate: 0.4, RetryAfter: 2 * time.Second, Seed: 7, APIKey: "k", Models: []string{"a", "b", "c"}}
	if mustJSON(t, cfg) != mustJSON(t, want) {
		t.Fatalf("got %+v", cfg)
	}
	var def Config
	def.RegisterFlags(flag.NewFlagSet("y", flag.ContinueOnError))
	if def.ChunkTokens != 1 || def.CompletionTokens != 16 {
		t.Fatalf("defaults %+v", def)
	}
}

func TestMainServes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- Main(ctx, []string{"-addr", "127.0.0.1:0", "-api-key", "k"}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "mock listening on ")
	if !ok || !strings.HasSuffix(base, "/v1") {
		t.Fatalf("line %q", line)
	}
	go io.Copy(io.Discard, pr)
	list, err := goClient(base, "k").ListModels(context.Background())
	if err != nil || len(list.Models) == 0 {
		t.Fatalf("%+v %v", list, err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
