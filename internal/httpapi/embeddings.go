package httpapi

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/xroute/xroute/internal/respcache"
	"github.com/xroute/xroute/providers"
)

// maxEmbeddingInputs bounds one request, as OpenAI does (2048 inputs).
const maxEmbeddingInputs = 2048

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     int             `json:"dimensions"`
	User           string          `json:"user"`
}

// parseInputs accepts a string or an array of strings. Token-id inputs
// are refused: not every provider accepts them.
func parseInputs(raw json.RawMessage) ([]string, *apiError) {
	bad := func(msg string) ([]string, *apiError) {
		return nil, newError(http.StatusBadRequest, "invalid_request_error", "", msg).withParam("input")
	}
	if len(raw) == 0 || string(raw) == "null" {
		return bad("Missing required parameter: 'input'.")
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one == "" {
			return bad("'input' cannot be an empty string.")
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return bad("'input' must be a string or an array of strings (token-id inputs are not supported by the gateway).")
	}
	if len(many) == 0 || len(many) > maxEmbeddingInputs {
		return bad("'input' must hold from 1 to " + strconv.Itoa(maxEmbeddingInputs) + " strings.")
	}
	for _, s := range many {
		if s == "" {
			return bad("'input' cannot contain an empty string.")
		}
	}
	return many, nil
}

// embeddings is POST /v1/embeddings: the same path as chat (scope, limits,
// routing with failover, metering), answered in OpenAI's shape whatever the
// provider. Floats, or base64 of little-endian float32 when asked (the
// official SDKs ask by default).
func (s *modelAPI) embeddings(c *gin.Context) {
	info := infoOf(c)
	info.endpoint = "embeddings"
	body, bad := s.readBody(c)
	if bad != nil {
		writeError(c, bad)
		return
	}
	if err := providers.CheckFields(body); err != nil {
		writeRequestError(c, err)
		return
	}
	var req embeddingRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "", "We could not parse the JSON body of your request."))
		return
	}
	if req.Model == "" {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "", "you must provide a model parameter").withParam("model"))
		return
	}
	if e := checkModelName(req.Model); e != nil {
		writeError(c, e)
		return
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "", "encoding_format must be float or base64.").withParam("encoding_format"))
		return
	}
	if req.Dimensions < 0 {
		writeError(c, newError(http.StatusBadRequest, "invalid_request_error", "", "dimensions must be positive.").withParam("dimensions"))
		return
	}
	inputs, e := parseInputs(req.Input)
	if e != nil {
		writeError(c, e)
		return
	}
	s.run(c, modelCall{model: req.Model, body: body, serve: func(a *admitted) { s.serveEmbeddings(c, a, req, inputs) }})
}

// serveEmbeddings routes an admitted embeddings request and answers it.
func (s *modelAPI) serveEmbeddings(c *gin.Context, a *admitted, req embeddingRequest, inputs []string) {
	info := infoOf(c)
	if e := s.cacheBegin(c, a, embeddingsFormat, 0); e != nil {
		s.serveEmbeddingsHit(c, req, e)
		return
	}
	vecs, usage, res, err := s.cfg.Router.Embed(a.ctx, a.m, inputs, req.Dimensions)
	noteRoute(info, res)
	if err != nil {
		s.routeFailed(c, err)
		return
	}
	// Inputs without a usable count are counted by the tokenizer.
	info.served = true
	s.noteUsage(info, usage)
	setRouteHeaders(c.Writer.Header(), info)
	if !s.commitUsage(c, info) {
		writeError(c, errSpoolFull())
		return
	}
	if info.cache != nil {
		info.cache.vecs = vecs // committed: cacheDone may keep them
	}
	s.setWriteDeadline(c)
	// The count billed: the upstream's when it holds, else the estimate.
	c.Data(http.StatusOK, "application/json", renderEmbeddings(req.Model, vecs, max(info.prompt, 0), req.EncodingFormat == "base64"))
}

// renderEmbeddings writes OpenAI's embeddings list by hand: a vector of
// 3072 floats through encoding/json would cost far more.
func renderEmbeddings(model string, vecs [][]float32, promptTokens int, b64 bool) []byte {
	out := make([]byte, 0, 64+len(vecs)*16*len(firstOr(vecs)))
	out = append(out, `{"object":"list","data":[`...)
	var raw []byte
	for i, v := range vecs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"object":"embedding","index":`...)
		out = strconv.AppendInt(out, int64(i), 10)
		out = append(out, `,"embedding":`...)
		if b64 {
			raw = raw[:0]
			for _, f := range v {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
			}
			out = append(out, '"')
			out = base64.StdEncoding.AppendEncode(out, raw)
			out = append(out, '"')
		} else {
			out = append(out, '[')
			for j, f := range v {
				if j > 0 {
					out = append(out, ',')
				}
				out = strconv.AppendFloat(out, float64(f), 'g', -1, 32)
			}
			out = append(out, ']')
		}
		out = append(out, '}')
	}
	out = append(out, `],"model":`...)
	mj, _ := json.Marshal(model)
	out = append(out, mj...)
	out = append(out, `,"usage":{"prompt_tokens":`...)
	out = strconv.AppendInt(out, int64(promptTokens), 10)
	out = append(out, `,"total_tokens":`...)
	out = strconv.AppendInt(out, int64(promptTokens), 10)
	return append(out, "}}"...)
}

func firstOr(vecs [][]float32) []float32 {
	if len(vecs) == 0 {
		return nil
	}
	return vecs[0]
}

// serveEmbeddingsHit answers an embeddings request from the response
// cache, recorded and billed as a hit.
func (s *modelAPI) serveEmbeddingsHit(c *gin.Context, req embeddingRequest, e *respcache.Entry) {
	info := infoOf(c)
	setRouteHeaders(c.Writer.Header(), info)
	if !s.commitUsage(c, info) {
		writeError(c, errSpoolFull())
		return
	}
	s.setWriteDeadline(c)
	c.Data(http.StatusOK, "application/json", renderEmbeddings(req.Model, e.Vectors, max(info.prompt, 0), req.EncodingFormat == "base64"))
}
