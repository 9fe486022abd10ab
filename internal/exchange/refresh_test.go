package exchange_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/exchange"
	"github.com/xroute/xroute/keys"
)

func refreshReq(rt string) exchange.Request {
	return exchange.Request{GrantType: exchange.GrantRefreshToken, RefreshToken: rt, IP: "192.0.2.1"}
}

func refusal(t *testing.T, err error) *exchange.Error {
	t.Helper()
	var xe *exchange.Error
	if !errors.As(err, &xe) {
		t.Fatalf("err %v, want a refusal", err)
	}
	return xe
}

// TestRefreshRotatesAndReuseRevokesTheFamily: each refresh returns a new
// pair and spends the old refresh token; presenting a spent one revokes
// every key of the family and writes token.refresh_reused.
func TestRefreshRotatesAndReuseRevokesTheFamily(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	first, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-prod", "inference"))))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.RefreshToken, exchange.RefreshPrefix) {
		t.Fatalf("no refresh token: %+v", first.KeyID)
	}
	f.clock.advance(30 * time.Minute)
	second, err := f.svc.Exchange(ctx, refreshReq(first.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("a refresh must return a new pair")
	}
	k2, err := f.keys.Verify(ctx, second.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if k2.MaxConcurrent != 4 || k2.Metadata["exchange_rule"] != "k8s" {
		t.Fatalf("the refreshed key lost the rule's template: %+v", k2)
	}
	// It outlives the identity token (ten minutes), within the family's 3h.
	if life := k2.ExpiresAt.Sub(f.clock.now()); life < 59*time.Minute || life > time.Hour {
		t.Fatalf("refreshed key lives %s, want the rule's hour", life)
	}
	if ev := f.lastAudit(t); ev.Kind != exchange.AuditRefreshed || ev.Subject != k2.ID {
		t.Fatalf("audit %+v", ev)
	}
	third, err := f.svc.Exchange(ctx, refreshReq(second.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}

	// The spent first token comes back: the whole family goes.
	xe := refusal(t, func() error { _, err := f.svc.Exchange(ctx, refreshReq(first.RefreshToken)); return err }())
	if xe.Code != exchange.CodeInvalidGrant || xe.Reason != "refresh_reused" {
		t.Fatalf("reuse: %s/%s", xe.Code, xe.Reason)
	}
	ev := f.lastAudit(t)
	if ev.Kind != exchange.AuditRefreshReused || fmt.Sprint(ev.Details["keys_revoked"]) != "3" {
		t.Fatalf("audit %+v", ev)
	}
	for i, tok := range []string{first.AccessToken, second.AccessToken, third.AccessToken} {
		if _, err := f.keys.Verify(ctx, tok); !errors.Is(err, keys.ErrRevoked) {
			t.Fatalf("access token %d after the reuse: %v, want revoked", i+1, err)
		}
	}
	// The family's newest refresh token is dead too.
	xe = refusal(t, func() error { _, err := f.svc.Exchange(ctx, refreshReq(third.RefreshToken)); return err }())
	if xe.Code != exchange.CodeInvalidGrant {
		t.Fatalf("newest refresh token after the reuse: %s/%s", xe.Code, xe.Reason)
	}
	xe = refusal(t, func() error { _, err := f.svc.Exchange(ctx, refreshReq("xrr-made-up")); return err }())
	if xe.Code != exchange.CodeInvalidGrant || xe.Reason != "unknown_refresh_token" {
		t.Fatalf("unknown refresh token: %s/%s", xe.Code, xe.Reason)
	}
}

// TestConcurrentRefreshOneWins: of concurrent refreshes of one token
// exactly one gets a pair; the rest are reuses.
func TestConcurrentRefreshOneWins(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	first, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-prod", "inference"))))
	if err != nil {
		t.Fatal(err)
	}
	var wins, reused atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Exchange(ctx, refreshReq(first.RefreshToken))
			var xe *exchange.Error
			switch {
			case err == nil:
				wins.Add(1)
			case errors.As(err, &xe) && xe.Reason == "refresh_reused":
				reused.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || reused.Load() != 7 {
		t.Fatalf("%d won, %d reuses; want 1 and 7", wins.Load(), reused.Load())
	}
}

// TestRefreshEndsWithTheFamily: past refresh_ttl from the exchange no
// refresh succeeds, and the ended family is swept.
func TestRefreshEndsWithTheFamily(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	first, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-prod", "inference"))))
	if err != nil {
		t.Fatal(err)
	}
	f.clock.advance(3*time.Hour + time.Second)
	xe := refusal(t, func() error { _, err := f.svc.Exchange(ctx, refreshReq(first.RefreshToken)); return err }())
	if xe.Code != exchange.CodeInvalidGrant || xe.Reason != "refresh_expired" {
		t.Fatalf("%s/%s", xe.Code, xe.Reason)
	}
	if n, err := f.db.SweepRefreshTokens(ctx, f.clock.now(), 10); err != nil || n != 1 {
		t.Fatalf("swept %d: %v", n, err)
	}
}
