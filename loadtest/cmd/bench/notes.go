// What the report says about a run: the knobs it ran with and a note for
// each phase on what it measures.

package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/xroute/xroute/loadtest"
)

func (b *bench) knobs() map[string]string {
	c := b.cfg
	k := map[string]string{
		"duration":          c.duration.String(),
		"warmup":            c.warmup.String(),
		"rate":              strconv.FormatFloat(c.rate, 'f', -1, 64),
		"streams":           strconv.Itoa(c.streams),
		"many_streams":      fmt.Sprintf("%d (max_tokens %d at %g tokens/s)", c.manyStreams, c.manyTokens, c.manyTPS),
		"rounds":            strconv.Itoa(c.rounds),
		"priced_models":     fmt.Sprintf("%s, %s: input %s, output %s USD/Mtok", pricedModel(c.model), pricedModel(c.messagesModel), benchInputPrice, benchOutputPrice),
		"stream_ramp":       b.ramp(phaseStream, c.duration).String(),
		"max_inflight":      strconv.Itoa(c.maxInFlight),
		"max_tokens":        strconv.Itoa(c.maxTokens),
		"stream_max_tokens": strconv.Itoa(c.streamMaxTokens),
		"mock_latency":      c.mockLatency.String(),
		"mock_tokens_per_s": strconv.Itoa(c.mockTPS),
		"targets":           strings.Join(c.targets, ","),
		"xroute_log_level":  "warn (xroute-info: info)",
	}
	if c.mockChunkTokens > 0 {
		k["mock_chunk_tokens"] = strconv.Itoa(c.mockChunkTokens)
	}
	if c.mockArgs != "" {
		k["mock_args"] = c.mockArgs
	}
	if b.wantsAPI(apiMsgs) {
		k["messages_model"] = c.messagesModel
	}
	if slices.Contains(c.targets, targetPortkey) {
		k["portkey"] = "@portkey-ai/gateway@" + c.portkeyVersion
	}
	return k
}

// phaseNote says under a phase's heading what it sends and what each
// target does with it.
func (b *bench) phaseNote(phase string) string {
	spec := specOf(phase)
	var notes []string
	switch {
	case spec.many:
		notes = append(notes, fmt.Sprintf("The stream phase's request with %d concurrent streams: memory at scale "+
			"(the gateways' peak RSS is the number to read).", b.cfg.manyStreams))
	case spec.api == apiResp && spec.stream:
		notes = append(notes, b.responsesPhaseNote())
	case spec.api == apiMsgs && spec.stream:
		notes = append(notes, b.messagesPhaseNote())
	case spec.api == apiResp:
		notes = append(notes, fmt.Sprintf("POST /v1/responses, `store: false`, `max_output_tokens: %d`, not streamed; the "+
			"routes are those of responses-stream (xroute: native passthrough; xroute-translated: the chat pivot).", b.cfg.maxTokens))
	case spec.api == apiMsgs:
		notes = append(notes, fmt.Sprintf("POST /v1/messages, `max_tokens: %d`, model `%s`, not streamed; the routes are "+
			"those of messages-stream (xroute: native passthrough to the Anthropic mock; xroute-translated: the chat pivot "+
			"to the OpenAI mock).", b.cfg.maxTokens, b.cfg.messagesModel))
	}
	if spec.paid {
		notes = append(notes, fmt.Sprintf("**Money on**: the model is `%s` (`%s` for Messages), deployed with a price "+
			"(input %s, output %s USD per million tokens) and asked for with a key of a funded account, so that xroute holds "+
			"credit before each request, settles it and writes the ledger after; the other targets send the same request "+
			"(the mock ignores the name).", pricedModel(b.cfg.model), pricedModel(b.cfg.messagesModel), benchInputPrice, benchOutputPrice))
	}
	return strings.Join(notes, " ")
}

// responsesPhaseNote says under the responses-stream heading what it sends
// and what each xroute does with it.
func (b *bench) responsesPhaseNote() string {
	return fmt.Sprintf("POST /v1/responses, `stream: true`, `store: false`, `max_output_tokens: %d`; TTFT is the first "+
		"`response.output_text.delta`. direct and proxy: the mock's own Responses API. xroute: native passthrough "+
		"(its mock provider lists `native_formats: [responses]`: the body goes to the mock's /v1/responses with only "+
		"the model rewritten, and the events come back as they are). xroute-translated: xroute without native_formats, "+
		"which translates the request into the chat-completions pivot, streams the mock's /v1/chat/completions and "+
		"re-encodes the answer as Responses events. Every stream is checked: event order (created, in_progress, "+
		"output item, content part, deltas, done events, completed last), `sequence_number` strictly increasing, "+
		"deltas = `output_text.done` text = the completed response's text, usage in `response.completed`.",
		b.cfg.streamMaxTokens)
}

// messagesPhaseNote says under the messages-stream heading what it sends
// and what each target does with it.
func (b *bench) messagesPhaseNote() string {
	return fmt.Sprintf("POST /v1/messages, `stream: true`, `max_tokens: %d`, model `%s`, headers `x-api-key` and "+
		"`anthropic-version: %s`; TTFT is the first `text_delta`. direct: the Anthropic mock (`xroute mock anthropic`, "+
		"same knobs as the OpenAI mock); proxy: a bare proxy of its own in front of it. xroute: native passthrough "+
		"(the model is deployed on an `anthropic` provider pointing at the Anthropic mock: the body goes upstream with "+
		"only the model rewritten, and the events come back as they are). xroute-translated: the model is deployed on "+
		"the OpenAI mock, so xroute translates the request into the chat-completions pivot, streams the OpenAI mock's "+
		"/v1/chat/completions and re-encodes the answer as Messages events (its mock CPU column is the OpenAI mock's). "+
		"Every stream is checked: message_start first and message_stop last, content_block_start/stop paired by index, "+
		"the text_deltas' text = the mock's, a stop_reason and usage in message_delta, `usage.output_tokens` against "+
		"the text_delta count.",
		b.cfg.streamMaxTokens, b.cfg.messagesModel, loadtest.AnthropicVersion)
}
