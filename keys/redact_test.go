package keys

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Credential shapes the redactor must catch whoever owns them.
const (
	shapeOpenAI    = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123456789"
	shapeAnthropic = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx0123456789-_AA"
	shapeGoogle    = "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"
	shapeAWS       = "AKIAIOSFODNN7EXAMPLE"
)

func TestRedactShapes(t *testing.T) {
	xr := Generate()
	xra := GenerateAdmin()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"openai key", "Incorrect API key provided: " + shapeOpenAI + ".", "Incorrect API key provided: [redacted]."},
		{"anthropic key", "key " + shapeAnthropic + " is invalid", "key [redacted] is invalid"},
		{"google key", "Consumer 'api_key:" + shapeGoogle + "' has been suspended.", "Consumer 'api_key:[redacted]' has been suspended."},
		{"aws access key id", "The security token " + shapeAWS + " is invalid", "The security token [redacted] is invalid"},
		{"xroute caller key", "bad key " + xr, "bad key [redacted]"},
		{"xroute admin key", "bad key " + xra, "bad key [redacted]"},
		{"bearer echo", "received header Authorization: Bearer abcdefgh12345678.xyz", "received header Authorization: Bearer [redacted]"},
		{"bearer any case", "BEARER opaque-token-value", "BEARER [redacted]"},
		{"x-api-key echo", `header x-api-key: "0123456789abcdef0123456789abcdef" rejected`, `header x-api-key: "[redacted]" rejected`},
		{"azure api-key", "api-key=0123456789abcdef0123456789abcdef", "api-key=[redacted]"},
		{"goog header", "X-Goog-Api-Key: some-opaque-value-123", "X-Goog-Api-Key: [redacted]"},
		{"json body stays json", `{"error":{"message":"Bearer sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123456789"}}`, `{"error":{"message":"Bearer [redacted]"}}`},
		{"prose kept", "Bearer token missing; the api-key header is required; task-abc", "Bearer token missing; the api-key header is required; task-abc"},
		{"inside a word", "disk-0123456789abcdefghijklmnop", "disk-0123456789abcdefghijklmnop"},
		{"short sk kept", "sk-123 is too short to be a key", "sk-123 is too short to be a key"},
		{"invalid utf-8", "bad \xff\xfe byte", "bad \uFFFD byte"},
		{"nothing", "The model `gpt-5` does not exist.", "The model `gpt-5` does not exist."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewRedactor().Redact(tc.in); got != tc.want {
				t.Fatalf("Redact(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestRedactKnownSecrets(t *testing.T) {
	r := NewRedactor()
	azure := "0123456789abcdef0123456789abcdef" // no recognisable shape
	r.Set("config", azure, "short", "AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
	r.Set("vault:openai", "opaque-vault-key-42")
	for _, tc := range []struct{ in, want string }{
		{"key " + azure + " denied", "key [redacted] denied"},
		{"signature for wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY failed", "signature for [redacted] failed"},
		{"used opaque-vault-key-42 twice: opaque-vault-key-42", "used [redacted] twice: [redacted]"},
		{"a short secret is not searched for", "a short secret is not searched for"},
	} {
		if got := r.Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// A rotated-out key is forgotten with its source's new list.
	r.Set("vault:openai", "the-new-vault-key-43")
	if got := r.Redact("opaque-vault-key-42 the-new-vault-key-43"); got != "opaque-vault-key-42 [redacted]" {
		t.Fatalf("after Set: %q", got)
	}
	r.Add("vault:openai", "a-third-vault-key-44")
	if got := r.Redact("the-new-vault-key-43 a-third-vault-key-44"); got != "[redacted] [redacted]" {
		t.Fatalf("after Add: %q", got)
	}
	r.Set("vault:openai")
	if got := r.Redact("the-new-vault-key-43"); got != "the-new-vault-key-43" {
		t.Fatalf("after clearing the source: %q", got)
	}
	var nilR *Redactor
	if got := nilR.Redact("Bearer abcdefgh12345678"); got != "Bearer [redacted]" {
		t.Fatalf("nil redactor: %q", got)
	}
}

func TestRedactBytesKeepsJSONValid(t *testing.T) {
	r := NewRedactor()
	r.Set("config", "0123456789abcdef0123456789abcdef")
	in := []byte(`{"type":"error","error":{"type":"authentication_error","message":"x-api-key: 0123456789abcdef0123456789abcdef and Bearer ` + shapeAnthropic + " \xff\"}}")
	out := r.RedactBytes(in)
	if !json.Valid(out) {
		t.Fatalf("not JSON: %s", out)
	}
	if bytes.Contains(out, []byte("0123456789abcdef")) || bytes.Contains(out, []byte("sk-ant")) {
		t.Fatalf("secret left: %s", out)
	}
	same := []byte(`{"ok":true}`)
	if got := r.RedactBytes(same); &got[0] != &same[0] {
		t.Fatal("clean input was copied")
	}
}

func TestRedactCoreScrubsEveryTextField(t *testing.T) {
	r := NewRedactor()
	r.Set("config", "opaque-provider-secret")
	var buf bytes.Buffer
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel)
	log := zap.New(RedactCore(core, r)).With(zap.String("ctx", "Bearer opaque-provider-secret"))
	log.Warn("upstream said "+shapeOpenAI,
		zap.String("error", "Incorrect API key provided: "+shapeGoogle),
		zap.Error(errors.New("status 401: opaque-provider-secret")),
		zap.Stringer("who", stringer("x-api-key: "+shapeAnthropic)),
		zap.Int("status", 401))
	out := buf.String()
	for _, secret := range []string{"opaque-provider-secret", shapeOpenAI, shapeGoogle, shapeAnthropic} {
		if strings.Contains(out, secret) {
			t.Fatalf("log line carries %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, `"status":401`) || strings.Count(out, Redacted) != 5 {
		t.Fatalf("log line: %s", out)
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

func TestRedactCleanTextDoesNotAllocate(t *testing.T) {
	r := NewRedactor()
	r.Set("config", "0123456789abcdef0123456789abcdef", "opaque-vault-key-42", shapeOpenAI)
	msg := "The model `gpt-4o-mini` does not exist or you do not have access to it. Bearer token missing."
	if n := testing.AllocsPerRun(100, func() { r.Redact(msg) }); n != 0 {
		t.Fatalf("%v allocations for clean text", n)
	}
}

func BenchmarkRedactErrorText(b *testing.B) {
	r := NewRedactor()
	secrets := make([]string, 20)
	for i := range secrets {
		secrets[i] = Generate()[3:]
	}
	r.Set("vault", secrets...)
	clean := "This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens. Please reduce the length of the messages."
	echo := "Incorrect API key provided: Bearer " + shapeOpenAI + ". You can find your API key at https://platform.openai.com/account/api-keys."
	b.Run("clean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Redact(clean)
		}
	})
	b.Run("echo", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r.Redact(echo)
		}
	})
}

// BenchmarkRedactCoreAccessLog is the cost the redactor adds to the access
// log line every request writes (12 fields, 20 vault keys known).
func BenchmarkRedactCoreAccessLog(b *testing.B) {
	r := NewRedactor()
	secrets := make([]string, 20)
	for i := range secrets {
		secrets[i] = Generate()[3:]
	}
	r.Set("vault", secrets...)
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	line := func(log *zap.Logger) {
		log.Info("request", zap.String("request_id", "req_0123456789abcdef01234567"), zap.String("method", "POST"),
			zap.String("path", "/v1/chat/completions"), zap.Int("status", 200), zap.Duration("latency", 1234567),
			zap.String("client_ip", "203.0.113.7"), zap.String("key_id", "key_AbCdEfGh01234567"), zap.String("model", "gpt-4o-mini"),
			zap.Bool("stream", true), zap.String("provider", "openai"), zap.String("upstream_model", "gpt-4o-mini-2024-07-18"), zap.Int("attempts", 1))
	}
	for _, tc := range []struct {
		name string
		wrap bool
	}{{"plain", false}, {"redacted", true}} {
		b.Run(tc.name, func(b *testing.B) {
			core := zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zap.InfoLevel)
			if tc.wrap {
				core = RedactCore(core, r)
			}
			log := zap.New(core)
			b.ReportAllocs()
			for b.Loop() {
				line(log)
			}
		})
	}
}
