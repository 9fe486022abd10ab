package httpapi_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStreamChunkLeavesBeforeTheNextArrives: the relay flushes chunks when
// it is about to wait for the upstream, not after each one (chunks that
// arrived together leave in one write), so no chunk may wait for a later
// one. The upstream here sends each chunk only once the caller has read the
// one before: a chunk held back would deadlock the stream.
func TestStreamChunkLeavesBeforeTheNextArrives(t *testing.T) {
	t.Parallel()
	const n = 5
	got := make(chan struct{}, 1)
	g := newGateway(t, gwOptions{wrapPrimary: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v1/chat/completions" {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			f := w.(http.Flusher)
			for i := range n {
				fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mock-small\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d \"},\"finish_reason\":null}],\"usage\":null}\n\n", i)
				f.Flush()
				select {
				case <-got:
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mock-small\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n")
			fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"mock-small\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5,\"total_tokens\":8}}\n\ndata: [DONE]\n\n")
			f.Flush()
		})
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", g.base+"/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+g.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	seen, done := 0, false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, fmt.Sprintf(`"content":"t%d "`, seen)):
			seen++
			got <- struct{}{} // the upstream may send the next one
		case line == "data: [DONE]":
			done = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("after %d chunks: %v (a chunk held back until the next arrived?)", seen, err)
	}
	if seen != n || !done {
		t.Fatalf("read %d of %d chunks, [DONE] %v", seen, n, done)
	}
}
