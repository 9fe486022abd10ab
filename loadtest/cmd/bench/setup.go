package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xroute/xroute/loadtest"
)

const mockKey = "sk-mock"

// server is a target plus the processes whose resources a run measures.
type server struct {
	target   loadtest.Target
	gateway  *child // nil for the direct target
	upstream *child // the mock
}

// lab owns the temporary directory and every child process of a bench.
type lab struct {
	cfg      config
	tmp      string
	logDir   string
	children []*child
	progress func(format string, a ...any)
}

func newLab(cfg config, progress func(string, ...any)) (*lab, error) {
	tmp, err := os.MkdirTemp("", "xroute-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	l := &lab{cfg: cfg, tmp: tmp, logDir: filepath.Join(tmp, "logs"), progress: progress}
	for _, d := range []string{l.logDir, filepath.Join(tmp, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("temp dir: %w", err)
		}
	}
	return l, nil
}

// close stops every child and removes the temporary directory unless keep.
func (l *lab) close(keep bool) {
	for i := len(l.children) - 1; i >= 0; i-- {
		l.children[i].stop(5 * time.Second)
	}
	if keep {
		l.progress("bench: kept %s (logs in %s)", l.tmp, l.logDir)
		return
	}
	os.RemoveAll(l.tmp)
}

func (l *lab) start(ctx context.Context, name, bin string, args, env []string) (*child, error) {
	c, err := startChild(ctx, name, filepath.Join(l.logDir, name+".log"), bin, args, env)
	if err != nil {
		return nil, err
	}
	l.children = append(l.children, c)
	return c, nil
}

// moduleRoot finds the directory of the xroute module from the working
// directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := runOutput(ctx, "", "go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(out)
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: run from the xroute repository or pass -xroute-bin and -mock-bin")
	}
	return filepath.Dir(gomod), nil
}

// buildXroute builds ./cmd/xroute into the temp dir, or returns -xroute-bin.
func (l *lab) buildXroute(ctx context.Context) (string, error) {
	if l.cfg.xrouteBin != "" {
		return l.cfg.xrouteBin, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(l.tmp, "bin", "xroute")
	l.progress("bench: go build -o %s ./cmd/xroute", bin)
	if _, err := runOutput(ctx, root, "go", "build", "-o", bin, "./cmd/xroute"); err != nil {
		return "", fmt.Errorf("build xroute: %w", err)
	}
	return bin, nil
}

// mockCommand returns how to run the mock: -mock-bin as is, `xroute mock`,
// or, when xroute does not build, ./loadtest/cmd/mock built on the spot.
func (l *lab) mockCommand(ctx context.Context, xrouteBin string) (bin string, pre []string, err error) {
	if l.cfg.mockBin != "" {
		return l.cfg.mockBin, nil, nil
	}
	if xrouteBin != "" {
		return xrouteBin, []string{"mock"}, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "loadtest", "cmd", "mock")); err != nil {
		return "", nil, errors.New("no mock: xroute did not build and ./loadtest/cmd/mock does not exist; pass -mock-bin")
	}
	bin = filepath.Join(l.tmp, "bin", "mock")
	l.progress("bench: go build -o %s ./loadtest/cmd/mock", bin)
	if _, err := runOutput(ctx, root, "go", "build", "-o", bin, "./loadtest/cmd/mock"); err != nil {
		return "", nil, fmt.Errorf("build mock: %w", err)
	}
	return bin, nil, nil
}

// startMock runs the mock upstream and waits until /v1/models answers.
func (l *lab) startMock(ctx context.Context, bin string, pre []string) (*child, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	args := append(append([]string{}, pre...),
		"-addr", addr,
		"-latency", l.cfg.mockLatency.String(),
		"-tokens-per-sec", strconv.Itoa(l.cfg.mockTPS),
		"-api-key", mockKey,
		// The answer is min(max_tokens, -completion-tokens) long: let the
		// requests' max_tokens decide.
		"-completion-tokens", strconv.Itoa(max(l.cfg.maxTokens, l.cfg.streamMaxTokens)),
	)
	if l.cfg.mockChunkTokens > 0 {
		args = append(args, "-chunk-tokens", strconv.Itoa(l.cfg.mockChunkTokens))
	}
	args = append(args, strings.Fields(l.cfg.mockArgs)...)
	l.progress("bench: start mock: %s %s", bin, strings.Join(args, " "))
	c, err := l.start(ctx, "mock", bin, args, nil)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr + "/v1"
	if err := c.waitHTTP(ctx, base+"/models", mockKey, 200, 15*time.Second); err != nil {
		return nil, "", err
	}
	return c, base, nil
}

// startProxy re-executes this binary as the bare reverse proxy.
func (l *lab) startProxy(ctx context.Context, upstream string) (*child, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("proxy: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	c, err := l.start(ctx, "proxy", self, []string{"-proxy-only", "-listen", addr, "-upstream", upstream}, nil)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr + "/v1"
	if err := c.waitHTTP(ctx, base+"/models", mockKey, 200, 10*time.Second); err != nil {
		return nil, "", err
	}
	return c, base, nil
}

const xrouteConfig = `server:
  addr: %[1]s
log:
  level: %[2]s
database:
  path: %[3]s/xroute.db
auth:
  pepper_file: %[3]s/xroute.pepper
vault:
  master_key_file: %[3]s/xroute.master
providers:
  - name: mock
    type: openai
    base_url: %[4]s
    api_key: %[5]s
%[7]smodels:
  - name: %[6]s
    deployments:
      - provider: mock
        model: %[6]s
`

// startXroute writes a config, creates a caller key and serves xroute,
// waiting for /healthz. It returns the server and the caller key. With
// nativeResponses the mock provider lists native_formats: [responses]:
// xroute passes Responses API requests through to the mock's /responses
// instead of translating them into chat completions.
func (l *lab) startXroute(ctx context.Context, name, bin, logLevel, mockBase string, nativeResponses bool) (*child, string, string, error) {
	dir := filepath.Join(l.tmp, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", "", fmt.Errorf("%s: %w", name, err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	cfgPath := filepath.Join(dir, "xroute.yaml")
	native := ""
	if nativeResponses {
		native = "    native_formats: [\"responses\"]\n"
	}
	cfgText := fmt.Sprintf(xrouteConfig, addr, logLevel, dir, mockBase, mockKey, l.cfg.model, native)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return nil, "", "", fmt.Errorf("%s: write config: %w", name, err)
	}
	env := strings.Fields(l.cfg.xrouteEnv)
	keyCmd := []string{"keys", "create", "--config", cfgPath, "--name", "bench", "--quiet"}
	out, err := runOutputEnv(ctx, dir, env, bin, keyCmd...)
	if err != nil {
		return nil, "", "", fmt.Errorf("%s: create key: %w", name, err)
	}
	key := strings.TrimSpace(out)
	if key == "" || strings.ContainsAny(key, " \n\t") {
		return nil, "", "", fmt.Errorf("%s: keys create --quiet printed %q, want one key on one line", name, out)
	}
	l.progress("bench: start %s: %s serve --config %s", name, bin, cfgPath)
	c, err := l.start(ctx, name, bin, []string{"serve", "--config", cfgPath}, env)
	if err != nil {
		return nil, "", "", err
	}
	if err := c.waitHTTP(ctx, "http://"+addr+"/healthz", "", 200, 30*time.Second); err != nil {
		return nil, "", "", err
	}
	return c, "http://" + addr + "/v1", key, nil
}
