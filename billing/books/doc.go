// Package books is billing's vocabulary as it is kept: usage records and
// the debits they carry, ledger entries, budgets, usage report queries and
// rows, request captures.
//
// It is a leaf (it imports nothing of xroute) so that both sides of the
// storage seam can name these types: billing defines the interfaces it
// needs of persistence in terms of them (billing.LedgerStore,
// billing.BudgetStore, billing.UsageWriter, ...), and internal/store
// implements those interfaces, importing books and never billing. Putting
// the types in billing itself would make the store depend on billing's
// runtime (the catalog, providers, config) for a handful of structs.
package books
