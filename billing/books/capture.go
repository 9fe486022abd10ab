package books

import (
	"time"
)

// CaptureSetting is an account's capture of request and response bodies
// (an account without one captures nothing).
type CaptureSetting struct {
	AccountID string
	Enabled   bool
	Retention time.Duration // how long a capture is kept
	MaxBytes  int           // the most kept of each body
	UpdatedAt time.Time
}

// RequestCapture is what was captured of one request: its body as
// received and the answer as sent, both redacted and cut at the account's
// max bytes (Truncated says whether either was cut). Never a header.
type RequestCapture struct {
	RequestID string
	AccountID string
	Request   string
	Response  string
	Truncated bool
	CreatedAt time.Time
	ExpiresAt time.Time // retention end: gone for readers after it
}
