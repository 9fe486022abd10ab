// Before measuring: probe the mock's stream of each phase (what a correct
// stream looks like) and smoke-test every target with one request.

package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/xroute/xroute/loadtest"
)

// probeStream reads two streams of a streaming phase from the mock
// directly to learn what a good stream looks like: if the text is the same
// both times it becomes the expected content (catching reordered chunks),
// and the ratio of usage tokens to content chunks sets the chunk-count
// check.
func (b *bench) probeStream(ctx context.Context, mockBase, phase string) (loadtest.StreamCheck, string) {
	check := loadtest.StreamCheck{ExpectUsage: true}
	chunk, tokensField := "chunk", "usage.completion_tokens"
	switch specOf(phase).api {
	case apiResp:
		chunk, tokensField = "output_text delta", "usage.output_tokens"
	case apiMsgs:
		chunk, tokensField = "text_delta", "message_delta usage.output_tokens"
	}
	c := loadtest.NewClient(loadtest.Target{Name: "probe", BaseURL: mockBase, APIKey: mockKey}, 2)
	defer c.CloseIdle()
	req := b.request(phase, loadtest.StreamCheck{ExpectUsage: true, CollectContent: true})
	var texts [2]string
	var chunks, tokens int
	for i := range texts {
		var o loadtest.Outcome
		c.Do(ctx, &req, time.Now(), &o)
		if o.ErrKind != "" {
			return check, fmt.Sprintf("probe stream from the mock failed (%s): content and %s-count checks off", o.ErrKind, chunk)
		}
		texts[i] = string(o.Stream.Content)
		chunks, tokens = o.Stream.ContentChunks, o.Stream.UsageTokens
	}
	var notes []string
	if texts[0] == texts[1] && texts[0] != "" {
		check.ExpectContent = texts[0]
		notes = append(notes, fmt.Sprintf("content checked against the mock's deterministic text (%d bytes)", len(texts[0])))
	} else {
		notes = append(notes, "mock text varies between requests: content check off")
	}
	for k := 1; k <= max(tokens, 1) && chunks > 0; k++ {
		if (tokens+k-1)/k == chunks {
			check.TokensPerChunk = k
			break
		}
	}
	if check.TokensPerChunk > 0 {
		notes = append(notes, fmt.Sprintf("%s count checked against %s (%d tokens in %d %ss: %d token(s)/%s)",
			chunk, tokensField, tokens, chunks, chunk, check.TokensPerChunk, chunk))
	} else {
		notes = append(notes, fmt.Sprintf("%s=%d does not match %d %ss: %s-count check off", tokensField, tokens, chunks, chunk, chunk))
	}
	return check, strings.Join(notes, "; ")
}

// smokePhases are the phases a target's smoke test tries: the money-off
// chat ones for every target that runs them (whatever -phases says, as
// before), the others when they run.
func (b *bench) smokePhases(target string) []string {
	var ps []string
	for _, p := range knownPhases() {
		if runsIn(target, p) && (p == phaseNonStream || p == phaseStream || b.wantsPhase(p)) {
			ps = append(ps, p)
		}
	}
	return ps
}

// smoke sends one request of a phase to a target.
func (b *bench) smoke(ctx context.Context, t loadtest.Target, phase string) error {
	c := loadtest.NewClient(t, 2)
	defer c.CloseIdle()
	req := b.request(phase, b.checks[phase])
	var o loadtest.Outcome
	c.Do(ctx, &req, time.Now(), &o)
	if o.ErrKind != "" {
		if o.Stream.Unexpected != "" {
			return fmt.Errorf("%s request: %s (%s)", phase, o.ErrKind, o.Stream.Unexpected)
		}
		return fmt.Errorf("%s request: %s", phase, o.ErrKind)
	}
	return nil
}
