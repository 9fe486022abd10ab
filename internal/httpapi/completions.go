package httpapi

import (
	"context"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/internal/ingress/completions"
	"github.com/xroute/xroute/providers"
)

// completion is POST /v1/completions, the legacy Completions API: served
// natively where the deployment has the endpoint, else as a chat request
// whose answer is rendered back as text. Metered like chat; the hold and
// the TPM reservation count every prompt and every choice.
func (s *modelAPI) completion(c *gin.Context) {
	info := infoOf(c)
	info.endpoint = "completions"
	body, rq, ok := readRequest(s, c, completions.Parse, func(r *completions.Request) string { return r.Model })
	if !ok {
		return
	}
	pivot, pivotBody, err := rq.Pivot()
	if err != nil {
		writeRequestError(c, err)
		return
	}
	includeUsage := rq.StreamOptions != nil && rq.StreamOptions.IncludeUsage
	// IncludeUsage stays false: the adapter then asks every upstream for
	// the usage chunk, and the encoder passes it on only when asked.
	req := &providers.ChatRequest{
		Model: rq.Model, Stream: rq.Stream, MaxTokens: rq.MaxOutput(), Body: pivotBody,
		ContextTokens: len(body)/4 + rq.MaxOutput(),
		Format:        providers.FormatCompletions, Native: body, NativeOnly: rq.NativeOnly(),
	}
	req.SetDecoded(pivot)
	// The caller's body holds every prompt: the hold counts them all.
	s.run(c, modelCall{model: rq.Model, stream: rq.Stream, body: body,
		worst: Worst{MaxTokens: rq.MaxOutput(), Choices: rq.Choices(), Hedgeable: true},
		serve: func(a *admitted) {
			b := completions.NewBuilder("cmpl-"+strings.TrimPrefix(providers.NewCompletionID(), "chatcmpl-"), rq.Model, s.now().Unix())
			s.serve(c, a, req, &completionsEncoder{b: b, includeUsage: includeUsage})
		}})
}

// completionsEncoder writes a completions stream: native chunks as they
// are, translated events as text_completion chunks.
type completionsEncoder struct {
	b            *completions.Builder
	includeUsage bool
	native       bool
	buf          []byte
}

func (e *completionsEncoder) chunk(ch providers.Chunk) []byte {
	if ch.Native {
		e.native = true
		if ch.UsageOnly && !e.includeUsage {
			return nil // xroute asked for usage; the caller did not
		}
		e.buf = append(e.buf[:0], "data: "...)
		e.buf = append(e.buf, ch.Data...)
		return append(e.buf, "\n\n"...)
	}
	var out []byte
	for _, ev := range ch.Events {
		out = append(out, e.b.Feed(ev)...)
	}
	return out
}

// render implements answerer: a native answer as it came, else the
// neutral one as a text_completion.
func (e *completionsEncoder) render(resp *providers.ChatResponse) []byte {
	if resp.Native {
		return resp.Body
	}
	return e.b.Complete(resp.Completion, resp.Usage)
}

func (e *completionsEncoder) finish(_ context.Context, info *requestInfo) []byte {
	if e.native {
		return []byte("data: [DONE]\n\n")
	}
	return e.b.StreamEnd(providers.Usage{PromptTokens: info.prompt, CompletionTokens: info.complete}, e.includeUsage)
}

func (e *completionsEncoder) fail(ae *apiError, _ *requestInfo) []byte { return streamErrorEvent(ae) }

// keepalive implements keepaliver: an SSE comment.
func (e *completionsEncoder) keepalive() []byte { return ssePing }
