package providers

import (
	"encoding/json"

	"github.com/tidwall/sjson"
)

// RoutingExtensions are OpenRouter's routing fields as a caller sent them,
// decoded with the rest of an ingress's request (embedded in it): the
// pivot carries them to the router, and a native upstream must not see
// them. Decoding them once saves a scan of the body per field per use (an
// agent's body is hundreds of kilobytes). CheckFields has refused a body
// that names one twice, so the decoder's choice of the last one and
// sjson's of the first one agree.
type RoutingExtensions struct {
	Provider   json.RawMessage `json:"provider"`
	Models     json.RawMessage `json:"models"`
	Route      json.RawMessage `json:"route"`
	Transforms json.RawMessage `json:"transforms"`
	Plugins    json.RawMessage `json:"plugins"`
}

// each calls f with the name and raw JSON of each routing extension the
// caller sent (null included), in a fixed order, and stops at f's first
// error, which it returns as the caller's 400 naming the field.
func (x *RoutingExtensions) each(f func(name string, raw json.RawMessage) error) error {
	for _, e := range [...]struct {
		name string
		raw  json.RawMessage
	}{{"provider", x.Provider}, {"models", x.Models}, {"route", x.Route}, {"transforms", x.Transforms}, {"plugins", x.Plugins}} {
		if e.raw == nil {
			continue
		}
		if err := f(e.name, e.raw); err != nil {
			return &RequestError{Param: e.name, Message: "Could not read '" + e.name + "'."}
		}
	}
	return nil
}

// CopyRouting returns pivot with the routing extensions the caller sent
// set on it, for the router.
func (x *RoutingExtensions) CopyRouting(pivot []byte) ([]byte, error) {
	err := x.each(func(f string, raw json.RawMessage) (err error) {
		pivot, err = sjson.SetRawBytes(pivot, f, raw)
		return err
	})
	return pivot, err
}

// StripRouting returns body (the caller's) without the routing extensions,
// for a native upstream; body itself when it has none.
func (x *RoutingExtensions) StripRouting(body []byte) ([]byte, error) {
	err := x.each(func(f string, _ json.RawMessage) (err error) {
		body, err = sjson.DeleteBytes(body, f)
		return err
	})
	return body, err
}
