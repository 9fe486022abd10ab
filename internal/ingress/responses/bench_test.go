package responses

import (
	"testing"

	"github.com/xroute/xroute/loadtest"
)

// BenchmarkParseAgent is the Responses ingress's read of an agent-sized
// request: Parse (check), then Translate (pivot and native body), of
// loadtest.AgentResponsesBody.
func BenchmarkParseAgent(b *testing.B) {
	body := loadtest.AgentResponsesBody("gpt-5-codex", 121)
	b.SetBytes(int64(len(body)))
	for _, step := range []string{"parse", "parse+translate"} {
		b.Run(step, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := Parse(body)
				if err != nil {
					b.Fatal(err)
				}
				if step == "parse" {
					continue
				}
				if _, err := r.Translate(nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
