package books

import (
	"time"
)

// UsageRecord is one metered request.
type UsageRecord struct {
	RequestID        string
	AccountID        string
	KeyID            string
	Model            string // public model name the caller asked for
	Provider         string
	UpstreamModel    string
	Stream           bool
	PromptTokens     int
	CompletionTokens int
	CachedTokens     int
	// CacheWriteTokens are prompt tokens written to the provider's prompt
	// cache (priced at their own rate).
	CacheWriteTokens int
	Latency          time.Duration
	TTFT             time.Duration
	Status           int
	Attempts         int
	ErrorCode        string
	CreatedAt        time.Time
	// CostNano is what the request cost the account (nano-USD); its ledger
	// debit is written in the same transaction as the record.
	CostNano int64
	// Estimated: the provider reported no usage; tokens were counted.
	Estimated bool
	// Deployment is the deployment ("provider/model") that served, or the
	// last one tried when none did; Endpoint the ingress (chat, responses,
	// messages, completions, embeddings); TraceID the request's W3C trace
	// id (32 hex, "" when none). The request log shows them.
	Deployment string
	Endpoint   string
	TraceID    string
	// CacheHit: answered from the response cache (migration 0015).
	CacheHit bool
	// PromptCacheSavedNano is what the provider's prompt cache saved
	// (migration 0019): the cost with the cached and cache-written prompt
	// tokens at the plain input price, minus CostNano's part for them;
	// negative when cache writes cost more than the reads saved.
	PromptCacheSavedNano int64
	// ResponseCacheSavedNano is what a response cache hit would have cost
	// at full price minus what it was billed (migration 0018; 0 otherwise).
	ResponseCacheSavedNano int64
}

// UsageFilter selects usage records; zero fields do not filter.
type UsageFilter struct {
	KeyID     string
	RequestID string
	Since     time.Time
	Limit     int
}

// UsageDebit is the cost of one metered request, to be debited from its
// account.
type UsageDebit struct {
	AccountID string
	RequestID string
	Amount    int64 // nano-USD, >= 0; stored as a negative entry
	KeyID     string
	At        time.Time // when the request happened (budgets count by it)
}

// UsageIdempotencyPrefix starts the idempotency key of every usage debit
// ("usage:" + request id).
const UsageIdempotencyPrefix = "usage:"
