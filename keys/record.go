package keys

// The key domain's stored records. They are declared here, where they are
// used, and internal/store implements the storage interfaces (Store,
// ChildStore, ProviderKeyStore; auditlog.Store and vault.KeyringStore in
// their packages) in terms of them: keys never imports the store.

import "time"

// Record is a key as stored: never the key itself. Key is what the request
// path sees of it (parsed CIDRs, no stored hash).
type Record struct {
	ID               string
	AccountID        string
	Kind             string // "caller" or "admin"
	Role             string // an admin key's role (owner, operator, billing, viewer); "" for a caller key
	Name             string
	Hash             string // hex HMAC-SHA256(pepper, key)
	PepperVersion    int
	Hint             string // display form, e.g. "xr-AbC…9xYz"
	AllowedModels    []string
	AllowedEndpoints []string
	AllowedCIDRs     []string
	RPM              int
	TPM              int
	MaxConcurrent    int
	Metadata         map[string]string
	CreatedAt        time.Time
	ExpiresAt        *time.Time
	RevokedAt        *time.Time
	SuspendedAt      *time.Time
	SuspendReason    string
	RotatedFrom      string
}

// KeyFilter selects keys; zero fields do not filter. Pages go by creation,
// newest first: pass the last id seen as After.
type KeyFilter struct {
	AccountID string
	Kind      string
	After     string
	Limit     int
}

// DefaultAccountID is the account keys belong to unless told otherwise.
const DefaultAccountID = "acct_default"

// Account owns keys (and, with billing, credits).
type Account struct {
	ID        string
	Name      string
	Status    string
	Metadata  map[string]string
	CreatedAt time.Time
}

// AccountActive is the status of an account that has not been changed.
const AccountActive = "active"

// ChildRecord is an ephemeral child key's row beside its key record: its
// parent and its caps, and what it has used of them.
type ChildRecord struct {
	KeyID       string
	ParentID    string
	SpendCap    int64 // nano-USD; 0: none of its own
	MaxRequests int64 // 0: none
	Requests    int64
	Spent       int64 // nano-USD settled
	Held        int64 // nano-USD reserved by requests in flight
}

// Provider-key statuses.
const (
	ProviderKeyActive   = "active"
	ProviderKeyDisabled = "disabled"
)

// ProviderKeyRecord is an upstream provider key as stored: ciphertext only.
type ProviderKeyRecord struct {
	ID             string
	Provider       string
	Name           string
	Ciphertext     []byte
	Term           uint32
	Hint           string
	Weight         int
	Status         string
	DisabledReason string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// ProviderKeyFilter selects provider keys; zero fields do not filter.
type ProviderKeyFilter struct {
	Provider string
	Status   string
	// NotTerm selects keys sealed under any term but this one.
	NotTerm uint32
}
