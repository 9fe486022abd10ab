package testutil

import (
	stdjson "encoding/json"
	"reflect"
	"testing"

	"github.com/segmentio/encoding/json"
)

// SameDecode fails t unless segmentio/encoding/json, which xroute's request
// decoders use, decodes body into a T as encoding/json does: an error
// exactly where encoding/json has one, and otherwise the same value (when
// compare is true; types with unexported state can opt out).
func SameDecode[T any](t testing.TB, body []byte, compare bool) {
	t.Helper()
	var a, b T
	errA := stdjson.Unmarshal(body, &a)
	errB := json.Unmarshal(body, &b)
	if (errA == nil) != (errB == nil) {
		t.Fatalf("%q into %T: encoding/json error %v, segmentio error %v", body, a, errA, errB)
	}
	if compare && errA == nil && !reflect.DeepEqual(a, b) {
		t.Fatalf("%q into %T: encoding/json %+v, segmentio %+v", body, a, a, b)
	}
}
