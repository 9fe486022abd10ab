package books

import (
	"time"
)

// Dimension is what a usage report groups by.
type Dimension string

// The dimensions a report can group by. Day and hour are UTC buckets.
const (
	ByAccount  Dimension = "account"
	ByKey      Dimension = "key"
	ByModel    Dimension = "model"
	ByProvider Dimension = "provider"
	ByDay      Dimension = "day"
	ByHour     Dimension = "hour"
)

// Dimensions lists every dimension.
func Dimensions() []Dimension {
	return []Dimension{ByAccount, ByKey, ByModel, ByProvider, ByDay, ByHour}
}

// ReportQuery selects and groups usage records. Empty filters do not
// filter; a zero From or To leaves that end open.
type ReportQuery struct {
	GroupBy   []Dimension
	From, To  time.Time // [From, To)
	AccountID string
	KeyID     string
	Model     string
	Provider  string
}

// ReportRow is one group of a usage report. Only the fields of the
// dimensions grouped by are set; Bucket is the start of the UTC day or hour.
type ReportRow struct {
	AccountID        string
	KeyID            string
	Model            string
	Provider         string
	Bucket           time.Time
	Requests         int64
	Errors           int64 // status >= 400
	PromptTokens     int64
	CompletionTokens int64
	CachedTokens     int64
	CacheWriteTokens int64
	CostNano         int64
	// PromptCacheSavedNano sums the records' prompt-cache savings.
	PromptCacheSavedNano int64
	// CacheHits are the requests answered from the response cache;
	// ResponseCacheSavedNano what they would have cost at full price
	// minus what they were billed (migration 0018).
	CacheHits              int64
	ResponseCacheSavedNano int64
	// LatencyP50 and LatencyP95 are nearest-rank percentiles: the value at
	// rank ceil(p/100 × requests) of the group's latencies in order.
	LatencyP50 time.Duration
	LatencyP95 time.Duration
}
