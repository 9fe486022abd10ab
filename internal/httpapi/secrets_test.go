package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys"
	"github.com/xroute/xroute/keys/auditlog"
)

// Provider keys without a recognisable shape: only the redactor's list of
// known keys (config and vault) can catch them.
const (
	echoConfigKey = "opaque-config-key-7f3a9c2e51d04b86"
	echoVaultKey  = "opaque-vault-key-1b9e44a0c7d2f365"
)

// echoShapes are credentials of every shape an upstream may quote, none of
// them a key xroute holds.
var echoShapes = map[string]string{
	"openai":    "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123456789",
	"anthropic": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx0123456789-_AA",
	"google":    "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW",
	"aws":       "AKIAIOSFODNN7EXAMPLE",
	"xroute":    keys.Generate(),
}

// echoMessage is an upstream error text quoting what the request carried
// (the red team's "Incorrect API key provided: Bearer sk-…"), the key bare,
// every other shape, and a byte that is not UTF-8.
func echoMessage(r *http.Request) string {
	auth, xkey := r.Header.Get("Authorization"), r.Header.Get("x-api-key")
	bare := strings.TrimPrefix(auth, "Bearer ")
	if bare == "" {
		bare = xkey
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Incorrect API key provided. Authorization: %s; x-api-key: %s; the key ends %s.", auth, xkey, bare)
	for _, s := range echoShapes {
		b.WriteString(" Also " + s + ".")
	}
	b.WriteString(" Bad byte: \xff.")
	return b.String()
}

// echoUpstream answers every request with an error quoting its
// credentials: a 400 before any byte, or — for a model whose name ends in
// -mid and a stream — a first chunk, then the error as the stream's own
// error event, in the wire format of the path (chat, Responses, Messages).
func echoUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		raw, _ := io.ReadAll(r.Body)
		json.Unmarshal(raw, &req)
		// Marshalled by hand: json.Marshal would replace the bad byte.
		quoted := `"` + strings.ReplaceAll(echoMessage(r), `"`, `\"`) + `"`
		anthropic := strings.HasSuffix(r.URL.Path, "/messages")
		if !req.Stream || !strings.HasSuffix(req.Model, "-mid") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			if anthropic {
				fmt.Fprintf(w, `{"type":"error","error":{"type":"invalid_request_error","message":%s}}`, quoted)
			} else {
				fmt.Fprintf(w, `{"error":{"message":%s,"type":"invalid_request_error","param":null,"code":null}}`, quoted)
			}
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		ev := func(name, data string) {
			if name != "" {
				fmt.Fprintf(w, "event: %s\n", name)
			}
			fmt.Fprintf(w, "data: %s\n\n", data)
			w.(http.Flusher).Flush()
		}
		switch {
		case anthropic:
			ev("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"x","content":[],"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}`)
			ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`)
			ev("error", `{"type":"error","error":{"type":"invalid_request_error","message":`+quoted+`}}`)
		case strings.HasSuffix(r.URL.Path, "/responses"):
			ev("response.created", `{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}}`)
			ev("response.output_text.delta", `{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}`)
			ev("error", `{"type":"error","sequence_number":2,"code":"invalid_request","message":`+quoted+`,"param":null}`)
		default:
			ev("", `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}`)
			ev("", `{"error":{"message":`+quoted+`,"type":"invalid_request_error"}}`)
		}
	})
}

// echoGateway is xroute in front of echoUpstream: "echo" (OpenAI wire,
// authenticated with a vault key), "echo-native" (OpenAI wire serving the
// Responses API natively, config key) and "echo-claude" (Anthropic wire,
// Messages natively, config key).
func echoGateway(t *testing.T) *gateway {
	t.Helper()
	up := httptest.NewServer(echoUpstream())
	t.Cleanup(up.Close)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers,
			config.Provider{Name: "echo", Type: "openai", BaseURL: up.URL + "/v1", APIKey: echoConfigKey},
			config.Provider{Name: "echo-native", Type: "openai", BaseURL: up.URL + "/v1", APIKey: echoConfigKey, NativeFormats: []string{"responses"}},
			config.Provider{Name: "echo-claude", Type: "anthropic", BaseURL: up.URL, APIKey: echoConfigKey},
		)
		for _, m := range []struct{ name, provider string }{
			{"echo", "echo"}, {"echo-mid", "echo"},
			{"echo-native", "echo-native"}, {"echo-native-mid", "echo-native"},
			{"echo-claude", "echo-claude"}, {"echo-claude-mid", "echo-claude"},
		} {
			c.Models = append(c.Models, config.Model{Name: m.name, Deployments: []config.Deployment{{Provider: m.provider, Model: m.name}}})
		}
	}})
	if _, err := g.app.Secrets.AddProviderKey(context.Background(), "test", "echo", "vault", echoVaultKey, 1); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestHoleProviderKeyEchoedInUpstreamError: an upstream error quoting the
// request's credentials reached the caller and the access log unchanged.
// Every endpoint, streamed or not, natively relayed or translated, is fed
// an error quoting the provider key (config and vault, bare and as
// "Bearer …" / "x-api-key: …") and every key shape; none reaches the
// caller or a log line, and the answer is valid UTF-8.
func TestHoleProviderKeyEchoedInUpstreamError(t *testing.T) {
	t.Parallel()
	g := echoGateway(t)
	type request struct {
		name, path, body string
		anthropic        bool
	}
	var reqs []request
	for _, model := range []string{"echo", "echo-mid"} {
		reqs = append(reqs,
			request{"chat/" + model, "/v1/chat/completions", `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`, false},
			request{"chat-stream/" + model, "/v1/chat/completions", `{"model":"` + model + `","stream":true,"messages":[{"role":"user","content":"hi"}]}`, false},
			request{"responses-translated/" + model, "/v1/responses", `{"model":"` + model + `","stream":true,"input":"hi"}`, false},
			request{"messages-translated/" + model, "/v1/messages", `{"model":"` + model + `","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, true},
		)
	}
	reqs = append(reqs,
		request{"embeddings", "/v1/embeddings", `{"model":"echo","input":"hi"}`, false},
		request{"responses-translated", "/v1/responses", `{"model":"echo","input":"hi"}`, false},
		request{"messages-translated", "/v1/messages", `{"model":"echo","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, true},
	)
	for _, model := range []string{"echo-native", "echo-native-mid"} {
		reqs = append(reqs,
			request{"responses-native/" + model, "/v1/responses", `{"model":"` + model + `","input":"hi"}`, false},
			request{"responses-native-stream/" + model, "/v1/responses", `{"model":"` + model + `","stream":true,"input":"hi"}`, false},
		)
	}
	for _, model := range []string{"echo-claude", "echo-claude-mid"} {
		reqs = append(reqs,
			request{"messages-native/" + model, "/v1/messages", `{"model":"` + model + `","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, true},
			request{"messages-native-stream/" + model, "/v1/messages", `{"model":"` + model + `","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, true},
		)
	}
	secrets := map[string]string{"config key": echoConfigKey, "vault key": echoVaultKey}
	for k, v := range echoShapes {
		secrets[k+" shape"] = v
	}
	for _, rq := range reqs {
		t.Run(rq.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, g.srv.URL+rq.path, strings.NewReader(rq.body))
			req.Header.Set("Authorization", "Bearer "+g.key)
			if rq.anthropic {
				req.Header.Set("anthropic-version", "2023-06-01")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(raw)
			if resp.StatusCode == http.StatusOK && !strings.Contains(body, "error") {
				t.Fatalf("the upstream's failure did not reach the caller: %s", body)
			}
			for what, s := range secrets {
				if strings.Contains(body, s) {
					t.Errorf("the answer carries the %s: %s", what, body)
				}
			}
			if !utf8.ValidString(body) {
				t.Errorf("the answer is not valid UTF-8: %q", body)
			}
		})
	}
	logs := g.logs.String()
	for what, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a log line carries the %s", what)
		}
	}
	if !strings.Contains(logs, "Incorrect API key provided") {
		t.Error("the access log lost the upstream's error text altogether")
	}
}

// TestHoleInvalidUTF8RelayedAsIs: bytes that are not UTF-8 in an
// upstream's answer went to the caller unchanged (chat passes the
// upstream's chunks through). They are replaced with U+FFFD, streamed or
// not, and the answer stays valid JSON.
func TestHoleInvalidUTF8RelayedAsIs(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream bool `json:"stream"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"c1","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"message":{"role":"assistant","content":"caf`+"\xe9 \xff"+`"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"caf\xe9 \xff\"}}]}\n\n")
		io.WriteString(w, "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	g := newGateway(t, gwOptions{mutate: func(c *config.Config) {
		c.Providers = append(c.Providers, config.Provider{Name: "latin1", Type: "openai", BaseURL: up.URL + "/v1", APIKey: echoConfigKey})
		c.Models = append(c.Models, config.Model{Name: "latin1", Deployments: []config.Deployment{{Provider: "latin1", Model: "latin1"}}})
	}})
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":"latin1","stream":%t,"messages":[{"role":"user","content":"hi"}]}`, stream)
		req, _ := http.NewRequest(http.MethodPost, g.base+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+g.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !utf8.Valid(raw) || !strings.Contains(string(raw), "caf\uFFFD \uFFFD") {
			t.Fatalf("stream=%t: %d %q", stream, resp.StatusCode, raw)
		}
		if !stream && !json.Valid(raw) {
			t.Fatalf("not JSON: %q", raw)
		}
	}
}

// vaultKeys adds provider keys for "primary" to the vault and returns
// their ids, in order.
func vaultKeys(t *testing.T, g *gateway, secrets ...string) []string {
	t.Helper()
	var ids []string
	for i, s := range secrets {
		pk, err := g.app.Secrets.AddProviderKey(context.Background(), "test", "primary", "key"+strconv.Itoa(i), s, 1)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, pk.ID)
	}
	return ids
}

// storedProviderKey returns a stored provider key's properties.
func storedProviderKey(t *testing.T, g *gateway, id string) keys.ProviderKey {
	t.Helper()
	list, err := g.app.Secrets.ListProviderKeys(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, pk := range list {
		if pk.ID == id {
			return pk
		}
	}
	t.Fatalf("no provider key %s", id)
	return keys.ProviderKey{}
}

// TestHoleForbiddenModelDisablesEveryPoolKey: the red team's run — five
// requests for a model the upstream forbids (403) disabled all three pool
// keys, audited as system. A 403 is the request's: the keys stay active,
// nothing is audited, and the caller learns why in a 403.
func TestHoleForbiddenModelDisablesEveryPoolKey(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gwOptions{noProviderKey: true})
	ids := vaultKeys(t, g, providerKey, providerKey, providerKey)
	for i := 0; i < 5; i++ {
		st, body, _ := call(t, "POST", g.base+"/chat/completions", g.key, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi #mock:status=403"}]}`)
		if st != http.StatusForbidden || errCode(body) != "upstream_permission_denied" {
			t.Fatalf("request %d: %d %v", i, st, body)
		}
	}
	list, err := g.app.Secrets.ListProviderKeys(context.Background(), "primary")
	if err != nil {
		t.Fatal(err)
	}
	for _, pk := range list {
		if pk.Status != keys.ProviderKeyActive {
			t.Errorf("key %s is %s (%s)", pk.ID, pk.Status, pk.DisabledReason)
		}
	}
	if len(list) != len(ids) {
		t.Errorf("keys: %+v", list)
	}
	events, err := g.app.Audit.List(context.Background(), auditlog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Kind == "provider_key.disabled" {
			t.Errorf("audited: %+v", e)
		}
	}
}
