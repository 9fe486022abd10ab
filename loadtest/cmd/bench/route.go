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

// checkRoutes makes sure that the responses-stream phase measures what it
// says: that xroute relays the mock's Responses events as they are and that
// xroute-translated re-encodes them. A relayed stream's final response
// object is the mock's own, with the mock's fields in the mock's order;
// xroute's encoder writes its own object. The result is a note for the
// report (a mismatch is a warning, not a failure: the runs still say what
// they measured).
func (b *bench) checkRoutes(ctx context.Context, servers []server, report *loadtest.Report) string {
	shapes := map[string]string{}
	for _, s := range servers {
		name := s.target.Name
		if !runsIn(name, phaseResponsesStream) || skipped(report, name, phaseResponsesStream) {
			continue
		}
		shape, err := responseShape(ctx, s.target, b.request(phaseResponsesStream, loadtest.StreamCheck{}))
		if err != nil {
			return fmt.Sprintf("responses route check: %s: %v", name, err)
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
		return fmt.Sprintf("**responses route check failed**: the final response object of %s is not what its route should give "+
			"(passthrough: the mock's own; translated: xroute's): the responses-stream numbers of %[1]s do not measure what they say",
			strings.Join(wrong, ", "))
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
		parts = append(parts, fmt.Sprintf("%s %s the mock's events as they are (the final response object is the mock's own)",
			strings.Join(relayed, " and "), verb(relayed, "relays", "relay")))
	}
	if len(reencoded) > 0 {
		parts = append(parts, fmt.Sprintf("%s %s them (the final response object is xroute's own)",
			strings.Join(reencoded, " and "), verb(reencoded, "re-encodes", "re-encode")))
	}
	if len(parts) == 0 {
		return ""
	}
	return "responses route check: " + strings.Join(parts, "; ")
}

// responseShape sends req (a streamed Responses request) to t and returns
// the top-level keys, in order, of the response object of the stream's
// response.completed event.
func responseShape(ctx context.Context, t loadtest.Target, req loadtest.Request) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(t.BaseURL, "/")+req.Path, bytes.NewReader(req.Body))
	if err != nil {
		return "", err
	}
	hreq.Header.Set("Authorization", "Bearer "+t.APIKey)
	hreq.Header.Set("Content-Type", "application/json")
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
			return "", errors.New("no response.completed event")
		}
		if err != nil {
			return "", err
		}
		if string(name) != "response.completed" {
			continue
		}
		var ev struct {
			Response json.RawMessage `json:"response"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", fmt.Errorf("response.completed: %w", err)
		}
		keys, err := objectKeys(ev.Response)
		if err != nil {
			return "", fmt.Errorf("response.completed: %w", err)
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
