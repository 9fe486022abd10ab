package bedrock

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xroute/xroute/internal/testutil"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
)

// TestSDKCachePoints: a system prompt followed by a cachePoint is written
// on the first call and read on the next, per credential; a prefix below
// the model's minimum (2048 for Claude 3.5 Haiku) is not cached; entries
// expire 5 minutes after their last use. Tokens: framing 3 + system 3 +
// its words; the user turn 3 + 2 words.
func TestSDKCachePoints(t *testing.T) {
	t.Parallel()
	clk := testutil.NewClock()
	clk.Set(time.Now()) // SigV4 checks the signing time against the mock's clock
	_, srv := serve(t, Config{Now: clk.Now})
	ctx := context.Background()
	in := func(words int) *bedrockruntime.ConverseInput {
		return &bedrockruntime.ConverseInput{
			ModelId:  aws.String(model),
			Messages: []types.Message{userMsg("Hello there")},
			System: []types.SystemContentBlock{
				&types.SystemContentBlockMemberText{Value: strings.TrimSpace(strings.Repeat("stable ", words))},
				&types.SystemContentBlockMemberCachePoint{Value: types.CachePointBlock{Type: types.CachePointTypeDefault}},
			},
		}
	}
	type counts struct{ input, read, write int32 }
	steps := []struct {
		name    string
		key     string
		words   int
		advance time.Duration
		want    counts
	}{
		{"first call writes", "AKIDA", 2100, 0, counts{5, 0, 2106}},
		{"second call reads", "AKIDA", 2100, time.Minute, counts{5, 2106, 0}},
		{"another credential does not share it", "AKIDB", 2100, 0, counts{5, 0, 2106}},
		{"below the model's 2048 minimum: no cache", "AKIDA", 1500, 0, counts{1511, 0, 0}},
		{"expired 5 minutes after the last read", "AKIDA", 2100, 5*time.Minute + time.Second, counts{5, 0, 2106}},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		out, err := sdkClient(srv, st.key, secret).Converse(ctx, in(st.words), func(o *bedrockruntime.Options) {
			o.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: st.key, SecretAccessKey: secret}, nil
			})
		})
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		u := out.Usage
		got := counts{*u.InputTokens, aws.ToInt32(u.CacheReadInputTokens), aws.ToInt32(u.CacheWriteInputTokens)}
		if got != st.want || *u.TotalTokens != got.input+got.read+got.write+*u.OutputTokens {
			t.Fatalf("%s: %+v (total %d), want %+v", st.name, got, *u.TotalTokens, st.want)
		}
	}
}
