package mock

import (
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DirectiveHeader carries per-request directives for direct callers, e.g.
// "X-Mock-Directive: status=429;latency=10ms".
const DirectiveHeader = "X-Mock-Directive"

// directivePrefix marks a directive in the last user message (chat) or in an
// input string (embeddings), e.g. "#mock:status=503" or "#mock:reset".
const directivePrefix = "#mock:"

// Directives force the behaviour of one request, in every wire format's
// mock (see the package doc for the syntax). The zero value forces
// nothing.
type Directives struct {
	Status       int  // error status to answer with (400..599), 0 = none
	Quota        bool // a permanent quota/billing failure (Status is 429)
	Reset        bool // cut the connection
	StreamError  bool // streams: end with an error event after a few events
	StreamFailed bool // Responses API streams: the error event is response.failed
	// Stall (when HasStall) is how many stream events go out before the
	// upstream falls silent, holding the connection open until the client
	// leaves: 0 sends the headers and nothing else. A non-stream gets no
	// answer at all.
	Stall    int
	HasStall bool
	// Malformed streams send an event that is not JSON at the fault point
	// and end there.
	Malformed bool
	Tokens    int // completion length in tokens, 0 = the configured one
	// TokensPerSec paces a chat or Responses stream instead of the
	// configured rate (0: the configured one).
	TokensPerSec  float64
	Latency       time.Duration
	HasLatency    bool
	RetryAfter    time.Duration
	HasRetryAfter bool
	// Call names the one tool the answer calls (when the request offers
	// it), and Args sets string arguments of that call: scripted agent
	// tests ("#mock:call=exec_command #mock:arg.cmd=cat%20hello.txt")
	// drive a real client's tool round trip.
	Call string
	Args map[string]string
	// Only names the one mock (Config.Name) whose answer the directives'
	// faults (status, quota, reset, stall, malformed, stream-error) apply
	// to; every other mock answers normally. With two deployments of a
	// model on two mocks, "#mock:status=503;only=mock-primary" fails the
	// first and lets a gateway's failover land on the second.
	Only string
	// Usage shapes the usage an answer reports (chat and Responses):
	// "omit" leaves it out (a non-streamed answer has none, a stream no
	// usage chunk even when asked), "negative", "huge" and "text" report
	// a broken one (prompt tokens −1e9, 1e12, or strings), as some
	// compatible servers do. Gateways must not bill any of them as 0.
	Usage string
}

// UsageModes are the values of the usage= directive.
var UsageModes = []string{"omit", "negative", "huge", "text"}

// ErrDirective is returned for a malformed directive.
var ErrDirective = errors.New("mock: bad directive")

// tokensPerSec is the pace of a stream: the directive's, else cfg's.
func (d *Directives) tokensPerSec(cfg float64) float64 {
	if d != nil && d.TokensPerSec > 0 {
		return d.TokensPerSec
	}
	return cfg
}

// ParseDirectives applies a header-style spec (the X-Mock-Directive value,
// may be empty), then every "#mock:..." occurrence in text (the last user
// message, or the embeddings input); text directives apply after header
// ones. The error, ErrDirective, means either is malformed (the mocks
// answer 400).
func ParseDirectives(header, text string) (Directives, error) {
	var d Directives
	if err := d.Parse(header); err != nil {
		return Directives{}, err
	}
	if err := d.Scan(text); err != nil {
		return Directives{}, err
	}
	return d, nil
}

// Parse applies a header-style spec: "status=429;latency=10ms;reset".
func (d *Directives) Parse(spec string) error {
	for spec != "" {
		var item string
		if i := strings.IndexAny(spec, ";,"); i >= 0 {
			item, spec = spec[:i], spec[i+1:]
		} else {
			item, spec = spec, ""
		}
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, val, _ := strings.Cut(item, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.TrimSpace(val)
		switch key {
		case "status":
			n, err := strconv.Atoi(val)
			if err != nil || n < 400 || n > 599 {
				return ErrDirective
			}
			d.Status = n
		case "quota":
			d.Status, d.Quota = 429, true
		case "reset":
			d.Reset = true
		case "stall":
			n := 0
			if val != "" {
				var err error
				if n, err = strconv.Atoi(val); err != nil || n < 0 || n > 1_000_000 {
					return ErrDirective
				}
			}
			d.Stall, d.HasStall = n, true
		case "malformed":
			d.Malformed = true
		case "stream-error", "stream_error":
			d.StreamError = true
			d.StreamFailed = strings.EqualFold(val, "failed")
		case "tokens":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 1_000_000 {
				return ErrDirective
			}
			d.Tokens = n
		case "tps":
			v, err := strconv.ParseFloat(val, 64)
			if err != nil || !(v > 0 && v <= 1_000_000) {
				return ErrDirective
			}
			d.TokensPerSec = v
		case "latency":
			v, err := parseDur(val, time.Millisecond)
			if err != nil {
				return ErrDirective
			}
			d.Latency, d.HasLatency = v, true
		case "usage":
			if !slices.Contains(UsageModes, val) {
				return ErrDirective
			}
			d.Usage = val
		case "call":
			if val == "" {
				return ErrDirective
			}
			d.Call = val
		case "only":
			if val == "" {
				return ErrDirective
			}
			d.Only = val
		case "retry-after", "retry_after":
			v, err := parseDur(val, time.Second)
			if err != nil {
				return ErrDirective
			}
			d.RetryAfter, d.HasRetryAfter = v, true
		default:
			name, ok := strings.CutPrefix(key, "arg.")
			if !ok || name == "" {
				return ErrDirective
			}
			v, err := url.PathUnescape(val) // %20 for spaces: a directive ends at whitespace
			if err != nil {
				return ErrDirective
			}
			if d.Args == nil {
				d.Args = map[string]string{}
			}
			d.Args[name] = v
		}
	}
	return nil
}

// Called is the index, among the n tools a request offers (name(i) is
// the i-th one's name), of the tool a call= directive names; ok is false
// without such a directive or when the request does not offer that tool.
func (d *Directives) Called(n int, name func(i int) string) (i int, ok bool) {
	if d == nil || d.Call == "" {
		return 0, false
	}
	for i := 0; i < n; i++ {
		if name(i) == d.Call {
			return i, true
		}
	}
	return 0, false
}

// SetArgs makes c's arguments exactly the arg.* directives (strings): the
// generated ones fill every property of the schema, and a real client may
// refuse values it did not expect (a float where it parses an integer).
func (d *Directives) SetArgs(c *ToolCall) {
	if d == nil || len(d.Args) == 0 {
		return
	}
	b, _ := json.Marshal(d.Args)
	c.Args = string(b)
	c.Frags = Fragments(c.Args)
}

// Scan applies every "#mock:..." occurrence in text.
func (d *Directives) Scan(text string) error {
	for {
		i := strings.Index(text, directivePrefix)
		if i < 0 {
			return nil
		}
		text = text[i+len(directivePrefix):]
		end := strings.IndexAny(text, " \t\r\n")
		if end < 0 {
			end = len(text)
		}
		if err := d.Parse(text[:end]); err != nil {
			return err
		}
		text = text[end:]
	}
}

// parseDur accepts a Go duration or a bare number of unit.
func parseDur(v string, unit time.Duration) (time.Duration, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n < 0 {
			return 0, ErrDirective
		}
		return time.Duration(n * float64(unit)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, ErrDirective
	}
	return d, nil
}

// ForMock drops the faults of directives addressed (only=) to another mock
// than name; it reports whether they were kept.
func (d *Directives) ForMock(name string) bool {
	if d.Only == "" || d.Only == name {
		return true
	}
	d.Status, d.Quota, d.Reset, d.StreamError, d.StreamFailed = 0, false, false, false, false
	d.Stall, d.HasStall, d.Malformed = 0, false, false
	return false
}
