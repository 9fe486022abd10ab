package telemetry

import "go.opentelemetry.io/otel/attribute"

// Span names. The server span is named as HTTP's conventions say
// ("POST /v1/chat/completions"), the upstream call by its method ("POST");
// the rest are xroute's steps of the request path.
const (
	SpanAuth        = "xroute.auth"        // the key verified (and its IP allowlist)
	SpanLimits      = "xroute.limits"      // concurrency cap and RPM
	SpanTokenLimit  = "xroute.limits.tpm"  // the TPM reservation
	SpanCreditHold  = "xroute.credit_hold" // credits held for the worst case
	SpanAttempt     = "xroute.attempt"     // one routing attempt at one deployment
	SpanStream      = "xroute.stream"      // the relay of a stream to the caller
	SpanUsageWrite  = "xroute.usage_write" // the usage record (and its ledger debit) committed
	SpanSettle      = "xroute.settle"      // the credit hold settled with the real cost
	EventFirstToken = "gen_ai.first_token" // on xroute.stream: the first token left for the caller
)

// xroute's own attributes (the GenAI and HTTP ones come from semconv).
const (
	AttrRequestID     = attribute.Key("xroute.request_id")
	AttrAccountID     = attribute.Key("xroute.account_id")
	AttrKeyID         = attribute.Key("xroute.key_id")
	AttrCostUSD       = attribute.Key("xroute.cost_usd")   // what the request was charged
	AttrAttempts      = attribute.Key("xroute.attempts")   // upstream calls, hedges included
	AttrCache         = attribute.Key("xroute.cache")      // prompt cache: hit, write or miss
	AttrStream        = attribute.Key("xroute.stream")     // the caller asked for a stream
	AttrErrorCode     = attribute.Key("xroute.error_code") // the code of xroute's error answer
	AttrEstimated     = attribute.Key("xroute.usage.estimated")
	AttrDeployment    = attribute.Key("xroute.deployment") // provider/model
	AttrOutcome       = attribute.Key("xroute.attempt.outcome")
	AttrBreakerState  = attribute.Key("xroute.breaker.state")
	AttrHedge         = attribute.Key("xroute.attempt.hedge")
	AttrTTFTms        = attribute.Key("xroute.ttft_ms")
	AttrLimit         = attribute.Key("xroute.limit") // the limit that refused: concurrency, requests, tokens
	AttrStrategy      = attribute.Key("xroute.routing.strategy")
	AttrUpstreamModel = attribute.Key("xroute.upstream_model")
)

// Attempt outcomes.
const (
	OutcomeSuccess  = "success"  // it answered (and won, when hedged)
	OutcomeFailure  = "failure"  // it failed; the router may have moved on
	OutcomeCanceled = "canceled" // stopped: another attempt won, or the caller left
	OutcomeLost     = "lost"     // a hedge that answered after another had won
)
