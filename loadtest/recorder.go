package loadtest

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder accumulates the outcomes of one run. It is safe for concurrent use.
type Recorder struct {
	inFlight atomic.Int64
	sent     atomic.Int64

	mu      sync.Mutex
	ok      int64
	errs    map[string]int64
	latency *Histogram // from the scheduled start
	service *Histogram // from the actual start
	ttft    *Histogram
	gaps    *Histogram
	streams StreamCounts
	bytes   int64
	// first is the earliest due time seen (the run's start); done counts
	// successes by the throughputBin of wall time they ended in.
	first time.Time
	done  map[int64]int64
}

// StreamCounts tallies the streams of a run.
type StreamCounts struct {
	Total         int64 `json:"total"`          // streamed responses read (status 200)
	Valid         int64 `json:"valid"`          // no defect found
	Invalid       int64 `json:"invalid"`        // any defect (see the error kinds)
	MissingDone   int64 `json:"missing_done"`   // no "data: [DONE]" (Responses: no response.completed; Messages: no message_stop)
	Mismatched    int64 `json:"mismatched"`     // chunk count or content (text) wrong: dropped or reordered chunks
	ContentChunks int64 `json:"content_chunks"` // content chunks over all streams
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{
		errs:    make(map[string]int64),
		latency: NewHistogram(),
		service: NewHistogram(),
		ttft:    NewHistogram(),
		gaps:    NewHistogram(),
		done:    make(map[int64]int64),
	}
}

// Add records one outcome.
func (r *Recorder) Add(o *Outcome, stream bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bytes += o.Bytes
	if !o.Scheduled.IsZero() && (r.first.IsZero() || o.Scheduled.Before(r.first)) {
		r.first = o.Scheduled
	}
	if stream && o.Status == 200 {
		s := &o.Stream
		r.streams.Total++
		r.streams.ContentChunks += int64(s.ContentChunks)
		if !s.Done {
			r.streams.MissingDone++
		}
		switch o.ErrKind {
		case "":
			r.streams.Valid++
		case "stream_chunks_mismatch", "stream_content_mismatch", "stream_text_mismatch":
			r.streams.Mismatched++
			r.streams.Invalid++
		default:
			r.streams.Invalid++
		}
		if s.ContentChunks > 0 {
			r.ttft.Record(s.TTFT)
		}
		for _, g := range s.Gaps {
			r.gaps.Record(g)
		}
	}
	if o.ErrKind != "" {
		r.errs[o.ErrKind]++
		return
	}
	r.ok++
	if !o.Scheduled.IsZero() {
		r.done[o.Scheduled.Add(o.Latency).UnixNano()/int64(throughputBin)]++
	}
	r.latency.Record(o.Latency)
	r.service.Record(o.Service)
}

// drop counts an operation that was due but not sent (in-flight cap).
func (r *Recorder) drop() {
	r.mu.Lock()
	r.errs["dropped_inflight_cap"]++
	r.mu.Unlock()
}

// Progress is a running tally, for the progress line.
type Progress struct {
	Sent     int64
	OK       int64
	Errors   int64
	InFlight int64
	P99      time.Duration
}

// Progress returns the tally so far.
func (r *Recorder) Progress() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs int64
	for _, n := range r.errs {
		errs += n
	}
	return Progress{
		Sent:     r.sent.Load(),
		OK:       r.ok,
		Errors:   errs,
		InFlight: r.inFlight.Load(),
		P99:      r.latency.Quantile(0.99),
	}
}

// Result is the outcome of one run, ready to marshal.
type Result struct {
	Target       string           `json:"target"`
	Phase        string           `json:"phase"`
	Mode         string           `json:"mode"` // "open" or "closed"
	TargetRate   float64          `json:"target_rate,omitempty"`
	Workers      int              `json:"workers,omitempty"`
	Duration     float64          `json:"duration_s"`   // configured
	Elapsed      float64          `json:"elapsed_s"`    // start to last response
	Sent         int64            `json:"sent"`         // requests due: sent, or dropped at the in-flight cap
	Completed    int64            `json:"completed"`    // successful (a stream: well formed)
	ErrorsTotal  int64            `json:"errors_total"` // Sent - Completed once the run is over
	Errors       map[string]int64 `json:"errors,omitempty"`
	AchievedRate float64          `json:"achieved_rate"` // completed per second of Duration
	Latency      Summary          `json:"latency"`
	Service      Summary          `json:"service_time"`
	TTFT         *Summary         `json:"ttft,omitempty"`
	ChunkGap     *Summary         `json:"chunk_gap,omitempty"`
	Streams      *StreamCounts    `json:"streams,omitempty"`
	BytesRead    int64            `json:"bytes_read"`
	// For the charts: latency (and a stream's TTFT) by percentile, and the
	// successes per interval over the run.
	LatencyCurve []PercentilePoint `json:"latency_curve,omitempty"`
	TTFTCurve    []PercentilePoint `json:"ttft_curve,omitempty"`
	Throughput   *Throughput       `json:"throughput,omitempty"`
}

// result digests the recorder.
func (r *Recorder) result(stream bool) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{
		Sent:      r.sent.Load(),
		Completed: r.ok,
		Errors:    maps.Clone(r.errs),
		Latency:   r.latency.Summary(),
		Service:   r.service.Summary(),
		BytesRead: r.bytes,

		LatencyCurve: percentileCurve(r.latency),
		Throughput:   throughputSeries(r.done, r.first),
	}
	for _, n := range r.errs {
		res.ErrorsTotal += n
	}
	if len(res.Errors) == 0 {
		res.Errors = nil
	}
	if stream {
		ttft, gaps, counts := r.ttft.Summary(), r.gaps.Summary(), r.streams
		res.TTFT, res.ChunkGap, res.Streams = &ttft, &gaps, &counts
		res.TTFTCurve = percentileCurve(r.ttft)
	}
	return res
}
