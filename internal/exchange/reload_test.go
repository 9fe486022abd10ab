package exchange_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/exchange"
)

// TestSetIssuersKeepsTheJWKSCache: a reload that leaves an issuer's key
// source alone (its rules changed) fetches nothing; a changed key source
// starts a fresh cache; an issuer left out is refused at once.
func TestSetIssuersKeepsTheJWKSCache(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	def := config.Issuer{Issuer: f.is.URL, Audiences: []string{"xroute"}, MaxTokenLifetime: time.Hour, Rules: rules()}
	if _, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-a", "inference")))); err != nil {
		t.Fatal(err)
	}
	base := f.is.Fetches()

	narrower := def
	narrower.Rules = rules()[2:3] // k8s only
	f.svc.SetIssuers([]config.Issuer{narrower})
	if _, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-a", "inference")))); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.GitHubActions("octo-org/octo-repo", "refs/heads/main"))))
	var xe *exchange.Error
	if !errors.As(err, &xe) || xe.Reason != "no_rule" {
		t.Fatalf("a rule removed by the reload: %v", err)
	}
	if got := f.is.Fetches() - base; got != 0 {
		t.Fatalf("%d fetches after a reload that kept the key source, want 0", got)
	}

	moved := narrower
	moved.JWKSRefreshInterval = 2 * time.Minute
	f.svc.SetIssuers([]config.Issuer{moved})
	if _, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-a", "inference")))); err != nil {
		t.Fatal(err)
	}
	if got := f.is.Fetches() - base; got == 0 {
		t.Fatal("a changed key source kept the old cache")
	}

	f.svc.SetIssuers(nil)
	_, err = f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-a", "inference"))))
	if !errors.As(err, &xe) || xe.Reason != "wrong_issuer" {
		t.Fatalf("an issuer removed by the reload: %v", err)
	}
}

// TestSetIssuersWhileExchanging: reloads race exchanges (run with -race);
// every exchange sees one whole set, either trusting the issuer or not.
func TestSetIssuersWhileExchanging(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	def := config.Issuer{Issuer: f.is.URL, Audiences: []string{"xroute"}, MaxTokenLifetime: time.Hour, Rules: rules()}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				f.svc.SetIssuers(nil)
			} else {
				f.svc.SetIssuers([]config.Issuer{def})
			}
		}
	}()
	var xwg sync.WaitGroup
	for range 4 {
		xwg.Add(1)
		go func() {
			defer xwg.Done()
			for range 10 {
				_, err := f.svc.Exchange(ctx, req(f.is.Sign(f.is.Kubernetes("ml-a", "inference"))))
				var xe *exchange.Error
				if err != nil && (!errors.As(err, &xe) || xe.Reason != "wrong_issuer") {
					t.Errorf("exchange during reloads: %v", err)
				}
			}
		}()
	}
	xwg.Wait()
	close(stop)
	wg.Wait()
}
