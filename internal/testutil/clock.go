package testutil

import (
	"sync"
	"time"
)

// Clock is a fake clock for code that takes a `func() time.Time` (pass
// c.Now), safe for concurrent use. It starts on a Monday at midnight UTC,
// so daily and weekly windows begin where a test expects them.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock at 2025-01-06T00:00:00Z (a Monday).
func NewClock() *Clock {
	return &Clock{t: time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
