package responses

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// StoredInput is this turn's input items as stored: each item as the
// caller sent it (a string input is one user message), so that a later
// previous_response_id replays exactly what was sent.
func (r *Request) StoredInput() []byte {
	raws := make([]json.RawMessage, len(r.Items))
	for i, it := range r.Items {
		raws[i] = it.Raw
	}
	b, _ := json.Marshal(raws)
	return b
}

// History reads the items of a stored conversation (each response's input
// then output, oldest first) for Translate.
func History(turns [][2][]byte) ([]Item, error) {
	var out []Item
	for _, t := range turns {
		for _, raw := range t {
			var raws []json.RawMessage
			if err := json.Unmarshal(raw, &raws); err != nil {
				return nil, err
			}
			for _, ir := range raws {
				it, err := parseItem("previous_response_id", ir)
				if err != nil {
					return nil, err
				}
				out = append(out, it)
			}
		}
	}
	return out, nil
}

// idPrefixes are the id prefixes of item types, for items stored without
// an id (callers need not send ids; input_items lists them with one).
var idPrefixes = map[string]string{"message": "msg_", "function_call": "fc_", "function_call_output": "fco_",
	"custom_tool_call": "ctc_", "custom_tool_call_output": "ctco_", "reasoning": "rs_"}

// ListItems renders stored input items for GET input_items: every item
// gets an id (a stable one derived from the response id and its position
// when the caller sent none), messages get their content as parts and a
// status. Items are returned in stored order.
func ListItems(responseID string, stored []byte) ([]json.RawMessage, []string, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(stored, &raws); err != nil {
		return nil, nil, err
	}
	ids := make([]string, len(raws))
	for i, raw := range raws {
		item := []byte(raw)
		typ := gjson.GetBytes(item, "type").Str
		if typ == "" {
			typ = "message"
			item, _ = sjson.SetBytes(item, "type", typ)
		}
		id := gjson.GetBytes(item, "id").Str
		if id == "" {
			prefix := idPrefixes[typ]
			if prefix == "" {
				prefix = "item_"
			}
			sum := sha256.Sum256([]byte(responseID + "/" + strconv.Itoa(i)))
			id = prefix + hex.EncodeToString(sum[:20])
			item, _ = sjson.SetBytes(item, "id", id)
		}
		if typ == "message" {
			if c := gjson.GetBytes(item, "content"); c.Type == gjson.String {
				part := "input_text"
				if gjson.GetBytes(item, "role").Str == "assistant" {
					part = "output_text"
				}
				item, _ = sjson.SetBytes(item, "content", []map[string]string{{"type": part, "text": c.Str}})
			}
			if !gjson.GetBytes(item, "status").Exists() {
				item, _ = sjson.SetBytes(item, "status", "completed")
			}
		}
		raws[i], ids[i] = item, id
	}
	return raws, ids, nil
}
