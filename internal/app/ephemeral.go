package app

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/xroute/xroute/internal/httpapi"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/router"
)

// childMeter is the credit hold with ephemeral child keys in it: a
// child's request is held against its parent's account and counted in its
// parent's key budgets (a child spends its parent's money), and its worst
// case must also fit the child's own spend cap.
type childMeter struct {
	*credits
	keys *keys.Service
}

func (m childMeter) Hold(ctx context.Context, requestID string, k *keys.Key, model *router.Model, body []byte, w httpapi.Worst) (httpapi.Hold, error) {
	if k.Child == nil {
		return m.credits.Hold(ctx, requestID, k, model, body, w)
	}
	asParent := *k
	asParent.ID = k.Child.ParentID // the key budgets are the parent's
	h, err := m.credits.Hold(ctx, requestID, &asParent, model, body, w)
	if err != nil || h == nil {
		return h, err // an error, or free: nothing to count against a cap
	}
	settle, err := m.keys.HoldChildSpend(ctx, k, int64(h.(*hold).r.Amount()))
	if err != nil {
		h.Release()
		return nil, err
	}
	if settle == nil {
		return h, nil
	}
	return &childHold{Hold: h, settle: settle, key: k.ID, log: m.log}, nil
}

// childHold settles the child's cap with the account's reservation.
type childHold struct {
	httpapi.Hold
	settle func(ctx context.Context, cost int64) error
	key    string
	log    *zap.Logger
	done   atomic.Bool
}

func (h *childHold) Settle(cost int64) {
	h.Hold.Settle(cost)
	h.finish(cost)
}

func (h *childHold) Release() {
	h.Hold.Release()
	h.finish(0)
}

func (h *childHold) finish(cost int64) {
	if !h.done.CompareAndSwap(false, true) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.settle(ctx, cost); err != nil {
		h.log.Error("ephemeral key spend not counted", zap.String("key_id", h.key), zap.Error(err))
	}
}
