package loadtest

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// chatStream builds an OpenAI-style stream of the given content pieces.
func chatStream(pieces []string, usageTokens int, done bool) string {
	var b strings.Builder
	b.WriteString(`data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}` + "\n\n")
	for _, p := range pieces {
		fmt.Fprintf(&b, `data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}],"usage":null}`+"\n\n", p)
	}
	b.WriteString(`data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}` + "\n\n")
	if usageTokens >= 0 {
		fmt.Fprintf(&b, `data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":%d,"total_tokens":%d}}`+"\n\n", usageTokens, usageTokens+5)
	}
	if done {
		b.WriteString("data: [DONE]\n\n")
	}
	return b.String()
}

// fakeClock advances one millisecond per call.
func fakeClock(start time.Time) func() time.Time {
	t := start
	return func() time.Time {
		t = t.Add(time.Millisecond)
		return t
	}
}

func TestReadChatStream(t *testing.T) {
	words := []string{"Hello", " there", ",", " friend", "!"}
	check := StreamCheck{ExpectUsage: true, TokensPerChunk: 1, ExpectContent: "Hello there, friend!"}
	tests := []struct {
		name        string
		body        io.Reader
		check       StreamCheck
		wantProblem string
		wantChunks  int
		wantDone    bool
	}{
		{"well formed", strings.NewReader(chatStream(words, 5, true)), check, "", 5, true},
		{"one byte per read", iotest.OneByteReader(strings.NewReader(chatStream(words, 5, true))), check, "", 5, true},
		{"half reads", iotest.HalfReader(strings.NewReader(chatStream(words, 5, true))), check, "", 5, true},
		{"CRLF line endings", strings.NewReader(strings.ReplaceAll(chatStream(words, 5, true), "\n", "\r\n")), check, "", 5, true},
		{"comments and other fields ignored", strings.NewReader(": ping\nevent: message\nid: 3\n\n" + chatStream(words, 5, true)), check, "", 5, true},
		{"DONE without final blank line", strings.NewReader(strings.TrimSuffix(chatStream(words, 5, true), "\n\n")), check, "", 5, true},
		{"missing DONE", strings.NewReader(chatStream(words, 5, false)), check, "stream_no_done", 5, false},
		{"dropped chunk", strings.NewReader(chatStream([]string{"Hello", " there", " friend", "!"}, 5, true)), check, "stream_chunks_mismatch", 4, true},
		{"reordered chunks", strings.NewReader(chatStream([]string{" there", "Hello", ",", " friend", "!"}, 5, true)),
			check, "stream_content_mismatch", 5, true},
		{"no usage chunk", strings.NewReader(chatStream(words, -1, true)), check, "stream_no_usage", 5, true},
		{"usage not required", strings.NewReader(chatStream(words, -1, true)), StreamCheck{}, "", 5, true},
		{"two tokens per chunk", strings.NewReader(chatStream(words, 10, true)), StreamCheck{ExpectUsage: true, TokensPerChunk: 2}, "", 5, true},
		{"error event", strings.NewReader(chatStream(words[:2], -1, false) + `data: {"error":{"message":"boom","type":"server_error"}}` + "\n\n"),
			StreamCheck{}, "stream_error_event", 2, false},
		{"bad json", strings.NewReader("data: {not json\n\ndata: [DONE]\n\n"), StreamCheck{}, "stream_bad_json", 0, true},
		{"data after DONE", strings.NewReader(chatStream(words, 5, true) + chatStream(nil, -1, false)), StreamCheck{}, "stream_data_after_done", 5, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			var res StreamResult
			if err := ReadChatStream(tc.body, start, fakeClock(start), tc.check, &res); err != nil {
				t.Fatalf("ReadChatStream: %v", err)
			}
			if got := res.Problem(tc.check); got != tc.wantProblem {
				t.Errorf("Problem = %q, want %q", got, tc.wantProblem)
			}
			if res.ContentChunks != tc.wantChunks {
				t.Errorf("ContentChunks = %d, want %d", res.ContentChunks, tc.wantChunks)
			}
			if res.Done != tc.wantDone {
				t.Errorf("Done = %v, want %v", res.Done, tc.wantDone)
			}
			if tc.wantChunks > 0 {
				// The clock ticks once per event: the first content chunk is the second event.
				if res.TTFT != 2*time.Millisecond {
					t.Errorf("TTFT = %v, want 2ms", res.TTFT)
				}
				if len(res.Gaps) != tc.wantChunks-1 {
					t.Errorf("len(Gaps) = %d, want %d", len(res.Gaps), tc.wantChunks-1)
				}
			}
		})
	}
}

// TestReadChatStreamSplitWrites feeds a stream through a pipe in pieces that
// cut lines, fields and the [DONE] marker in the middle.
func TestReadChatStreamSplitWrites(t *testing.T) {
	body := chatStream([]string{"a", "b", "c"}, 3, true)
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(body); i += 7 {
			if _, err := pw.Write([]byte(body[i:min(i+7, len(body))])); err != nil {
				return
			}
		}
		pw.Close()
	}()
	var res StreamResult
	check := StreamCheck{ExpectUsage: true, TokensPerChunk: 1, ExpectContent: "abc", CollectContent: true}
	if err := ReadChatStream(pr, time.Now(), time.Now, check, &res); err != nil {
		t.Fatalf("ReadChatStream: %v", err)
	}
	if p := res.Problem(check); p != "" {
		t.Fatalf("Problem = %q, want none (result %+v)", p, res)
	}
	if string(res.Content) != "abc" || res.UsageTokens != 3 || res.FinishReason != "stop" {
		t.Fatalf("content %q usage %d finish %q", res.Content, res.UsageTokens, res.FinishReason)
	}
}

func TestReadChatStreamReadError(t *testing.T) {
	body := io.MultiReader(strings.NewReader(chatStream([]string{"a"}, -1, false)), iotest.ErrReader(io.ErrUnexpectedEOF))
	var res StreamResult
	err := ReadChatStream(body, time.Now(), time.Now, StreamCheck{}, &res)
	if err == nil {
		t.Fatal("want the read error")
	}
	if res.ContentChunks != 1 {
		t.Fatalf("ContentChunks = %d, want 1 before the error", res.ContentChunks)
	}
}

func TestSSEReaderLongLineAndMultiData(t *testing.T) {
	long := strings.Repeat("x", 10000) // longer than the reader's buffer
	r := NewSSEReader(strings.NewReader("data: " + long + "\n\ndata: a\ndata: b\n\ndata\n\n"))
	want := []string{long, "a\nb", ""}
	for i, w := range want {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if string(got) != w {
			t.Fatalf("event %d = %.20q (len %d), want %.20q (len %d)", i, got, len(got), w, len(w))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after last event: %v, want io.EOF", err)
	}
}

func BenchmarkReadChatStream(b *testing.B) {
	pieces := make([]string, 64)
	for i := range pieces {
		pieces[i] = " token"
	}
	body := chatStream(pieces, 64, true)
	check := StreamCheck{ExpectUsage: true, TokensPerChunk: 1, ExpectContent: strings.Repeat(" token", 64)}
	var res StreamResult
	r := strings.NewReader(body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r.Reset(body)
		res.Reset()
		if err := ReadChatStream(r, time.Now(), time.Now, check, &res); err != nil {
			b.Fatal(err)
		}
		if p := res.Problem(check); p != "" {
			b.Fatal(p)
		}
	}
}
