package sse

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t *testing.T, r io.Reader) ([]Event, error) {
	t.Helper()
	rd := NewReader(r)
	var out []Event
	for {
		ev, err := rd.Next()
		if err != nil {
			return out, err
		}
		out = append(out, Event{Name: ev.Name, Data: append([]byte(nil), ev.Data...)})
	}
}

func TestReader(t *testing.T) {
	long := strings.Repeat("x", 40000)
	tests := []struct {
		name    string
		in      string
		want    []string // "name|data"
		wantErr error
	}{
		{"openai style", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []string{`|{"a":1}`, "|[DONE]"}, io.EOF},
		{"anthropic style with event names", "event: message_start\ndata: {}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n", []string{"message_start|{}", `ping|{"type":"ping"}`}, io.EOF},
		{"crlf and no space after colon", "data:{\"a\":1}\r\n\r\n", []string{`|{"a":1}`}, io.EOF},
		{"comments and blank lines skipped", ": ping\n\n\n\ndata: x\n\n", []string{"|x"}, io.EOF},
		{"multi-line data joined", "data: a\ndata: b\n\n", []string{"|a\nb"}, io.EOF},
		{"last event without blank line", "data: tail", []string{"|tail"}, io.EOF},
		{"line longer than the buffer", "data: " + long + "\n\n", []string{"|" + long}, io.EOF},
		{"event name without data is dropped", "event: x\n\ndata: y\n\n", []string{"|y"}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time: events split across reads must still parse.
			evs, err := readAll(t, iotest.OneByteReader(strings.NewReader(tt.in)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if len(evs) != len(tt.want) {
				t.Fatalf("got %d events, want %d", len(evs), len(tt.want))
			}
			for i, ev := range evs {
				if got := ev.Name + "|" + string(ev.Data); got != tt.want[i] {
					t.Errorf("event %d = %.60q, want %.60q", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestReaderBoundsLineLength(t *testing.T) {
	in := "data: " + strings.Repeat("y", MaxLineBytes+10) + "\n\n"
	_, err := readAll(t, strings.NewReader(in))
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("want ErrLineTooLong, got %v", err)
	}
}

// FuzzReader: any byte stream yields events or an error, never a panic or a
// hang, and every event's data is exactly what the data lines carried.
func FuzzReader(f *testing.F) {
	for _, seed := range []string{
		"data: {\"a\":1}\n\ndata: [DONE]\n\n",
		"event: message_start\ndata: {}\n\n",
		"data:x\r\n\r\n: comment\n\ndata: a\ndata: b\n\n",
		"data: tail",
		"\n\n\n",
		"event: x\n\n",
		":\n",
		"data: " + strings.Repeat("z", 5000) + "\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rd := NewReader(strings.NewReader(string(in)))
		for i := 0; i <= len(in)+1; i++ {
			ev, err := rd.Next()
			if err != nil {
				return
			}
			if len(ev.Data) > len(in) {
				t.Fatalf("event data longer than the input: %d > %d", len(ev.Data), len(in))
			}
		}
		t.Fatal("more events than input bytes")
	})
}

// segments returns one segment per Read, as a network connection returns
// what arrived together, and counts the reads.
type segments struct {
	parts []string
	reads int
	check func()
}

func (s *segments) Read(p []byte) (int, error) {
	s.check()
	s.reads++
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.parts[0])
	s.parts = s.parts[1:]
	return n, nil
}

// TestOnWaitOnlyBeforeARead: the wait hook runs before every read of the
// underlying reader and at no other time, so events that arrived together
// are returned without one (the relay flushes them together) and no
// event is returned while a hook is still owed.
func TestOnWaitOnlyBeforeARead(t *testing.T) {
	src := &segments{parts: []string{"data: a\n\ndata: b\n\n", "data: c\n", "\n", "event: d\ndata: e\r\n\r\n"}}
	waits := 0
	src.check = func() {
		if waits != src.reads+1 {
			t.Fatalf("read %d without its wait (waits %d)", src.reads+1, waits)
		}
	}
	r := NewReader(src)
	r.OnWait(func() { waits++ })
	var got []string
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(ev.Data)+"@"+strconv.Itoa(waits))
	}
	// a and b came in one read: no wait between them.
	if want := "a@1 b@1 c@3 e@4"; strings.Join(got, " ") != want {
		t.Fatalf("events@waits %q, want %q", strings.Join(got, " "), want)
	}
	if waits != src.reads {
		t.Fatalf("%d waits for %d reads", waits, src.reads)
	}
}
