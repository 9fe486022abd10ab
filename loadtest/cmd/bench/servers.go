// Starting the upstreams and the gateways under test for a bench run.

package main

import (
	"context"
	"net/http"
	"strings"

	"github.com/xroute/xroute/loadtest"
)

// upstreams are the mocks: the OpenAI one always, the Anthropic one when
// the messages-stream phase runs (else nil). The base URLs end in /v1.
type upstreams struct {
	openai, anthropic         *child
	openaiBase, anthropicBase string
}

// startServers starts the gateways of the targets, all up front so that
// they all see the same machine. An xroute that does not start is skipped
// (noted in the report); any other failure ends the bench.
func (b *bench) startServers(ctx context.Context, l *lab, report *loadtest.Report, xrouteBin string, up upstreams) ([]*server, error) {
	var servers []*server
	msgs := up.anthropic != nil && b.wantsAPI(apiMsgs)
	for _, name := range b.cfg.targets {
		if _, skip := report.Skipped[name]; skip || !b.wants(name) {
			continue
		}
		s := &server{upstream: up.openai}
		switch name {
		case targetDirect:
			s.target = loadtest.Target{Name: name, BaseURL: up.openaiBase, APIKey: mockKey}
			if msgs {
				s.messages = &server{upstream: up.anthropic, target: loadtest.Target{Name: name, BaseURL: up.anthropicBase, APIKey: mockKey}}
			}
		case targetProxy:
			c, base, err := l.startProxy(ctx, "proxy", strings.TrimSuffix(up.openaiBase, "/v1"))
			if err != nil {
				return nil, err
			}
			s.gateway, s.target = c, loadtest.Target{Name: name, BaseURL: base, APIKey: mockKey}
			if msgs {
				c, base, err := l.startProxy(ctx, "proxy-anthropic", strings.TrimSuffix(up.anthropicBase, "/v1"))
				if err != nil {
					return nil, err
				}
				s.messages = &server{gateway: c, upstream: up.anthropic, target: loadtest.Target{Name: name, BaseURL: base, APIKey: mockKey}}
			}
		case targetXroute, targetXrouteInfo, targetXrouteTranslated:
			x := xrouteSetup{name: name, logLevel: "warn", mockBase: up.openaiBase, nativeResponses: name != targetXrouteTranslated}
			if name == targetXrouteInfo {
				x.logLevel = "info"
			}
			if msgs {
				x.messagesModel = b.cfg.messagesModel
				if name != targetXrouteTranslated {
					x.anthropicBase = strings.TrimSuffix(up.anthropicBase, "/v1")
				}
			}
			c, base, key, err := l.startXroute(ctx, xrouteBin, x)
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				b.progress("bench: %v", err)
				report.Skipped[name] = "did not start: " + firstLine(err.Error())
				continue
			}
			s.gateway, s.target = c, loadtest.Target{Name: name, BaseURL: base, APIKey: key}
			if x.anthropicBase != "" {
				s.messages = &server{gateway: c, upstream: up.anthropic, target: s.target}
			}
		case targetPortkey:
			c, base, note, err := l.startPortkey(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil, err
				}
				b.progress("bench: portkey: %v", err)
				report.Skipped[name] = firstLine(err.Error())
				continue
			}
			report.Notes = append(report.Notes, note)
			// Portkey routes by headers: the provider, and a custom host
			// (the mock) instead of the provider's public API.
			s.gateway, s.target = c, loadtest.Target{Name: name, BaseURL: base, APIKey: mockKey, Header: http.Header{
				"X-Portkey-Provider":    {"openai"},
				"X-Portkey-Custom-Host": {up.openaiBase},
			}}
			if msgs {
				s.messages = &server{gateway: c, upstream: up.anthropic, target: loadtest.Target{Name: name, BaseURL: base, APIKey: mockKey, Header: http.Header{
					"X-Portkey-Provider":    {"anthropic"},
					"X-Portkey-Custom-Host": {up.anthropicBase},
				}}}
			}
		}
		servers = append(servers, s)
	}
	return servers, nil
}

// cpuPairs are the gateway CPU-per-request ratios the report derives.
func cpuPairs() [][2]string {
	return [][2]string{
		{targetXroute, targetProxy}, {targetXrouteInfo, targetProxy}, {targetXrouteInfo, targetXroute},
		{targetXrouteTranslated, targetProxy}, {targetXrouteTranslated, targetXroute},
		{targetPortkey, targetProxy}, {targetXroute, targetPortkey},
	}
}
