package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/xroute/xroute/keys"
)

// cacheFlags are a key's response cache policy flags (keys create and
// keys update): only the flags given change anything.
type cacheFlags struct {
	state    string // "on", "off" or "" (unchanged)
	ttl      time.Duration
	maxEntry int
	ttlSet   bool
	maxSet   bool
}

func (cf *cacheFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&cf.state, "cache", "", "the response cache for this key's requests: on or off (it never turns on a model whose config has it off)")
	fs.DurationVar(&cf.ttl, "cache-ttl", 0, "at most this long for the answers its requests store, e.g. 10m (0: the model's TTL)")
	fs.IntVar(&cf.maxEntry, "cache-max-entry-bytes", 0, "do not store answers larger than this (0: the model's bound)")
}

// read notes which flags were given and checks them.
func (cf *cacheFlags) read(cmd *cobra.Command) error {
	cf.ttlSet, cf.maxSet = cmd.Flags().Changed("cache-ttl"), cmd.Flags().Changed("cache-max-entry-bytes")
	if cf.state != "" && cf.state != "on" && cf.state != "off" {
		return fmt.Errorf("%w: --cache is on or off, got %q", errUsage, cf.state)
	}
	if cf.ttl < 0 || cf.maxEntry < 0 {
		return fmt.Errorf("%w: --cache-ttl and --cache-max-entry-bytes cannot be negative", errUsage)
	}
	return nil
}

func (cf *cacheFlags) any() bool { return cf.state != "" || cf.ttlSet || cf.maxSet }

// body is the admin API's "cache" object of the flags given.
func (cf *cacheFlags) body() map[string]any {
	b := map[string]any{}
	if cf.state != "" {
		b["enabled"] = cf.state == "on"
	}
	if cf.ttlSet {
		b["ttl"] = ""
		if cf.ttl > 0 {
			b["ttl"] = cf.ttl.String()
		}
	}
	if cf.maxSet {
		b["max_entry_bytes"] = cf.maxEntry
	}
	return b
}

// apply is p changed by the flags given.
func (cf *cacheFlags) apply(p keys.CachePolicy) keys.CachePolicy {
	if cf.state != "" {
		p.Off = cf.state == "off"
	}
	if cf.ttlSet {
		p.TTL = cf.ttl
	}
	if cf.maxSet {
		p.MaxEntryBytes = cf.maxEntry
	}
	return p
}

// describeCache is one line for the operator.
func describeCache(p keys.CachePolicy) string {
	if p.Off {
		return "cache off"
	}
	s := "cache on (the model's policy"
	if p.TTL > 0 {
		s += fmt.Sprintf(", ttl at most %s", p.TTL)
	}
	if p.MaxEntryBytes > 0 {
		s += fmt.Sprintf(", entries at most %d bytes", p.MaxEntryBytes)
	}
	return s + ")"
}
