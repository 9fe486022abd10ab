package mock

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"
)

const (
	defaultEmbeddingDims = 8
	maxEmbeddingDims     = 8192
	maxEmbeddingInputs   = 2048
)

type embeddingRequest struct {
	Model          *string         `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
}

// embeddingInput is one input: text, or token ids.
type embeddingInput struct {
	text   string
	tokens []int64
	isTok  bool
}

// parseInputs accepts a string, an array of strings, an array of token ids
// or an array of token-id arrays: the embeddings input, or (param
// "prompt", with empty strings allowed) the prompt of a completion.
func parseInputs(raw json.RawMessage, param string, allowEmpty bool) ([]embeddingInput, *reqError) {
	raw = bytes.TrimSpace(raw)
	invalid := badRequest("'$."+param+"' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.", param, "")
	if len(raw) == 0 || raw[0] == 'n' {
		return nil, badRequest("Missing required parameter: '"+param+"'.", param, "missing_required_parameter")
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil || (s == "" && !allowEmpty) {
			return nil, invalid
		}
		return []embeddingInput{{text: s}}, nil
	}
	var items []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &items) != nil || len(items) == 0 || len(items) > maxEmbeddingInputs {
		return nil, invalid
	}
	first := bytes.TrimSpace(items[0])
	if len(first) > 0 && (first[0] == '-' || (first[0] >= '0' && first[0] <= '9')) {
		var toks []int64
		if json.Unmarshal(raw, &toks) != nil {
			return nil, invalid
		}
		return []embeddingInput{{tokens: toks, isTok: true}}, nil
	}
	out := make([]embeddingInput, len(items))
	for i, it := range items {
		it = bytes.TrimSpace(it)
		switch {
		case len(it) > 0 && it[0] == '"':
			if json.Unmarshal(it, &out[i].text) != nil || (out[i].text == "" && !allowEmpty) {
				return nil, invalid
			}
		case len(it) > 0 && it[0] == '[':
			if json.Unmarshal(it, &out[i].tokens) != nil || len(out[i].tokens) == 0 {
				return nil, invalid
			}
			out[i].isTok = true
		default:
			return nil, invalid
		}
	}
	return out, nil
}

func (in *embeddingInput) seed() uint64 {
	if !in.isTok {
		return hashString(in.text)
	}
	h := uint64(0x84222325cbf29ce4)
	for _, t := range in.tokens {
		h = mix(h ^ uint64(t))
	}
	return h
}

func (in *embeddingInput) tokenCount() int {
	if in.isTok {
		return len(in.tokens)
	}
	return max(countWords(in.text), 1)
}

// vector fills v with a deterministic unit vector.
func vector(v []float32, seed uint64) {
	var norm float64
	for i := range v {
		x := float64(mix(seed+uint64(i)*0x9e3779b97f4a7c15)>>11)/(1<<53)*2 - 1
		v[i] = float32(x)
		norm += x * x
	}
	if norm == 0 {
		return
	}
	inv := 1 / math.Sqrt(norm)
	for i := range v {
		v[i] = float32(float64(v[i]) * inv)
	}
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.core.Embeddings.Add(1)
	st := s.st.Load()

	var req embeddingRequest
	d, ok := s.begin(w, r, start, &req)
	if !ok {
		return
	}
	if req.Model == nil || *req.Model == "" {
		s.writeError(w, start, http.StatusBadRequest, "Missing required parameter: 'model'.", "invalid_request_error", "model", "missing_required_parameter")
		return
	}
	model := *req.Model
	inputs, e := parseInputs(req.Input, "input", false)
	if e != nil {
		s.writeError(w, start, e.status, e.message, e.typ, e.param, e.code)
		return
	}
	dims := defaultEmbeddingDims
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > maxEmbeddingDims {
			s.writeError(w, start, http.StatusBadRequest, "Invalid 'dimensions': expected a value between 1 and "+strconv.Itoa(maxEmbeddingDims)+", but got "+strconv.Itoa(*req.Dimensions)+" instead.", "invalid_request_error", "dimensions", "invalid_value")
			return
		}
		dims = *req.Dimensions
	}
	b64 := false
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		b64 = true
	default:
		s.writeError(w, start, http.StatusBadRequest, "Invalid value: '"+req.EncodingFormat+"'. Supported values are: 'float' and 'base64'.", "invalid_request_error", "encoding_format", "invalid_value")
		return
	}
	if !st.models.Has(model) {
		s.writeError(w, start, http.StatusNotFound, "The model `"+model+"` does not exist or you do not have access to it.", "invalid_request_error", "", "model_not_found")
		return
	}
	for i := range inputs {
		if !inputs[i].isTok {
			if err := d.Scan(inputs[i].text); err != nil {
				s.writeError(w, start, http.StatusBadRequest, "mock: bad #mock: directive in the input", "invalid_request_error", "input", "")
				return
			}
		}
	}

	reset, ok := s.fate(w, r, start, st, &d, false, model)
	if !ok {
		return
	}
	if reset {
		s.core.Cut(w)
		return
	}

	bp := getBuf()
	b := append(*bp, `{"object":"list","data":[`...)
	vec := make([]float32, dims)
	raw := make([]byte, 4*dims)
	tokens := 0
	for i := range inputs {
		tokens += inputs[i].tokenCount()
		vector(vec, inputs[i].seed())
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = appendInt(b, int64(i))
		b = append(b, `,"embedding":`...)
		if b64 {
			for j, f := range vec {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(f))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = append(b, '[')
			for j, f := range vec {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = appendString(b, model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = appendInt(b, int64(tokens))
	b = append(b, `,"total_tokens":`...)
	b = appendInt(b, int64(tokens))
	b = append(b, "}}"...)
	s.writeJSON(w, start, http.StatusOK, tokens, b)
	s.core.Completed.Add(1)
	*bp = b
	putBuf(bp)
}
