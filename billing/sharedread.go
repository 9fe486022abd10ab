package billing

import (
	"context"
	"time"

	"golang.org/x/sync/singleflight"
)

// sharedReadTimeout bounds one store read shared by concurrent callers.
const sharedReadTimeout = 10 * time.Second

// sharedRead runs fn once for all concurrent callers of key, so that a
// cold or expired cache costs the store one read, not one per request.
// fn runs detached from any one caller's cancellation (a client that
// disconnects must not fail the others waiting on the same read), bounded
// by sharedReadTimeout; each caller stops waiting when its own ctx ends.
// shared reports that the result was also handed to another caller.
func sharedRead[T any](ctx context.Context, g *singleflight.Group, key string, fn func(context.Context) (T, error)) (v T, shared bool, err error) {
	ch := g.DoChan(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedReadTimeout)
		defer cancel()
		return fn(rctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return v, r.Shared, r.Err
		}
		return r.Val.(T), r.Shared, nil
	case <-ctx.Done():
		return v, false, ctx.Err()
	}
}
