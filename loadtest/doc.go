// Package loadtest is xroute's load generator and benchmark report.
//
// A Runner drives one Client (a tuned HTTP/1.1 transport, a prebuilt request
// body, a Bearer key) in one of two shapes:
//
//   - OpenLoop: a fixed arrival rate, request i due at start + i/rate whatever
//     the responses do. Latency counts from the due time, so a server that
//     falls behind cannot hide its queueing (coordinated omission corrected);
//     a cap on requests in flight drops the excess as errors.
//   - ClosedLoop: N workers sending back to back, e.g. N streams held open.
//
// Streamed responses are read as they arrive (ReadChatStream): time to first
// token, gaps between chunks, the final "data: [DONE]", the usage chunk's
// completion_tokens against the chunks received, and optionally the exact
// text, so that dropped or reordered chunks show up as errors. Responses API
// streams (ReadResponsesStream) get the same measures, time to first token
// being the first response.output_text.delta, and their own checks: the
// events in the API's order with response.completed last, sequence numbers
// increasing, the deltas' text equal to output_text.done's and to the final
// response's, usage in response.completed. Anthropic Messages streams
// (ReadMessagesStream) likewise, time to first token being the first
// text_delta: message_start first and message_stop last, content blocks
// started and stopped in pairs by index, a stop_reason and usage in
// message_delta, usage.output_tokens against the text_deltas received.
//
// Latencies go into a log-linear Histogram (microsecond resolution, < 0.1 %
// error, mergeable). ProcReader reads a server's CPU time and peak RSS from
// /proc so that CPU per request can be reported. A Report renders the runs
// of a benchmark as Markdown and JSON and derives the added latency and CPU
// ratios between targets. NewReverseProxy is the bare standard-library proxy
// the benchmark uses as its floor.
//
// The command that runs the whole benchmark is ./loadtest/cmd/bench.
package loadtest
