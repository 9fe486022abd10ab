package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/xroute/xroute/loadtest"
)

// routeProbe is what checkRoutes compares in a phase: the keys of the
// object field of the stream's first event named event, and the words of
// the report's note.
type routeProbe struct {
	label, event, field, object, mock string
}

// routeProbes are the phases whose routes checkRoutes checks.
func routeProbes() map[string]routeProbe {
	return map[string]routeProbe{
		phaseResponsesStream: {label: "responses", event: "response.completed", field: "response",
			object: "the final response object", mock: "the mock"},
		phaseMessagesStream: {label: "messages", event: "message_start", field: "message",
			object: "message_start's message object", mock: "the Anthropic mock"},
	}
}

// checkRoutes makes sure that a phase of the Responses or the Messages API
// measures what it says: that xroute relays the mock's events as they are
// and that xroute-translated re-encodes them. A relayed stream's objects
// (the final response, message_start's message) are the mock's own, with
// the mock's fields in the mock's order; xroute's encoder writes its own.
// The result is a note for the report (a mismatch is a warning, not a
// failure: the runs still say what they measured).
func (b *bench) checkRoutes(ctx context.Context, phase string, servers []*server, report *loadtest.Report) string {
	p, ok := routeProbes()[phase]
	if !ok {
		return ""
	}
	shapes := map[string]string{}
	for _, s := range servers {
		name := s.target.Name
		// Portkey's route is its own business: the check is about
		// what xroute measures.
		if !runsIn(name, phase) || skipped(report, name, phase) || name == targetPortkey {
			continue
		}
		shape, err := eventShape(ctx, s.in(phase).target, b.request(phase, loadtest.StreamCheck{}), p.event, p.field)
		if err != nil {
			return fmt.Sprintf("%s route check: %s: %v", p.label, name, err)
		}
		shapes[name] = shape
	}
	mock, ok := shapes[targetDirect]
	if !ok {
		return ""
	}
	var relayed, reencoded, wrong []string
	for _, name := range b.cfg.targets {
		shape, ok := shapes[name]
		if !ok || name == targetDirect {
			continue
		}
		same, wantSame := shape == mock, name != targetXrouteTranslated
		switch {
		case same && wantSame:
			relayed = append(relayed, name)
		case !same && !wantSame:
			reencoded = append(reencoded, name)
		default:
			wrong = append(wrong, name)
		}
	}
	if len(wrong) > 0 {
		return fmt.Sprintf("**%s route check failed**: %s of %s is not what its route should give "+
			"(passthrough: the mock's own; translated: xroute's): the %s numbers of %[3]s do not measure what they say",
			p.label, p.object, strings.Join(wrong, ", "), phase)
	}
	// verb picks the form that agrees with the number of names.
	verb := func(names []string, one, many string) string {
		if len(names) == 1 {
			return one
		}
		return many
	}
	var parts []string
	if len(relayed) > 0 {
		parts = append(parts, fmt.Sprintf("%s %s %s's events as they are (%s is %[3]s's own)",
			strings.Join(relayed, " and "), verb(relayed, "relays", "relay"), p.mock, p.object))
	}
	if len(reencoded) > 0 {
		parts = append(parts, fmt.Sprintf("%s %s them (%s is xroute's own)",
			strings.Join(reencoded, " and "), verb(reencoded, "re-encodes", "re-encode"), p.object))
	}
	if len(parts) == 0 {
		return ""
	}
	return p.label + " route check: " + strings.Join(parts, "; ")
}

// eventShape sends req (a streamed request) to t and returns the top-level
// keys, in order, of the object in field of the stream's first event
// named event.
func eventShape(ctx context.Context, t loadtest.Target, req loadtest.Request, event, field string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(t.BaseURL, "/")+req.Path, bytes.NewReader(req.Body))
	if err != nil {
		return "", err
	}
	req.SetHeaders(hreq.Header, t.APIKey)
	for k, vs := range t.Header {
		hreq.Header[http.CanonicalHeaderKey(k)] = vs
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := hc.Do(hreq)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	sr := loadtest.NewSSEReader(resp.Body)
	for {
		name, data, err := sr.NextEvent()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("no %s event", event)
		}
		if err != nil {
			return "", err
		}
		if string(name) != event {
			continue
		}
		var ev map[string]json.RawMessage
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", fmt.Errorf("%s: %w", event, err)
		}
		keys, err := objectKeys(ev[field])
		if err != nil {
			return "", fmt.Errorf("%s.%s: %w", event, field, err)
		}
		return strings.Join(keys, ","), nil
	}
}

// objectKeys returns the keys of a JSON object, in order.
func objectKeys(raw []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not an object")
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
