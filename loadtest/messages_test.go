package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

// msgEvent is one event of a test Messages stream: its "event:" name and
// its data.
type msgEvent struct {
	name string
	data map[string]any
}

// msgStreamEvents builds the events of a well-formed Messages stream
// spelling out pieces in one text block, with usage.output_tokens = tokens
// in message_delta (no usage when tokens < 0). The ping comes after the
// first content_block_start, as the API sends it.
func msgStreamEvents(pieces []string, tokens int) []msgEvent {
	ev := func(typ string, fields map[string]any) msgEvent {
		fields["type"] = typ
		return msgEvent{name: typ, data: fields}
	}
	usage := map[string]any{"input_tokens": 5, "output_tokens": tokens}
	if tokens < 0 {
		usage = nil
	}
	evs := []msgEvent{
		ev("message_start", map[string]any{"message": map[string]any{
			"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 5, "output_tokens": 1},
		}}),
		ev("content_block_start", map[string]any{"index": 0, "content_block": map[string]any{"type": "text", "text": ""}}),
		ev("ping", map[string]any{}),
	}
	for _, p := range pieces {
		evs = append(evs, ev("content_block_delta", map[string]any{"index": 0, "delta": map[string]any{"type": "text_delta", "text": p}}))
	}
	md := map[string]any{"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}}
	if usage != nil {
		md["usage"] = usage
	}
	return append(evs,
		ev("content_block_stop", map[string]any{"index": 0}),
		ev("message_delta", md),
		ev("message_stop", map[string]any{}),
	)
}

// writeMsgStream renders events as SSE.
func writeMsgStream(t testing.TB, evs []msgEvent) string {
	t.Helper()
	var b strings.Builder
	for _, e := range evs {
		data, err := json.Marshal(e.data)
		if err != nil {
			t.Fatal(err)
		}
		if e.name != "" {
			fmt.Fprintf(&b, "event: %s\n", e.name)
		}
		fmt.Fprintf(&b, "data: %s\n\n", data)
	}
	return b.String()
}

// msgIndexOf is the index of the first event of type typ.
func msgIndexOf(evs []msgEvent, typ string) int {
	return slices.IndexFunc(evs, func(e msgEvent) bool { return e.data["type"] == typ })
}

// thinkingBlock is a thinking block at index 0, to put before the text.
func thinkingBlock() []msgEvent {
	return []msgEvent{
		{name: "content_block_start", data: map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "thinking", "thinking": "", "signature": ""}}},
		{name: "content_block_delta", data: map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "thinking_delta", "thinking": "hmm"}}},
		{name: "content_block_delta", data: map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "signature_delta", "signature": "c2ln"}}},
		{name: "content_block_stop", data: map[string]any{"type": "content_block_stop", "index": 0}},
	}
}

func TestReadMessagesStream(t *testing.T) {
	words := []string{"Hello", " there", ",", " friend", "!"}
	check := StreamCheck{ExpectUsage: true, TokensPerChunk: 1, ExpectContent: "Hello there, friend!"}
	good := func() []msgEvent { return msgStreamEvents(words, 5) }
	// setIndex gives the events of type typ the index i.
	setIndex := func(evs []msgEvent, typ string, i int) []msgEvent {
		evs[msgIndexOf(evs, typ)].data["index"] = i
		return evs
	}
	tests := []struct {
		name        string
		events      func() []msgEvent
		body        func(string) io.Reader // default strings.NewReader
		check       StreamCheck
		wantProblem string
		wantChunks  int
		wantDone    bool
		wantTTFT    time.Duration // 0: not checked
	}{
		// The clock ticks once per event: the first text_delta is the fourth.
		{name: "well formed", events: good, check: check, wantChunks: 5, wantDone: true, wantTTFT: 4 * time.Millisecond},
		{name: "one byte per read", events: good, check: check, wantChunks: 5, wantDone: true, wantTTFT: 4 * time.Millisecond,
			body: func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
		{name: "CRLF line endings", events: good, check: check, wantChunks: 5, wantDone: true,
			body: func(s string) io.Reader { return strings.NewReader(strings.ReplaceAll(s, "\n", "\r\n")) }},
		{name: "ping before the first block and before message_stop", check: check, wantChunks: 5, wantDone: true,
			events: func() []msgEvent {
				evs := good()
				ping := evs[2]
				evs = slices.Delete(evs, 2, 3)
				evs = slices.Insert(evs, 1, ping)
				return slices.Insert(evs, len(evs)-1, ping)
			}},
		{name: "two tokens per delta", events: func() []msgEvent { return msgStreamEvents(words, 10) },
			check: StreamCheck{ExpectUsage: true, TokensPerChunk: 2}, wantChunks: 5, wantDone: true},
		{name: "a thinking block before the text", check: check, wantChunks: 5, wantDone: true,
			events: func() []msgEvent {
				evs := good()
				for i := range evs {
					if _, ok := evs[i].data["index"]; ok {
						evs[i].data["index"] = 1
					}
				}
				return slices.Insert(evs, 1, thinkingBlock()...)
			}},
		{name: "an unknown event inside the message", check: check, wantChunks: 5, wantDone: true,
			events: func() []msgEvent {
				return slices.Insert(good(), 4, msgEvent{name: "future_event", data: map[string]any{"type": "future_event"}})
			}},

		// Start and end.
		{name: "missing message_stop", check: check, wantProblem: "stream_no_message_stop", wantChunks: 5,
			events: func() []msgEvent { evs := good(); return evs[:len(evs)-1] }},
		{name: "cut after the deltas", check: check, wantProblem: "stream_no_message_stop", wantChunks: 5,
			events: func() []msgEvent { evs := good(); return evs[:len(evs)-3] }},
		{name: "missing message_start", check: check, wantProblem: "stream_event_order", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { return good()[1:] }},
		{name: "ping before message_start", check: check, wantProblem: "stream_event_order", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { evs := good(); return slices.Insert(evs, 0, evs[2]) }},
		{name: "missing message_delta", check: check, wantProblem: "stream_event_order", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { evs := good(); return slices.Delete(evs, len(evs)-2, len(evs)-1) }},
		{name: "event after message_stop", check: check, wantProblem: "stream_event_after_message_stop", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { evs := good(); return append(evs, evs[2]) }},
		{name: "error event mid-stream", check: check, wantProblem: "stream_error_event", wantChunks: 2,
			events: func() []msgEvent {
				return append(good()[:5], msgEvent{name: "error", data: map[string]any{"type": "error",
					"error": map[string]any{"type": "overloaded_error", "message": "Overloaded"}}})
			}},

		// Blocks.
		{name: "missing content_block_stop", check: check, wantProblem: "stream_block_unpaired", wantChunks: 5, wantDone: true,
			events: func() []msgEvent {
				evs := good()
				return slices.Delete(evs, msgIndexOf(evs, "content_block_stop"), msgIndexOf(evs, "content_block_stop")+1)
			}},
		{name: "content_block_stop of another index", check: check, wantProblem: "stream_block_unpaired", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { return setIndex(good(), "content_block_stop", 1) }},
		{name: "first block not index 0", check: check, wantProblem: "stream_block_unpaired", wantChunks: 5, wantDone: true,
			events: func() []msgEvent {
				evs := good()
				for i := range evs {
					if _, ok := evs[i].data["index"]; ok {
						evs[i].data["index"] = 2
					}
				}
				return evs
			}},
		{name: "delta of another block", check: check, wantProblem: "stream_block_unpaired", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { return setIndex(good(), "content_block_delta", 3) }},
		{name: "second block starts before the first stops", check: check, wantProblem: "stream_block_unpaired", wantChunks: 5, wantDone: true,
			events: func() []msgEvent {
				evs := good()
				second := msgEvent{name: "content_block_start", data: map[string]any{"type": "content_block_start", "index": 1,
					"content_block": map[string]any{"type": "text", "text": ""}}}
				return slices.Insert(evs, msgIndexOf(evs, "content_block_stop"), second)
			}},
		{name: "delta before its block starts", check: check, wantProblem: "stream_block_unpaired", wantChunks: 5, wantDone: true,
			events: func() []msgEvent {
				evs := good()
				evs[1], evs[3] = evs[3], evs[1]
				return evs
			}},
		{name: "text_delta in a thinking block", check: StreamCheck{}, wantProblem: "stream_event_order", wantChunks: 5, wantDone: true,
			events: func() []msgEvent {
				evs := good()
				evs[1].data["content_block"] = map[string]any{"type": "thinking", "thinking": ""}
				return evs
			}},

		// Text.
		{name: "text mismatch", check: check, wantProblem: "stream_content_mismatch", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { return msgStreamEvents([]string{"Hello", " there", ";", " friend", "!"}, 5) }},
		{name: "reordered deltas", check: check, wantProblem: "stream_content_mismatch", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { return msgStreamEvents([]string{" there", "Hello", ",", " friend", "!"}, 5) }},
		{name: "dropped delta", check: StreamCheck{ExpectContent: check.ExpectContent}, wantProblem: "stream_content_mismatch", wantChunks: 4, wantDone: true,
			events: func() []msgEvent { return slices.Delete(good(), 4, 5) }},

		// Framing, stop reason, usage.
		{name: "event line differs from type", check: check, wantProblem: "stream_bad_event", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { evs := good(); evs[1].name = "content_block_delta"; return evs }},
		{name: "no event line", check: check, wantProblem: "stream_bad_event", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { evs := good(); evs[4].name = ""; return evs }},
		{name: "no stop_reason", check: check, wantProblem: "stream_no_stop_reason", wantChunks: 5, wantDone: true,
			events: func() []msgEvent {
				evs := good()
				evs[msgIndexOf(evs, "message_delta")].data["delta"] = map[string]any{"stop_reason": nil}
				return evs
			}},
		{name: "no usage", check: check, wantProblem: "stream_no_usage", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { return msgStreamEvents(words, -1) }},
		{name: "usage not required", check: StreamCheck{}, wantChunks: 5, wantDone: true,
			events: func() []msgEvent { return msgStreamEvents(words, -1) }},
		{name: "output tokens differ from the deltas", check: check, wantProblem: "stream_chunks_mismatch", wantChunks: 5, wantDone: true,
			events: func() []msgEvent { return msgStreamEvents(words, 7) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := writeMsgStream(t, tc.events())
			var r io.Reader = strings.NewReader(body)
			if tc.body != nil {
				r = tc.body(body)
			}
			start := time.Unix(1000, 0)
			var res StreamResult
			if err := ReadMessagesStream(r, start, fakeClock(start), tc.check, &res); err != nil {
				t.Fatalf("ReadMessagesStream: %v", err)
			}
			if got := res.Problem(tc.check); got != tc.wantProblem {
				t.Errorf("Problem = %q, want %q (unexpected: %q)", got, tc.wantProblem, res.Unexpected)
			}
			if res.ContentChunks != tc.wantChunks {
				t.Errorf("ContentChunks = %d, want %d", res.ContentChunks, tc.wantChunks)
			}
			if res.Done != tc.wantDone {
				t.Errorf("Done = %v, want %v", res.Done, tc.wantDone)
			}
			if tc.wantTTFT != 0 && res.TTFT != tc.wantTTFT {
				t.Errorf("TTFT = %v, want %v", res.TTFT, tc.wantTTFT)
			}
			if tc.wantChunks > 0 && len(res.Gaps) != tc.wantChunks-1 {
				t.Errorf("len(Gaps) = %d, want %d", len(res.Gaps), tc.wantChunks-1)
			}
			if tc.wantProblem == "" && (res.FinishReason != "end_turn" || res.Unexpected != "") {
				t.Errorf("FinishReason = %q, Unexpected = %q", res.FinishReason, res.Unexpected)
			}
			if (tc.wantProblem == "stream_event_order" || tc.wantProblem == "stream_block_unpaired") && res.Unexpected == "" {
				t.Error("Unexpected is empty for an out-of-order stream")
			}
		})
	}
}

func TestReadMessagesStreamUnexpected(t *testing.T) {
	evs := msgStreamEvents([]string{"a", "b"}, 2)
	evs[msgIndexOf(evs, "content_block_stop")].data["index"] = 1
	var res StreamResult
	if err := ReadMessagesStream(strings.NewReader(writeMsgStream(t, evs)), time.Now(), time.Now, StreamCheck{}, &res); err != nil {
		t.Fatal(err)
	}
	if want := "content_block_stop (index 1) after content_block_delta: block 0 open"; res.Unexpected != want {
		t.Fatalf("Unexpected = %q, want %q", res.Unexpected, want)
	}
}

// TestStreamResultResetMessages reuses one result for a Messages stream,
// then a Responses and a chat stream, as the runner's pool does.
func TestStreamResultResetMessages(t *testing.T) {
	var res StreamResult
	check := StreamCheck{ExpectUsage: true, TokensPerChunk: 1, ExpectContent: "abc"}
	pieces := []string{"a", "b", "c"}
	for range 2 {
		res.Reset()
		if err := ReadMessagesStream(strings.NewReader(writeMsgStream(t, msgStreamEvents(pieces, 3))), time.Now(), time.Now, check, &res); err != nil {
			t.Fatal(err)
		}
		if p := res.Problem(check); p != "" {
			t.Fatalf("Messages stream: Problem = %q", p)
		}
	}
	res.Reset()
	if err := ReadResponsesStream(strings.NewReader(writeRespStream(t, respStreamEvents(pieces, 3))), time.Now(), time.Now, check, &res); err != nil {
		t.Fatal(err)
	}
	if p := res.Problem(check); p != "" {
		t.Fatalf("Responses stream after a Messages one: Problem = %q", p)
	}
	res.Reset()
	if err := ReadChatStream(strings.NewReader(chatStream(pieces, 3, true)), time.Now(), time.Now, check, &res); err != nil {
		t.Fatal(err)
	}
	if p := res.Problem(check); p != "" {
		t.Fatalf("chat stream after a Messages one: Problem = %q", p)
	}
}

// refMsgEvent is the reference reading of an event, by encoding/json.
type refMsgEvent struct {
	Type         *string                `json:"type"`
	Index        *int                   `json:"index"`
	ContentBlock *struct{ Type string } `json:"content_block"`
	Delta        *struct {
		Type       string  `json:"type"`
		Text       any     `json:"text"`
		StopReason *string `json:"stop_reason"`
	} `json:"delta"`
	Usage *struct {
		OutputTokens *int `json:"output_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

func TestScanMsgEventMatchesEncodingJSON(t *testing.T) {
	var events []string
	evs := msgStreamEvents([]string{"Hi", " \"there\"\n", " café 😀"}, 3)
	evs = slices.Insert(evs, 1, thinkingBlock()...)
	for _, e := range evs {
		b, err := json.Marshal(e.data)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, string(b))
	}
	events = append(events,
		`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
		// Keys in another order, as xroute's encoder writes them.
		`{"delta":{"text":"So","type":"text_delta"},"index":0,"type":"content_block_delta"}`,
		`{"content_block":{"text":"","type":"text"},"index":12,"type":"content_block_start"}`,
		`{"delta":{"stop_reason":"max_tokens","stop_sequence":null},"type":"message_delta","usage":{"input_tokens":13,"output_tokens":32}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"citations_delta","citation":{"text":"not the text"}}}`,
		` { "type" : "message_delta" , "usage" : { "output_tokens" : null } , "delta" : null } `,
	)
	for _, ev := range events {
		t.Run(ev[:min(len(ev), 50)], func(t *testing.T) {
			var ref refMsgEvent
			if err := json.Unmarshal([]byte(ev), &ref); err != nil {
				t.Fatalf("reference: %v", err)
			}
			var s scanner
			var got msgEventFields
			if !scanMsgEvent([]byte(ev), &s, &got) {
				t.Fatal("scanMsgEvent rejected a valid event")
			}
			if ref.Type == nil || string(got.Type) != *ref.Type {
				t.Errorf("Type = %q, want %v", got.Type, ref.Type)
			}
			if got.HasIndex != (ref.Index != nil) || (ref.Index != nil && got.Index != *ref.Index) {
				t.Errorf("Index = %v/%d, want %v", got.HasIndex, got.Index, ref.Index)
			}
			if ref.ContentBlock != nil && string(got.BlockType) != ref.ContentBlock.Type {
				t.Errorf("BlockType = %q, want %q", got.BlockType, ref.ContentBlock.Type)
			}
			var dt, stop string
			var text any
			if d := ref.Delta; d != nil {
				dt, text = d.Type, d.Text
				if d.StopReason != nil {
					stop = *d.StopReason
				}
			}
			x, ok := text.(string)
			if string(got.DeltaType) != dt || got.HasText != ok || string(got.Text) != x || string(got.StopReason) != stop {
				t.Errorf("delta = %q/%v/%q/%q, want %q/%v/%q/%q", got.DeltaType, got.HasText, got.Text, got.StopReason, dt, ok, x, stop)
			}
			wantUsage := ref.Usage != nil && ref.Usage.OutputTokens != nil
			if got.HasUsage != wantUsage || (wantUsage && got.OutputTokens != *ref.Usage.OutputTokens) {
				t.Errorf("usage = %v/%d, want %+v", got.HasUsage, got.OutputTokens, ref.Usage)
			}
			if wantErr := len(ref.Error) > 0 && string(ref.Error) != "null"; got.HasError != wantErr {
				t.Errorf("HasError = %v, want %v", got.HasError, wantErr)
			}
		})
	}
}

func TestScanMsgEventRejectsMalformed(t *testing.T) {
	for _, ev := range []string{
		``, `[DONE]`, `{`, `{"type":"x"`, `{"type":"x",}`, `{"type":x}`, `{"delta":{"text":}}`,
		`{"type":"x"} trailing`, `{"delta":{"text":"unterminated}}`, `{"content_block":"not an object"}`, "{\"delta\":{\"text\":\"ctl\x01\"}}",
	} {
		var s scanner
		var got msgEventFields
		if scanMsgEvent([]byte(ev), &s, &got) {
			t.Errorf("scanMsgEvent(%q) accepted malformed JSON", ev)
		}
	}
}

// TestClosedLoopMessagesStreams runs Messages streams through the client
// and the runner: the request carries the key in x-api-key and
// anthropic-version; good streams are completed, a broken one is a bad
// stream with its own error kind, as in the other stream phases.
func TestClosedLoopMessagesStreams(t *testing.T) {
	good := writeMsgStream(t, msgStreamEvents([]string{"a", "b", "c"}, 3))
	evs := msgStreamEvents([]string{"a", "b", "c"}, 3)
	broken := writeMsgStream(t, evs[:len(evs)-1]) // no message_stop
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Model     string `json:"model"`
			MaxTokens int    `json:"max_tokens"`
			Stream    bool   `json:"stream"`
			Messages  []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
		}
		err := json.NewDecoder(r.Body).Decode(&body)
		switch {
		case err != nil || body.Model != "m" || body.MaxTokens != 16 || !body.Stream || len(body.Messages) != 1 || body.Messages[0].Role != "user":
			http.Error(w, fmt.Sprintf("bad body %+v: %v", body, err), http.StatusBadRequest)
			return
		case r.Header.Get("x-api-key") != "sk-test" || r.Header.Get("Authorization") != "" ||
			r.Header.Get("anthropic-version") != AnthropicVersion || r.Header.Get("Content-Type") != "application/json":
			http.Error(w, fmt.Sprintf("bad headers %v", r.Header), http.StatusUnauthorized)
			return
		}
		out := good
		if n.Add(1) == 3 {
			out = broken
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, ev := range strings.SplitAfter(out, "\n\n") {
			fmt.Fprint(w, ev)
			f.Flush()
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	c := NewClient(Target{Name: "fake", BaseURL: srv.URL + "/v1", APIKey: "sk-test"}, 2)
	defer c.CloseIdle()
	req := MessagesRequest("m", "hello", 16, true)
	if req.Path != "/messages" || req.Format != StreamMessages || !req.Check.ExpectUsage {
		t.Fatalf("MessagesRequest = %+v", req)
	}
	req.Check.TokensPerChunk, req.Check.ExpectContent = 1, "abc"
	res, err := NewRunner(c, &req, "test", nil).Closed(context.Background(), ClosedLoop{Workers: 1, Duration: time.Minute, MaxRequests: 5})
	if err != nil {
		t.Fatalf("Closed: %v", err)
	}
	if res.Completed != 4 || res.Errors["stream_no_message_stop"] != 1 {
		t.Fatalf("completed %d errors %v, want 4 and stream_no_message_stop=1", res.Completed, res.Errors)
	}
	if s := res.Streams; s == nil || s.Total != 5 || s.Valid != 4 || s.Invalid != 1 || s.MissingDone != 1 || s.ContentChunks != 15 {
		t.Fatalf("streams %+v", res.Streams)
	}
}

func BenchmarkReadMessagesStream(b *testing.B) {
	pieces := make([]string, 64)
	for i := range pieces {
		pieces[i] = " token"
	}
	body := writeMsgStream(b, msgStreamEvents(pieces, 64))
	check := StreamCheck{ExpectUsage: true, TokensPerChunk: 1, ExpectContent: strings.Repeat(" token", 64)}
	var res StreamResult
	r := strings.NewReader(body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r.Reset(body)
		res.Reset()
		if err := ReadMessagesStream(r, time.Now(), time.Now, check, &res); err != nil {
			b.Fatal(err)
		}
		if p := res.Problem(check); p != "" {
			b.Fatal(p)
		}
	}
}
