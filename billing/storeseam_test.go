package billing

import "github.com/xroute/xroute/internal/store"

// The store implements every interface billing defines of persistence, in
// billing/books' types; billing itself never imports internal/store (only
// its tests do). A signature drifting on either side fails here, at
// compile time, instead of in the wiring.
var (
	_ UsageWriter  = (*store.DB)(nil)
	_ LedgerStore  = (*store.DB)(nil)
	_ BudgetStore  = (*store.DB)(nil)
	_ HoldStore    = (*store.DB)(nil)
	_ CaptureStore = (*store.DB)(nil)
	_ ReportSource = (*store.DB)(nil)
)
