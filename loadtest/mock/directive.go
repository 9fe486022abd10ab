package mock

import (
	"errors"
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

// directives force the behaviour of one request; see the package doc.
type directives struct {
	status        int
	quota         bool
	reset         bool
	streamError   bool
	tokens        int
	latency       time.Duration
	hasLatency    bool
	retryAfter    time.Duration
	hasRetryAfter bool
}

var errDirective = errors.New("mock: bad directive")

// parse applies a header-style spec: "status=429;latency=10ms;reset".
func (d *directives) parse(spec string) error {
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
				return errDirective
			}
			d.status = n
		case "quota":
			d.status, d.quota = 429, true
		case "reset":
			d.reset = true
		case "stream-error", "stream_error":
			d.streamError = true
		case "tokens":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 1_000_000 {
				return errDirective
			}
			d.tokens = n
		case "latency":
			v, err := parseDur(val, time.Millisecond)
			if err != nil {
				return errDirective
			}
			d.latency, d.hasLatency = v, true
		case "retry-after", "retry_after":
			v, err := parseDur(val, time.Second)
			if err != nil {
				return errDirective
			}
			d.retryAfter, d.hasRetryAfter = v, true
		default:
			return errDirective
		}
	}
	return nil
}

// scan applies every "#mock:..." occurrence in text.
func (d *directives) scan(text string) error {
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
		if err := d.parse(text[:end]); err != nil {
			return err
		}
		text = text[end:]
	}
}

// parseDur accepts a Go duration or a bare number of unit.
func parseDur(v string, unit time.Duration) (time.Duration, error) {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n < 0 {
			return 0, errDirective
		}
		return time.Duration(n * float64(unit)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errDirective
	}
	return d, nil
}
