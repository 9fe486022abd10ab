package store

import (
	"context"
	"errors"
	"testing"

	"github.com/xroute/xroute/billing/books"
	"github.com/xroute/xroute/internal/dberr"
	"github.com/xroute/xroute/keys"
)

// BudgetScopeExists is how billing refuses a budget on nothing. (A key
// that exists is covered by billing's budget tests, which create one.)
func TestBudgetScopeExists(t *testing.T) {
	ctx := context.Background()
	forEachBackend(t, func(t *testing.T, db *DB) {
		if err := db.BudgetScopeExists(ctx, books.BudgetScopeAccount, keys.DefaultAccountID); err != nil {
			t.Fatalf("the default account: %v", err)
		}
		for _, tt := range []struct{ scope, id string }{
			{books.BudgetScopeAccount, "acct_nobody"},
			{books.BudgetScopeKey, "key_nobody"},
			{books.BudgetScopeKey, keys.DefaultAccountID}, // an account id is no key
		} {
			if err := db.BudgetScopeExists(ctx, tt.scope, tt.id); !errors.Is(err, dberr.ErrNotFound) {
				t.Fatalf("%s %s: %v, want ErrNotFound", tt.scope, tt.id, err)
			}
		}
		if err := db.BudgetScopeExists(ctx, "team", "t1"); err == nil || errors.Is(err, dberr.ErrNotFound) {
			t.Fatalf("an unknown scope: %v, want an error that is not ErrNotFound", err)
		}
	})
}
