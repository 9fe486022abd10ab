package exchange_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/internal/store/storetest"
)

// TestOnPostgres runs what depends on the store's atomicity against
// PostgreSQL: one jti exchanged once, one refresh token spent once, from
// concurrent callers, and the sweeps.
func TestOnPostgres(t *testing.T) {
	f := newFixtureOn(t, storetest.Postgres(t), nil)
	ctx := context.Background()
	tok := f.is.Sign(f.is.Kubernetes("ml-prod", "inference"))
	var first exchange.Token
	var wins, lost atomic.Int32
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := f.svc.Exchange(ctx, req(tok))
			var xe *exchange.Error
			switch {
			case err == nil:
				wins.Add(1)
				mu.Lock()
				first = got
				mu.Unlock()
			case errors.As(err, &xe) && xe.Reason == "replayed_jti":
				lost.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || lost.Load() != 5 {
		t.Fatalf("jti: %d won, %d replays", wins.Load(), lost.Load())
	}
	wins.Store(0)
	lost.Store(0)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Exchange(ctx, refreshReq(first.RefreshToken))
			var xe *exchange.Error
			switch {
			case err == nil:
				wins.Add(1)
			case errors.As(err, &xe) && xe.Reason == "refresh_reused":
				lost.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || lost.Load() != 5 {
		t.Fatalf("refresh: %d won, %d reuses", wins.Load(), lost.Load())
	}
	if n, err := f.db.SweepJTIs(ctx, time.Now().Add(time.Hour), 10); err != nil || n != 1 {
		t.Fatalf("jti sweep: %d %v", n, err)
	}
	if n, err := f.db.SweepRefreshTokens(ctx, time.Now().Add(4*time.Hour), 1); err != nil || n != 2 {
		t.Fatalf("refresh sweep: %d %v", n, err)
	}
}
