// Package builtin lists the adapters compiled into xroute. Adding an adapter
// is one new package plus one line here.
package builtin

import (
	"github.com/xroute/xroute/providers"
	"github.com/xroute/xroute/providers/anthropic"
	"github.com/xroute/xroute/providers/azure"
	"github.com/xroute/xroute/providers/bedrock"
	"github.com/xroute/xroute/providers/gemini"
	"github.com/xroute/xroute/providers/openai"
)

// Registry returns a registry holding every built-in adapter.
func Registry() *providers.Registry {
	r := providers.NewRegistry()
	r.Register("openai", openai.New)
	r.Register("anthropic", anthropic.New)
	r.Register("azure", azure.New)
	r.Register("bedrock", bedrock.New)
	r.Register(gemini.Type, gemini.New)
	return r
}
