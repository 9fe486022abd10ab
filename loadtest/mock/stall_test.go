package mock

import (
	"bufio"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"
)

// TestStallDirective: stall=N sends N events (0: the headers alone), then
// holds the connection silent until the client leaves, which is counted
// as canceled; every text API of the mock obeys it.
func TestStallDirective(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path, body string
		events           int
	}{
		{"chat headers only", "/chat/completions", `{"model":"mock-small","stream":true,"messages":[{"role":"user","content":"hi #mock:stall"}]}`, 0},
		{"chat first chunk", "/chat/completions", `{"model":"mock-small","stream":true,"messages":[{"role":"user","content":"hi #mock:stall=1"}]}`, 1},
		{"completions first chunk", "/completions", `{"model":"mock-small","stream":true,"prompt":"hi #mock:stall=1"}`, 1},
		{"responses two events", "/responses", `{"model":"mock-small","stream":true,"input":"hi #mock:stall=2"}`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, base := startServer(t, Config{})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp := post(t, ctx, base+tc.path, tc.body, nil)
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			r := bufio.NewReader(resp.Body)
			for i := 0; i < tc.events; i++ {
				for { // one event: lines up to a blank one
					line, err := r.ReadString('\n')
					if err != nil {
						t.Fatalf("event %d: %v", i, err)
					}
					if line == "\n" {
						break
					}
				}
			}
			got := make(chan string, 1)
			go func() {
				line, _ := r.ReadString('\n')
				got <- line
			}()
			// The upstream is silent: the read is still blocked while the
			// stream is counted as started and not finished.
			select {
			case line := <-got:
				t.Fatalf("the stalled stream sent %q", line)
			case <-time.After(50 * time.Millisecond):
			}
			cancel()
			<-got
			testutil.Eventually(t, "the cancel counted", func() bool { return s.Stats().Canceled == 1 })
			if st := s.Stats(); st.Completed != 0 || st.Streams != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestMalformedDirective: the stream's fault point carries an event that
// is not JSON, and the stream ends there without [DONE].
func TestMalformedDirective(t *testing.T) {
	t.Parallel()
	_, base := startServer(t, Config{})
	resp := post(t, context.Background(), base+"/chat/completions", `{"model":"mock-small","stream":true,"messages":[{"role":"user","content":"hi #mock:malformed"}]}`, nil)
	body := string(readAll(t, resp))
	events := strings.Split(strings.TrimSpace(body), "\n\n")
	if len(events) != eventsBeforeFault+1 || !strings.HasSuffix(events[len(events)-1], `"trunc`) || strings.Contains(body, "[DONE]") {
		t.Fatalf("stream %q", body)
	}
}
