package mock

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	openai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"
)

func TestResponsesStructuredOutputs(t *testing.T) {
	t.Parallel()
	var sc map[string]any
	if err := json.Unmarshal([]byte(planSchema), &sc); err != nil {
		t.Fatal(err)
	}
	for _, stream := range []bool{false, true} {
		t.Run("stream="+strconv.FormatBool(stream), func(t *testing.T) {
			_, base := startServer(t, Config{ChunkTokens: 5})
			oc := officialClient(base, "")
			params := responses.ResponseNewParams{
				Model: "gpt-4o-2024-08-06",
				Input: userInput("plan my day"),
				Text: responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{
					OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{Name: "plan", Schema: sc, Strict: openai.Bool(true)},
				}},
			}
			var r *responses.Response
			if stream {
				r = streamToResponse(t, oc, params)
			} else {
				var err error
				if r, err = oc.Responses.New(context.Background(), params); err != nil {
					t.Fatal(err)
				}
			}
			doc := r.OutputText()
			checkSchema(t, planSchema, doc)
			var p plan
			decodeStrict(t, doc, &p)
			if r.Text.Format.Type != "json_schema" || r.Text.Format.Name != "plan" || !r.Text.Format.Strict {
				t.Fatalf("format not echoed: %s", r.RawJSON())
			}
			if r.Usage.OutputTokens != int64(len(Fragments(doc))) {
				t.Fatalf("usage %s for %d pieces", r.Usage.RawJSON(), len(Fragments(doc)))
			}
		})
	}

	t.Run("json_object", func(t *testing.T) {
		_, base := startServer(t, Config{})
		oc := officialClient(base, "")
		params := responses.ResponseNewParams{
			Model: "m", Input: userInput("answer in JSON"),
			Text: responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}},
		}
		r, err := oc.Responses.New(context.Background(), params)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]string
		if err := json.Unmarshal([]byte(r.OutputText()), &v); err != nil || len(strings.Fields(v["text"])) != DefaultCompletionTokens {
			t.Fatalf("%q: %v", r.OutputText(), err)
		}
		// The word "json" must appear in the input or the instructions.
		params.Input = userInput("answer please")
		_, err = oc.Responses.New(context.Background(), params)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "input" {
			t.Fatalf("want a 400 on input, got %v", err)
		}
		params.Instructions = openai.String("Reply with a JSON object.")
		if _, err := oc.Responses.New(context.Background(), params); err != nil {
			t.Fatal(err)
		}
	})
}

func TestResponsesReasoning(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		model         string
		reasoning     string // the request's reasoning object, "" = none
		include       bool   // reasoning.encrypted_content
		maxOut        int
		wantReasoning int // reasoning tokens; 0 = no reasoning item
		wantSummary   bool
		wantEffort    string // echoed; "" = null
		wantMessage   bool
	}{
		{"effort and summary and encrypted", "m", `{"effort":"low","summary":"detailed"}`, true, 0, 8, true, "low", true},
		{"generate_summary spelling", "m", `{"effort":"high","generate_summary":"concise"}`, false, 0, 32, true, "high", true},
		{"reasoning model by name", "o3", "", false, 0, 16, false, "medium", true},
		{"effort none", "gpt-5", `{"effort":"none"}`, false, 0, 0, false, "none", true},
		{"no reasoning", "gpt-4o", "", false, 0, 0, false, "", true},
		{"reasoning uses up max_output_tokens", "gpt-5", `{"effort":"high","summary":"auto"}`, false, 20, 20, true, "high", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, base := startServer(t, Config{CompletionTokens: 6})
			body := `{"model":"` + tc.model + `","input":"why is the sky blue?"`
			if tc.reasoning != "" {
				body += `,"reasoning":` + tc.reasoning
			}
			if tc.include {
				body += `,"include":["reasoning.encrypted_content"]`
			}
			if tc.maxOut > 0 {
				body += `,"max_output_tokens":` + strconv.Itoa(tc.maxOut)
			}
			raw := readAll(t, post(t, context.Background(), base+"/responses", body+"}", nil))
			var r responses.Response
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			checkResponse(t, "response", &r)
			if string(r.Reasoning.Effort) != tc.wantEffort || (tc.wantEffort == "" && r.JSON.Reasoning.Raw() != `{"effort":null,"summary":null}`) {
				t.Fatalf("reasoning echo: %s", r.JSON.Reasoning.Raw())
			}
			out := r.Output
			if tc.wantReasoning > 0 {
				if len(out) == 0 || out[0].Type != "reasoning" || !strings.HasPrefix(out[0].ID, "rs_") {
					t.Fatalf("output: %s", raw)
				}
				rs := out[0].AsReasoning()
				if tc.wantSummary != (len(rs.Summary) == 1) {
					t.Fatalf("summary: %s", out[0].RawJSON())
				}
				if tc.wantSummary && (rs.Summary[0].Type != "summary_text" || len(strings.Fields(rs.Summary[0].Text)) != tc.wantReasoning) {
					t.Fatalf("summary: %s", out[0].RawJSON())
				}
				if tc.include {
					if _, err := base64.URLEncoding.DecodeString(rs.EncryptedContent); err != nil || len(rs.EncryptedContent) < 32 {
						t.Fatalf("encrypted_content %q: %v", rs.EncryptedContent, err)
					}
				} else if rs.JSON.EncryptedContent.Raw() != "" {
					t.Fatalf("encrypted_content not asked for: %s", out[0].RawJSON())
				}
				out = out[1:]
			}
			if tc.wantMessage != (len(out) == 1 && out[0].Type == "message") || (!tc.wantMessage && len(out) != 0) {
				t.Fatalf("output: %s", raw)
			}
			wantOut := int64(tc.wantReasoning)
			if tc.wantMessage {
				wantOut += 6
			}
			if r.Usage.OutputTokensDetails.ReasoningTokens != int64(tc.wantReasoning) || r.Usage.OutputTokens != wantOut {
				t.Fatalf("usage %s, want output %d", r.Usage.RawJSON(), wantOut)
			}
			if !tc.wantMessage && (r.Status != "incomplete" || r.IncompleteDetails.Reason != "max_output_tokens") {
				t.Fatalf("status: %s", raw)
			}
		})
	}
}
