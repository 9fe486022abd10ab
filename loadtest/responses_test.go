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

// respEvent is one event of a test Responses stream: its "event:" name and
// its data. The data's sequence_number is added when the stream is written.
type respEvent struct {
	name string
	data map[string]any
}

// respStreamEvents builds the events of a well-formed Responses stream
// spelling out pieces, with usage.output_tokens = tokens (no usage when
// tokens < 0).
func respStreamEvents(pieces []string, tokens int) []respEvent {
	const respID, msgID = "resp_1", "msg_1"
	text := strings.Join(pieces, "")
	part := func(t string) map[string]any {
		return map[string]any{"type": "output_text", "annotations": []any{}, "text": t}
	}
	message := func(status string, content []any) map[string]any {
		return map[string]any{"id": msgID, "type": "message", "status": status, "role": "assistant", "content": content}
	}
	response := func(status string, output []any, usage any) map[string]any {
		return map[string]any{"id": respID, "object": "response", "status": status, "model": "m",
			"error": nil, "text": map[string]any{"format": map[string]any{"type": "text"}}, "output": output, "usage": usage}
	}
	ev := func(typ string, fields map[string]any) respEvent {
		fields["type"] = typ
		return respEvent{name: typ, data: fields}
	}
	item := func(typ string, fields map[string]any) respEvent {
		fields["item_id"], fields["output_index"] = msgID, 0
		return ev(typ, fields)
	}
	var usage any
	if tokens >= 0 {
		usage = map[string]any{"input_tokens": 5, "output_tokens": tokens, "total_tokens": 5 + tokens,
			"output_tokens_details": map[string]any{"reasoning_tokens": 0}}
	}
	evs := []respEvent{
		ev("response.created", map[string]any{"response": response("in_progress", []any{}, nil)}),
		ev("response.in_progress", map[string]any{"response": response("in_progress", []any{}, nil)}),
		ev("response.output_item.added", map[string]any{"output_index": 0, "item": message("in_progress", []any{})}),
		item("response.content_part.added", map[string]any{"content_index": 0, "part": part("")}),
	}
	for _, p := range pieces {
		evs = append(evs, item("response.output_text.delta", map[string]any{"content_index": 0, "delta": p, "logprobs": []any{}}))
	}
	return append(evs,
		item("response.output_text.done", map[string]any{"content_index": 0, "text": text, "logprobs": []any{}}),
		item("response.content_part.done", map[string]any{"content_index": 0, "part": part(text)}),
		ev("response.output_item.done", map[string]any{"output_index": 0, "item": message("completed", []any{part(text)})}),
		ev("response.completed", map[string]any{"response": response("completed", []any{message("completed", []any{part(text)})}, usage)}),
	)
}

// writeRespStream renders events as SSE, numbering them from 0 unless an
// event already carries a sequence_number.
func writeRespStream(t testing.TB, evs []respEvent) string {
	t.Helper()
	var b strings.Builder
	for i, e := range evs {
		if _, ok := e.data["sequence_number"]; !ok {
			e.data["sequence_number"] = i
		}
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

// indexOf is the index of the first event of type typ.
func indexOf(evs []respEvent, typ string) int {
	return slices.IndexFunc(evs, func(e respEvent) bool { return e.data["type"] == typ })
}

func TestReadResponsesStream(t *testing.T) {
	words := []string{"Hello", " there", ",", " friend", "!"}
	check := StreamCheck{ExpectUsage: true, TokensPerChunk: 1, ExpectContent: "Hello there, friend!"}
	good := func() []respEvent { return respStreamEvents(words, 5) }
	tests := []struct {
		name        string
		events      func() []respEvent
		body        func(string) io.Reader // default strings.NewReader
		check       StreamCheck
		wantProblem string
		wantChunks  int
		wantDone    bool
	}{
		{name: "well formed", events: good, check: check, wantChunks: 5, wantDone: true},
		{name: "one byte per read", events: good, check: check, wantChunks: 5, wantDone: true,
			body: func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
		{name: "CRLF line endings", events: good, check: check, wantChunks: 5, wantDone: true,
			body: func(s string) io.Reader { return strings.NewReader(strings.ReplaceAll(s, "\n", "\r\n")) }},
		{name: "comments ignored", events: good, check: check, wantChunks: 5, wantDone: true,
			body: func(s string) io.Reader { return strings.NewReader(": keep-alive\n\n" + s) }},
		{name: "two tokens per delta", events: func() []respEvent { return respStreamEvents(words, 10) },
			check: StreamCheck{ExpectUsage: true, TokensPerChunk: 2}, wantChunks: 5, wantDone: true},
		{name: "a reasoning item before the message", check: check, wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				rs := []respEvent{
					{name: "response.output_item.added", data: map[string]any{"type": "response.output_item.added", "output_index": 0, "item": map[string]any{"id": "rs_1", "type": "reasoning", "summary": []any{}}}},
					{name: "response.reasoning_summary_text.delta", data: map[string]any{"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "delta": "hmm"}},
					{name: "response.output_item.done", data: map[string]any{"type": "response.output_item.done", "output_index": 0, "item": map[string]any{"id": "rs_1", "type": "reasoning", "summary": []any{}}}},
				}
				return slices.Insert(evs, 2, rs...)
			}},

		// Out of order.
		{name: "delta before content_part.added", check: check, wantProblem: "stream_event_order", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				i := indexOf(evs, "response.content_part.added")
				evs[i], evs[i+1] = evs[i+1], evs[i]
				return evs
			}},
		{name: "in_progress before created", check: check, wantProblem: "stream_event_order", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				evs[0], evs[1] = evs[1], evs[0]
				return evs
			}},
		{name: "completed before output_item.done", check: check, wantProblem: "stream_event_after_completed", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				n := len(evs)
				evs[n-2], evs[n-1] = evs[n-1], evs[n-2]
				return evs
			}},
		{name: "content_part.done before output_text.done", check: check, wantProblem: "stream_event_order", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				i := indexOf(evs, "response.output_text.done")
				evs[i], evs[i+1] = evs[i+1], evs[i]
				return evs
			}},
		{name: "no created", check: check, wantProblem: "stream_event_order", wantChunks: 5, wantDone: true,
			events: func() []respEvent { return good()[1:] }},

		// Missing or wrong end.
		{name: "missing completed", check: check, wantProblem: "stream_no_completed", wantChunks: 5,
			events: func() []respEvent { evs := good(); return evs[:len(evs)-1] }},
		{name: "incomplete", check: check, wantProblem: "stream_incomplete", wantChunks: 5,
			events: func() []respEvent {
				evs := good()
				last := &evs[len(evs)-1]
				last.name, last.data["type"] = "response.incomplete", "response.incomplete"
				last.data["response"].(map[string]any)["status"] = "incomplete"
				return evs
			}},
		{name: "error event mid-stream", check: check, wantProblem: "stream_error_event", wantChunks: 2,
			events: func() []respEvent {
				evs := good()[:6]
				return append(evs, respEvent{name: "error", data: map[string]any{"type": "error", "code": "server_error", "message": "boom",
					"error": map[string]any{"type": "server_error", "message": "boom"}}})
			}},
		{name: "event after completed", check: check, wantProblem: "stream_event_after_completed", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				return append(evs, respEvent{name: "response.in_progress", data: map[string]any{"type": "response.in_progress"}})
			}},

		// Text.
		{name: "delta/done mismatch", check: StreamCheck{ExpectUsage: true, TokensPerChunk: 1}, wantProblem: "stream_text_mismatch", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				evs[indexOf(evs, "response.output_text.done")].data["text"] = "Hello there friend!"
				return evs
			}},
		{name: "dropped delta", check: StreamCheck{ExpectUsage: true, TokensPerChunk: 1}, wantProblem: "stream_text_mismatch", wantChunks: 4, wantDone: true,
			events: func() []respEvent {
				evs := good()
				return slices.Delete(evs, 5, 6)
			}},
		{name: "completed text differs", check: StreamCheck{ExpectUsage: true, TokensPerChunk: 1}, wantProblem: "stream_text_mismatch", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				other := respStreamEvents([]string{"Bye"}, 5)
				evs[len(evs)-1] = other[len(other)-1]
				return evs
			}},
		{name: "reordered deltas", check: check, wantProblem: "stream_content_mismatch", wantChunks: 5, wantDone: true,
			events: func() []respEvent { return respStreamEvents([]string{" there", "Hello", ",", " friend", "!"}, 5) }},

		// Sequence numbers.
		{name: "repeated sequence number", check: check, wantProblem: "stream_sequence", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				evs[3].data["sequence_number"] = 2
				return evs
			}},
		{name: "decreasing sequence number", check: check, wantProblem: "stream_sequence", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				evs[6].data["sequence_number"] = 1
				return evs
			}},
		{name: "gaps in sequence numbers are fine", check: check, wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				for i := range evs {
					evs[i].data["sequence_number"] = 10 * i
				}
				return evs
			}},
		{name: "missing sequence number", check: check, wantProblem: "stream_sequence", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				evs[4].data["sequence_number"] = nil
				return evs
			}},

		// Framing, ids, usage.
		{name: "event line differs from type", check: check, wantProblem: "stream_bad_event", wantChunks: 5, wantDone: true,
			events: func() []respEvent { evs := good(); evs[2].name = "response.output_item.done"; return evs }},
		{name: "no event line", check: check, wantProblem: "stream_bad_event", wantChunks: 5, wantDone: true,
			events: func() []respEvent { evs := good(); evs[4].name = ""; return evs }},
		{name: "response id changed", check: check, wantProblem: "stream_id_changed", wantChunks: 5, wantDone: true,
			events: func() []respEvent {
				evs := good()
				evs[len(evs)-1].data["response"].(map[string]any)["id"] = "resp_2"
				return evs
			}},
		{name: "no usage", check: check, wantProblem: "stream_no_usage", wantChunks: 5, wantDone: true,
			events: func() []respEvent { return respStreamEvents(words, -1) }},
		{name: "usage not required", check: StreamCheck{}, wantChunks: 5, wantDone: true,
			events: func() []respEvent { return respStreamEvents(words, -1) }},
		{name: "output tokens differ from deltas", check: check, wantProblem: "stream_chunks_mismatch", wantChunks: 5, wantDone: true,
			events: func() []respEvent { return respStreamEvents(words, 7) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := writeRespStream(t, tc.events())
			var r io.Reader = strings.NewReader(body)
			if tc.body != nil {
				r = tc.body(body)
			}
			start := time.Unix(1000, 0)
			var res StreamResult
			if err := ReadResponsesStream(r, start, fakeClock(start), tc.check, &res); err != nil {
				t.Fatalf("ReadResponsesStream: %v", err)
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
			if tc.wantProblem == "" && tc.name != "a reasoning item before the message" && res.TTFT != 5*time.Millisecond {
				// The clock ticks once per event: the first delta is the fifth.
				t.Errorf("TTFT = %v, want 5ms", res.TTFT)
			}
			if tc.wantChunks > 0 && len(res.Gaps) != tc.wantChunks-1 {
				t.Errorf("len(Gaps) = %d, want %d", len(res.Gaps), tc.wantChunks-1)
			}
			if tc.wantProblem == "stream_event_order" && res.Unexpected == "" {
				t.Error("Unexpected is empty for an out-of-order stream")
			}
		})
	}
}

func TestReadResponsesStreamUnexpected(t *testing.T) {
	evs := respStreamEvents([]string{"a", "b"}, 2)
	i := indexOf(evs, "response.content_part.added")
	evs[i], evs[i+1] = evs[i+1], evs[i]
	var res StreamResult
	if err := ReadResponsesStream(strings.NewReader(writeRespStream(t, evs)), time.Now(), time.Now, StreamCheck{}, &res); err != nil {
		t.Fatal(err)
	}
	if want := "response.output_text.delta after response.output_item.added"; res.Unexpected != want {
		t.Fatalf("Unexpected = %q, want %q", res.Unexpected, want)
	}
}

// TestStreamResultResetBetweenFormats reuses one result for a Responses
// stream and then a chat stream, as the runner's pool does.
func TestStreamResultResetBetweenFormats(t *testing.T) {
	var res StreamResult
	check := StreamCheck{ExpectUsage: true, TokensPerChunk: 1, ExpectContent: "abc"}
	body := writeRespStream(t, respStreamEvents([]string{"a", "b", "c"}, 3))
	for range 2 {
		res.Reset()
		if err := ReadResponsesStream(strings.NewReader(body), time.Now(), time.Now, check, &res); err != nil {
			t.Fatal(err)
		}
		if p := res.Problem(check); p != "" {
			t.Fatalf("Responses stream: Problem = %q", p)
		}
	}
	res.Reset()
	if err := ReadChatStream(strings.NewReader(chatStream([]string{"a", "b", "c"}, 3, true)), time.Now(), time.Now, check, &res); err != nil {
		t.Fatal(err)
	}
	if p := res.Problem(check); p != "" {
		t.Fatalf("chat stream after a Responses one: Problem = %q", p)
	}
}

func TestSSEReaderEventNames(t *testing.T) {
	r := NewSSEReader(strings.NewReader("event: a\ndata: 1\n\nevent: skipped\n\ndata: 2\n\nevent: c\r\ndata: 3\r\ndata: 4"))
	for i, want := range [][2]string{{"a", "1"}, {"", "2"}, {"c", "3\n4"}} {
		name, data, err := r.NextEvent()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if string(name) != want[0] || string(data) != want[1] {
			t.Fatalf("event %d = %q %q, want %q %q", i, name, data, want[0], want[1])
		}
	}
	if _, _, err := r.NextEvent(); err != io.EOF {
		t.Fatalf("after last event: %v, want io.EOF", err)
	}
}

// refRespEvent is the reference reading of an event, by encoding/json.
type refRespEvent struct {
	Type     *string                `json:"type"`
	Seq      *int                   `json:"sequence_number"`
	Delta    any                    `json:"delta"`
	Text     any                    `json:"text"`
	Item     *struct{ Type string } `json:"item"`
	Part     *struct{ Type string } `json:"part"`
	Error    json.RawMessage        `json:"error"`
	Response *struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Output []struct {
			Type    string `json:"type"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
		Usage *struct {
			OutputTokens int `json:"output_tokens"`
		} `json:"usage"`
	} `json:"response"`
}

func TestScanRespEventMatchesEncodingJSON(t *testing.T) {
	var events []string
	for _, e := range respStreamEvents([]string{"Hi", " \"there\"\n", " café 😀"}, 3) {
		b, err := json.Marshal(e.data)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, string(b))
	}
	events = append(events,
		`{"type":"error","code":"server_error","message":"boom","param":null,"error":{"type":"server_error"},"sequence_number":7}`,
		`{"sequence_number":3,"text":{"format":"x"},"delta":null,"type":"response.function_call_arguments.delta"}`,
		`{"type":"response.completed","response":{"usage":{"output_tokens":9},"output":[{"content":[{"text":"no","type":"refusal"},{"text":"yes","type":"output_text"}],"type":"message"},{"type":"reasoning","content":[{"type":"output_text","text":"hidden"}]},null],"status":"completed","id":"r"},"sequence_number":12}`,
		` { "type" : "response.created" , "response" : null , "sequence_number" : 0 } `,
	)
	for _, ev := range events {
		t.Run(ev[:min(len(ev), 50)], func(t *testing.T) {
			var ref refRespEvent
			if err := json.Unmarshal([]byte(ev), &ref); err != nil {
				t.Fatalf("reference: %v", err)
			}
			var s scanner
			var got respEventFields
			if !scanRespEvent([]byte(ev), &s, &got) {
				t.Fatal("scanRespEvent rejected a valid event")
			}
			str := func(v any) (string, bool) { s, ok := v.(string); return s, ok }
			if ref.Type == nil || string(got.Type) != *ref.Type {
				t.Errorf("Type = %q, want %v", got.Type, ref.Type)
			}
			if got.HasSeq != (ref.Seq != nil) || (ref.Seq != nil && got.Seq != *ref.Seq) {
				t.Errorf("Seq = %v/%d, want %v", got.HasSeq, got.Seq, ref.Seq)
			}
			if d, ok := str(ref.Delta); got.HasDelta != ok || string(got.Delta) != d {
				t.Errorf("Delta = %v/%q, want %v/%q", got.HasDelta, got.Delta, ok, d)
			}
			if x, ok := str(ref.Text); got.HasText != ok || string(got.Text) != x {
				t.Errorf("Text = %v/%q, want %v/%q", got.HasText, got.Text, ok, x)
			}
			if ref.Item != nil && string(got.ItemType) != ref.Item.Type || ref.Part != nil && string(got.PartType) != ref.Part.Type {
				t.Errorf("item/part type = %q/%q, want %+v/%+v", got.ItemType, got.PartType, ref.Item, ref.Part)
			}
			if wantErr := len(ref.Error) > 0 && string(ref.Error) != "null"; got.HasError != wantErr {
				t.Errorf("HasError = %v, want %v", got.HasError, wantErr)
			}
			if got.Resp != (ref.Response != nil) {
				t.Fatalf("Resp = %v, want %v", got.Resp, ref.Response != nil)
			}
			if ref.Response == nil {
				return
			}
			var text string
			for _, it := range ref.Response.Output {
				if it.Type != "message" {
					continue
				}
				for _, p := range it.Content {
					if p.Type == "output_text" {
						text += p.Text
					}
				}
			}
			r := ref.Response
			if string(got.RespID) != r.ID || string(got.Status) != r.Status || string(got.OutputText) != text {
				t.Errorf("id/status/text = %q/%q/%q, want %q/%q/%q", got.RespID, got.Status, got.OutputText, r.ID, r.Status, text)
			}
			if got.HasUsage != (r.Usage != nil) || (r.Usage != nil && got.OutputTokens != r.Usage.OutputTokens) {
				t.Errorf("usage = %v/%d, want %+v", got.HasUsage, got.OutputTokens, r.Usage)
			}
		})
	}
}

func TestScanRespEventRejectsMalformed(t *testing.T) {
	for _, ev := range []string{
		``, `[DONE]`, `{`, `{"type":"x"`, `{"type":"x",}`, `{"type":x}`, `{"response":{"output":[{"content":[}]}}`,
		`{"type":"x"} trailing`, `{"delta":"unterminated}`, `{"item":"not an object"}`, "{\"text\":\"ctl\x01\"}",
	} {
		var s scanner
		var got respEventFields
		if scanRespEvent([]byte(ev), &s, &got) {
			t.Errorf("scanRespEvent(%q) accepted malformed JSON", ev)
		}
	}
}

// TestClosedLoopResponsesStreams runs Responses streams through the client
// and the runner: good ones are completed, a broken one is a bad stream
// with its own error kind, as in the chat phase.
func TestClosedLoopResponsesStreams(t *testing.T) {
	good := writeRespStream(t, respStreamEvents([]string{"a", "b", "c"}, 3))
	broken := writeRespStream(t, respStreamEvents([]string{"a", "b", "c"}, 3)[:7]) // no done events, no completed
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/responses", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		body := good
		if n.Add(1) == 3 {
			body = broken
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		for _, ev := range strings.SplitAfter(body, "\n\n") {
			fmt.Fprint(w, ev)
			f.Flush()
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	c := NewClient(Target{Name: "fake", BaseURL: srv.URL + "/v1"}, 2)
	defer c.CloseIdle()
	req := ResponsesRequest("m", "hello", 16, true)
	if req.Path != "/responses" || req.Format != StreamResponses || !strings.Contains(string(req.Body), `"stream":true`) {
		t.Fatalf("ResponsesRequest = %+v", req)
	}
	req.Check.TokensPerChunk, req.Check.ExpectContent = 1, "abc"
	res, err := NewRunner(c, &req, "test", nil).Closed(context.Background(), ClosedLoop{Workers: 1, Duration: time.Minute, MaxRequests: 5})
	if err != nil {
		t.Fatalf("Closed: %v", err)
	}
	if res.Completed != 4 || res.Errors["stream_no_completed"] != 1 {
		t.Fatalf("completed %d errors %v, want 4 and stream_no_completed=1", res.Completed, res.Errors)
	}
	if s := res.Streams; s == nil || s.Total != 5 || s.Valid != 4 || s.Invalid != 1 || s.MissingDone != 1 || s.ContentChunks != 15 {
		t.Fatalf("streams %+v", res.Streams)
	}
}

func BenchmarkReadResponsesStream(b *testing.B) {
	pieces := make([]string, 64)
	for i := range pieces {
		pieces[i] = " token"
	}
	body := writeRespStream(b, respStreamEvents(pieces, 64))
	check := StreamCheck{ExpectUsage: true, TokensPerChunk: 1, ExpectContent: strings.Repeat(" token", 64)}
	var res StreamResult
	r := strings.NewReader(body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r.Reset(body)
		res.Reset()
		if err := ReadResponsesStream(r, time.Now(), time.Now, check, &res); err != nil {
			b.Fatal(err)
		}
		if p := res.Problem(check); p != "" {
			b.Fatal(p)
		}
	}
}
