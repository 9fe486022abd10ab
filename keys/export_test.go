package keys

// FromRow is the conversion of a stored record the external tests
// (package keys_test) check.
var FromRow = fromRow

// WaitFound and WaitMissing wait until the verified-key and unknown-key
// caches have applied every write so far (ristretto buffers them), so a
// test can tell a cache hit from a store read.
func (s *Service) WaitFound()   { s.found.Wait() }
func (s *Service) WaitMissing() { s.missing.Wait() }
