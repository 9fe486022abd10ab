package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the file at path (empty path: defaults only), applies the
// environment (pass os.Environ()) and validates the result. Settings it
// does not know are ignored; LoadWithWarnings names them.
func Load(path string, environ []string) (Config, error) {
	cfg, _, err := LoadWithWarnings(path, environ)
	return cfg, err
}

// LoadWithWarnings is Load that also returns the warnings: every key of
// the file and every XROUTE_* variable that matches no setting, with the
// closest known one. They are warnings, not errors: the setting meant is
// left at its value, and serve logs each one at start-up.
func LoadWithWarnings(path string, environ []string) (Config, []Warning, error) {
	cfg := Default()
	var warns []Warning
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, nil, fmt.Errorf("config: %w", err)
		}
		w, err := decode(path, data, &cfg)
		if err != nil {
			return Config{}, nil, fmt.Errorf("config %s: %w", path, err)
		}
		warns = w
	}
	warns = append(warns, envWarnings(environ)...)
	if err := applyEnv(&cfg, environ); err != nil {
		return Config{}, warns, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		if path != "" {
			return Config{}, warns, fmt.Errorf("config %s: %w", path, err)
		}
		return Config{}, warns, fmt.Errorf("config: %w", err)
	}
	return cfg, warns, nil
}

// decode reads the file into cfg. A key that matches no setting is a
// warning (returned, with the closest known key), not an error: the file
// of another version still starts. yaml reports type errors by line; we
// add the field's path so the message names what to fix ("line 3
// (server.shutdown_timeout): cannot unmarshal").
func decode(source string, data []byte, cfg *Config) ([]Warning, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 {
		return nil, nil // an empty file means defaults
	}
	warns := yamlWarnings(source, &root)
	data = expandDurations(data, root.Content[0], cfg) // 30d, 1w
	err := yaml.NewDecoder(bytes.NewReader(data)).Decode(cfg)
	var te *yaml.TypeError
	if errors.As(err, &te) {
		paths := map[int]string{}
		nodePaths(root.Content[0], "", paths)
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			var line int
			if _, scanErr := fmt.Sscanf(m, "line %d:", &line); scanErr == nil && paths[line] != "" {
				m = strings.Replace(m, fmt.Sprintf("line %d:", line), fmt.Sprintf("line %d (%s):", line, paths[line]), 1)
			}
			msgs[i] = m
		}
		return warns, errors.New(strings.Join(msgs, "; "))
	}
	if errors.Is(err, io.EOF) {
		return warns, nil
	}
	return warns, err
}

// nodePaths records, for each line, the dotted path of the key found there.
func nodePaths(n *yaml.Node, path string, out map[int]string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if _, seen := out[k.Line]; !seen || v.Kind == yaml.ScalarNode {
				out[k.Line] = p
			}
			nodePaths(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if _, seen := out[c.Line]; !seen {
				out[c.Line] = p
			}
			nodePaths(c, p, out)
		}
	}
}
