package books

import (
	"time"
)

// Budget scopes and periods.
const (
	BudgetScopeAccount = "account"
	BudgetScopeKey     = "key"
	BudgetDaily        = "daily"
	BudgetMonthly      = "monthly"
)

// Budget is a spend limit for an account or a caller key over a UTC day
// or month.
type Budget struct {
	Scope         string // "account" or "key"
	ScopeID       string
	Period        string // "daily" or "monthly"
	LimitNano     int64
	AlertPercents []int
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// BudgetFilter selects budgets; zero fields do not filter.
type BudgetFilter struct {
	Scope   string
	ScopeID string
}
