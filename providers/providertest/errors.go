package providertest

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"
	"github.com/xroute/xroute/providers"
)

// Suite is what the shared tables need of one adapter under test: the
// adapter (wired to a mock upstream), how its tests build a Call from an
// OpenAI body, and what its errors must say.
type Suite struct {
	Adapter providers.Provider
	// NewCall turns an OpenAI chat body into the Call the adapter receives.
	NewCall func(t *testing.T, body string) *providers.Call
	// Model is the "model" of the bodies the suite sends.
	Model string
	// Provider, when set, is the name every error must carry.
	Provider string
	// Secret, when set, must never appear in an error's text (the key).
	Secret string
}

// body is a one-message OpenAI chat body; extra is spliced in after the
// messages (",\"tools\":[…]").
func (s Suite) body(stream bool, content, extra string) string {
	return `{"model":"` + s.Model + `","stream":` + strconv.FormatBool(stream) +
		`,"messages":[{"role":"user","content":"` + content + `"}]` + extra + `}`
}

// call runs one request either way and returns its error.
func (s Suite) call(t *testing.T, a providers.Provider, c *providers.Call, stream bool) error {
	t.Helper()
	if stream {
		st, err := a.ChatStream(context.Background(), c)
		if err == nil {
			st.Close()
		}
		return err
	}
	_, err := a.Chat(context.Background(), c)
	return err
}

// Failure is one upstream failure before the stream starts and the
// *providers.Error it must become.
type Failure struct {
	Name string
	// Content is the user message: a mock directive ("hi #mock:status=429")
	// or whatever makes the mock fail.
	Content string
	// Adapter, when set, replaces the suite's (a wrong key, an API version).
	Adapter providers.Provider
	// Edit, when set, changes the Call before it is sent.
	Edit func(*providers.Call)

	Status            int
	Type, Code, Param string
	Retryable         bool
	Timeout           bool
	RetryAfter        time.Duration
}

// Errors sends every case as a request and as a stream and checks every
// field of the error: the status, the OpenAI type/code/param the adapter
// translated to, retryability, the Retry-After it read, that it is no
// mid-stream error, that it has a message and names the provider, and
// that it does not leak the key.
func (s Suite) Errors(t *testing.T, cases []Failure) {
	t.Helper()
	for _, tc := range cases {
		for _, stream := range []bool{false, true} {
			name := tc.Name
			if stream {
				name += "/stream"
			}
			t.Run(name, func(t *testing.T) {
				a := tc.Adapter
				if a == nil {
					a = s.Adapter
				}
				c := s.NewCall(t, s.body(stream, tc.Content, ""))
				if tc.Edit != nil {
					tc.Edit(c)
				}
				err := s.call(t, a, c, stream)
				var pe *providers.Error
				if !errors.As(err, &pe) {
					t.Fatalf("want *providers.Error, got %T %v", err, err)
				}
				if pe.Status != tc.Status || pe.Type != tc.Type || pe.Code != tc.Code || pe.Param != tc.Param ||
					pe.Retryable() != tc.Retryable || pe.Timeout() != tc.Timeout || pe.RetryAfter != tc.RetryAfter || pe.MidStream {
					t.Fatalf("got status=%d type=%q code=%q param=%q retryable=%v timeout=%v retryAfter=%v midstream=%v (%s)",
						pe.Status, pe.Type, pe.Code, pe.Param, pe.Retryable(), pe.Timeout(), pe.RetryAfter, pe.MidStream, pe.Message)
				}
				s.checkError(t, pe)
			})
		}
	}
}

func (s Suite) checkError(t *testing.T, pe *providers.Error) {
	t.Helper()
	if pe.Message == "" {
		t.Fatalf("error without a message: %+v", pe)
	}
	if s.Provider != "" && pe.Provider != s.Provider {
		t.Fatalf("error names provider %q, want %q", pe.Provider, s.Provider)
	}
	if s.Secret != "" && strings.Contains(pe.Error(), s.Secret) {
		t.Fatalf("error names the key: %v", pe)
	}
}

// Break is a stream that starts and then fails: the upstream's error event
// or a cut connection.
type Break struct {
	Name    string
	Content string
	// Extra is spliced into the body after the messages.
	Extra string

	Status    int
	Retryable bool
	// Type and Message, when set, are what the error must say.
	Type, Message string
	// Text asks for some text to have arrived before the break.
	Text bool
	// Early lets the break come before the first chunk (a cut before a
	// tool call the upstream sends whole).
	Early bool
}

// Breaks streams every case and checks that chunks arrived, that none of
// them finished the answer, and that the stream then ended with a typed
// mid-stream error.
func (s Suite) Breaks(t *testing.T, cases []Break) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			st, err := s.Adapter.ChatStream(context.Background(), s.NewCall(t, s.body(true, tc.Content, tc.Extra)))
			if err != nil {
				t.Fatal(err)
			}
			chunks, err := Collect(t, st)
			var pe *providers.Error
			if !errors.As(err, &pe) || !pe.MidStream || pe.Status != tc.Status || pe.Retryable() != tc.Retryable {
				t.Fatalf("want a mid-stream *providers.Error with status %d retryable=%v, got %T %v (%#v)", tc.Status, tc.Retryable, err, err, err)
			}
			if tc.Type != "" && pe.Type != tc.Type || tc.Message != "" && pe.Message != tc.Message {
				t.Fatalf("error type %q message %q, want %q %q", pe.Type, pe.Message, tc.Type, tc.Message)
			}
			if len(chunks) == 0 && !tc.Early {
				t.Fatal("the stream should have started before failing")
			}
			text, finish := answer(t, chunks)
			if finish != "" {
				t.Fatalf("a broken stream must not finish (finish_reason %q)", finish)
			}
			if tc.Text && text == "" {
				t.Fatal("no text arrived before the break")
			}
		})
	}
}

// answer is the text and the finish_reason a list of chunks carries.
func answer(t *testing.T, chunks []providers.Chunk) (text, finish string) {
	t.Helper()
	for _, c := range chunks {
		var v struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(c.Data, &v); err != nil {
			t.Fatalf("chunk %q: %v", c.Data, err)
		}
		for _, ch := range v.Choices {
			text += ch.Delta.Content
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				finish = *ch.FinishReason
			}
		}
	}
	return text, finish
}

// TimeoutBeforeHeaders checks that an adapter whose upstream answers later
// than its timeout gives up, as a request and as a stream, with a
// retryable timeout that got no status. a must be configured with a short
// timeout against a slow upstream (or content must slow the upstream down).
func (s Suite) TimeoutBeforeHeaders(t *testing.T, a providers.Provider, content string) {
	t.Helper()
	for _, stream := range []bool{false, true} {
		err := s.call(t, a, s.NewCall(t, s.body(stream, content, "")), stream)
		var pe *providers.Error
		if !errors.As(err, &pe) || pe.Status != 0 || !pe.Timeout() || !pe.Retryable() {
			t.Fatalf("stream=%v: want a retryable timeout without status, got %T %v", stream, err, err)
		}
	}
}

// CloseMidStream starts a long stream, reads a few chunks and closes it
// (twice: Close may be called more than once), then waits for the upstream
// to see the client go: canceled reports how many requests the mock saw
// cancelled. The suite's adapter must talk to a slow, long stream.
func (s Suite) CloseMidStream(t *testing.T, canceled func() int64) {
	t.Helper()
	st, err := s.Adapter.ChatStream(context.Background(), s.NewCall(t, s.body(true, "hi", "")))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the upstream sees the cancel", func() bool { return canceled() >= 1 })
	if n := canceled(); n != 1 {
		t.Fatalf("the upstream saw %d cancels, want 1", n)
	}
}
