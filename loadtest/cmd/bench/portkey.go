package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Portkey's published gateway (npm @portkey-ai/gateway) serves with
// @hono/node-server, whose request listener returns the promise of
// responseViaResponseObject without awaiting it: on Node 20 a streamed
// answer then fails with a 500. Portkey's own repository pins
// @hono/node-server 1.13.5 and patches that one line
// (patches/@hono+node-server+1.13.5.patch, applied by patch-package);
// the npm package carries neither the pin nor the patch, so the bench
// applies both to its own install.
const (
	honoNodeServerVersion = "1.13.5"
	honoPatchFile         = "node_modules/@hono/node-server/dist/index.mjs"
	honoUnpatched         = "      return responseViaResponseObject(res, outgoing, options);"
	honoPatched           = "      return await responseViaResponseObject(res, outgoing, options);"
	portkeyScript         = "node_modules/@portkey-ai/gateway/build/start-server.js"
)

// portkeyDir is where the portkey target is installed: -portkey-dir, or
// a directory of the user's cache (never the working directory).
func portkeyDir(cfg config) (string, error) {
	if cfg.portkeyDir != "" {
		return filepath.Abs(cfg.portkeyDir)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache dir for the install (pass -portkey-dir): %w", err)
	}
	return filepath.Join(cache, "xroute-bench", "portkey-"+cfg.portkeyVersion), nil
}

// portkeyPackageJSON pins the gateway and, through npm's overrides, the
// @hono/node-server it runs on.
func portkeyPackageJSON(version string) ([]byte, error) {
	pkg := map[string]any{
		"private": true,
		"dependencies": map[string]string{
			"@portkey-ai/gateway": version,
			"@hono/node-server":   honoNodeServerVersion,
		},
		"overrides": map[string]string{"@hono/node-server": honoNodeServerVersion},
	}
	b, err := json.MarshalIndent(pkg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("portkey: package.json: %w", err)
	}
	return append(b, '\n'), nil
}

// installPortkey installs the gateway into dir unless it is there, pins
// and patches @hono/node-server, and returns the path of the gateway's
// start script.
func (l *lab) installPortkey(ctx context.Context, dir string) (string, error) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("node is not installed")
	}
	script := filepath.Join(dir, portkeyScript)
	if installedVersion(dir, "@portkey-ai/gateway") != l.cfg.portkeyVersion ||
		installedVersion(dir, "@hono/node-server") != honoNodeServerVersion {
		if _, err := exec.LookPath("npm"); err != nil {
			return "", errors.New("npm is not installed")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("install dir: %w", err)
		}
		pkg, err := portkeyPackageJSON(l.cfg.portkeyVersion)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "package.json"), pkg, 0o644); err != nil {
			return "", fmt.Errorf("install: %w", err)
		}
		// --ignore-scripts: the package's postinstall runs patch-package
		// against patches it does not ship.
		l.progress("bench: npm install @portkey-ai/gateway@%s (@hono/node-server %s) in %s", l.cfg.portkeyVersion, honoNodeServerVersion, dir)
		if _, err := runOutput(ctx, dir, "npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"); err != nil {
			return "", fmt.Errorf("npm install: %w", err)
		}
		if v := installedVersion(dir, "@hono/node-server"); v != honoNodeServerVersion {
			return "", fmt.Errorf("npm installed @hono/node-server %q, want %s", v, honoNodeServerVersion)
		}
	}
	if err := patchHono(filepath.Join(dir, honoPatchFile)); err != nil {
		return "", err
	}
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("no start script: %w", err)
	}
	return script, nil
}

// installedVersion is the version of an installed npm package under dir
// ("" when it is not there).
func installedVersion(dir, pkg string) string {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json"))
	if err != nil {
		return ""
	}
	var v struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	return v.Version
}

// patchHono applies Portkey's one-line patch to @hono/node-server's
// index.mjs (await the response), once: a patched file is left as it is.
func patchHono(path string) error {
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("patch @hono/node-server: %w", err)
	}
	if bytes.Contains(src, []byte(honoPatched)) {
		return nil
	}
	if n := bytes.Count(src, []byte(honoUnpatched)); n != 1 {
		return fmt.Errorf("patch @hono/node-server: %s has %d copies of the line to patch, want 1", path, n)
	}
	return os.WriteFile(path, bytes.Replace(src, []byte(honoUnpatched), []byte(honoPatched), 1), 0o644)
}

// startPortkey installs (once) and starts Portkey's gateway on a free
// port. It returns the server, its base URL (ending in /v1) and a note
// for the report saying what runs. An error says why the target is
// skipped.
func (l *lab) startPortkey(ctx context.Context) (*child, string, string, error) {
	dir, err := portkeyDir(l.cfg)
	if err != nil {
		return nil, "", "", err
	}
	script, err := l.installPortkey(ctx, dir)
	if err != nil {
		return nil, "", "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	_, port, _ := strings.Cut(addr, ":")
	l.progress("bench: start portkey: node %s --port=%s --headless", script, port)
	// --headless: no log console (it would keep every request in memory).
	c, err := l.start(ctx, "portkey", "node", []string{script, "--port=" + port, "--headless"}, []string{"NODE_ENV=production"}, "")
	if err != nil {
		return nil, "", "", err
	}
	if err := c.waitHTTP(ctx, "http://"+addr+"/", nil, 200, 30*time.Second); err != nil {
		return nil, "", "", err
	}
	node, _ := runOutput(ctx, "", "node", "--version")
	if home, err := os.UserHomeDir(); err == nil && strings.HasPrefix(dir, home+string(filepath.Separator)) {
		dir = "~" + strings.TrimPrefix(dir, home)
	}
	note := fmt.Sprintf("portkey: @portkey-ai/gateway %s on node %s, with @hono/node-server pinned to %s and Portkey's "+
		"one-line patch (`await responseViaResponseObject`), installed in %s; routed by `x-portkey-provider` (openai; "+
		"anthropic for Messages) and `x-portkey-custom-host` (the mock)", l.cfg.portkeyVersion, strings.TrimSpace(node),
		honoNodeServerVersion, dir)
	return c, "http://" + addr + "/v1", note, nil
}
