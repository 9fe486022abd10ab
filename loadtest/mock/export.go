package mock

import "encoding/json"

// The functions below let mocks of other wire formats (Anthropic, Gemini,
// Bedrock, ...) generate the same deterministic answers and token counts
// as this OpenAI mock, so tests can compare them across providers.

// Seed derives the deterministic seed of an answer from the text it
// answers (the last user message).
func Seed(text string) uint64 { return hashString(text) }

// Token returns token i of an answer of n tokens: the first capitalized,
// later ones with a leading space, the last one ending with a period when
// stop is true (the answer finished rather than being cut).
func Token(seed uint64, i, n int, stop bool) string { return token(seed, i, n, stop) }

// CountWords counts the tokens of a text the way the mock does (words).
func CountWords(s string) int { return countWords(s) }

// ToolArguments builds deterministic arguments (a JSON object, as a
// string) from a function's JSON-schema parameters.
func ToolArguments(params json.RawMessage, seed uint64) string { return toolArguments(params, seed) }
