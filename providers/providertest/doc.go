// Package providertest is the test suite every provider adapter runs: the
// golden-file harness (request and response translation, recorded
// streams), one rendering of a stream for golden files, and the tables for
// upstream failures (status → providers.Error, Retry-After, mid-stream
// breaks, timeouts before the headers). An adapter's tests call it with a
// few lines, so the next adapter gets the same checks for free.
//
// It is imported only from _test.go files.
package providertest
