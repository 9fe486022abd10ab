package loadtest

import (
	"encoding/json"
	"testing"
)

// refChunk is the reference reading of a chunk, by encoding/json.
type refChunk struct {
	ID      *string `json:"id"`
	Choices []struct {
		Delta *struct {
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

func TestScanChunkMatchesEncodingJSON(t *testing.T) {
	chunks := []string{
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}`,
		`{"id":"c1","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}`,
		`{"id":"c1","choices":[{"index":0,"delta":{"content":"line\nbreak \"quoted\" caf\u00e9 \ud83d\ude00 back\\slash"}}]}`,
		`{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}`,
		`{"id":"c1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":64,"total_tokens":76,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
		`{"error":{"message":"boom","type":"server_error","param":null,"code":null}}`,
		`{"error":null,"id":"c2","choices":null}`,
		` { "id" : "c3" , "choices" : [ { "delta" : { "content" : "x" , "tool_calls" : [ { "index" : 0 , "function" : { "arguments" : "{\"a\":[1,2.5e3,-3,true,false,null]}" } } ] } } ] } `,
		`{"id":"c4","choices":[{"delta":null,"finish_reason":"length"},null]}`,
		`{"id":"c5","system_fingerprint":"fp","choices":[{"delta":{"content":null,"refusal":null}}],"extra":{"deep":[[[{"a":{}}]]]}}`,
	}
	for _, c := range chunks {
		t.Run(c[:min(len(c), 40)], func(t *testing.T) {
			var ref refChunk
			if err := json.Unmarshal([]byte(c), &ref); err != nil {
				t.Fatalf("reference: %v", err)
			}
			var s scanner
			var got chunkFields
			if !scanChunk([]byte(c), &s, &got) {
				t.Fatal("scanChunk rejected a valid chunk")
			}
			var wantID, wantContent, wantFinish string
			if ref.ID != nil {
				wantID = *ref.ID
			}
			for _, ch := range ref.Choices {
				if ch.Delta != nil && ch.Delta.Content != nil {
					wantContent += *ch.Delta.Content
				}
				if ch.FinishReason != nil {
					wantFinish = *ch.FinishReason
				}
			}
			if string(got.ID) != wantID || string(got.Content) != wantContent || string(got.FinishReason) != wantFinish {
				t.Errorf("id/content/finish = %q/%q/%q, want %q/%q/%q", got.ID, got.Content, got.FinishReason, wantID, wantContent, wantFinish)
			}
			if got.HasUsage != (ref.Usage != nil) || (ref.Usage != nil && got.Completion != ref.Usage.CompletionTokens) {
				t.Errorf("usage = %v/%d, want %+v", got.HasUsage, got.Completion, ref.Usage)
			}
			if wantErr := len(ref.Error) > 0 && string(ref.Error) != "null"; got.HasError != wantErr {
				t.Errorf("HasError = %v, want %v", got.HasError, wantErr)
			}
		})
	}
}

func TestScanChunkRejectsMalformed(t *testing.T) {
	for _, c := range []string{
		``, `[DONE]`, `{`, `{"id":"c1"`, `{"id":"c1",}`, `{"id":c1}`, `{"choices":[{"delta":{"content":"x"}]}`,
		`{"id":"c1"} trailing`, `{"id":"unterminated}`, `{"a":tru}`, `"just a string"`, "{\"id\":\"ctl\x01\"}",
	} {
		var s scanner
		var got chunkFields
		if scanChunk([]byte(c), &s, &got) {
			t.Errorf("scanChunk(%q) accepted malformed JSON", c)
		}
	}
}
