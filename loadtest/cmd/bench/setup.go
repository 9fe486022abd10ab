package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xroute/xroute/loadtest"
)

const mockKey = "sk-mock"

// mockHeader is what a mock's /v1/models wants: the key, and for the
// Anthropic mock an anthropic-version (the OpenAI mock ignores it).
func mockHeader() http.Header {
	return http.Header{
		"Authorization":     {"Bearer " + mockKey},
		"Anthropic-Version": {loadtest.AnthropicVersion},
	}
}

// server is a target plus the processes whose resources a run measures.
type server struct {
	target   loadtest.Target
	gateway  *child // nil for the direct target
	upstream *child // the mock
	// messages is the server of the Messages phases when it is not
	// this one: direct and proxy then reach the Anthropic mock (proxy
	// through a proxy of its own), xroute the same gateway in front of it.
	messages *server
}

// in returns the server of target s in phase.
func (s *server) in(phase string) *server {
	if specOf(phase).api == apiMsgs && s.messages != nil {
		return s.messages
	}
	return s
}

// lab owns the temporary directory and every child process of a bench.
type lab struct {
	cfg      config
	tmp      string
	logDir   string
	children []*child
	progress func(format string, a ...any)
	// accounts are the funded accounts of the xroute targets, by name.
	accounts map[string]benchAccount
}

// benchAccount is an xroute target's funded account and the config to
// reach its store with.
type benchAccount struct {
	bin, config, id string
	env             []string
}

// balance is the account's `xroute credits balance` line: after the
// money-on phases, proof that xroute charged them.
func (a benchAccount) balance(ctx context.Context) (string, error) {
	out, err := runOutputEnv(ctx, filepath.Dir(a.config), a.env, a.bin, "credits", "balance", "--config", a.config, "--account", a.id)
	return strings.TrimSpace(out), err
}

func newLab(cfg config, progress func(string, ...any)) (*lab, error) {
	tmp, err := os.MkdirTemp("", "xroute-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	l := &lab{cfg: cfg, tmp: tmp, logDir: filepath.Join(tmp, "logs"), progress: progress, accounts: map[string]benchAccount{}}
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

// start runs a child in dir ("": the lab's temp dir): never in the
// bench's working directory, so that a file a child writes relative to
// its cwd stays in the temp dir.
func (l *lab) start(ctx context.Context, name, bin string, args, env []string, dir string) (*child, error) {
	if dir == "" {
		dir = l.tmp
	}
	c, err := startChild(ctx, name, filepath.Join(l.logDir, name+".log"), bin, args, env, dir)
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
	bin, err = l.buildMock(ctx)
	return bin, nil, err
}

// anthropicMockCommand returns how to run the Anthropic mock: `xroute mock
// anthropic`, or, when xroute was not built, ./loadtest/cmd/mock anthropic
// (-mock-bin is an OpenAI mock).
func (l *lab) anthropicMockCommand(ctx context.Context, xrouteBin string) (bin string, pre []string, err error) {
	if xrouteBin != "" {
		return xrouteBin, []string{"mock", "anthropic"}, nil
	}
	bin, err = l.buildMock(ctx)
	return bin, []string{"anthropic"}, err
}

// buildMock builds ./loadtest/cmd/mock into the temp dir, once.
func (l *lab) buildMock(ctx context.Context) (string, error) {
	bin := filepath.Join(l.tmp, "bin", "mock")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "loadtest", "cmd", "mock")); err != nil {
		return "", errors.New("no mock: xroute did not build and ./loadtest/cmd/mock does not exist; pass -mock-bin")
	}
	l.progress("bench: go build -o %s ./loadtest/cmd/mock", bin)
	if _, err := runOutput(ctx, root, "go", "build", "-o", bin, "./loadtest/cmd/mock"); err != nil {
		return "", fmt.Errorf("build mock: %w", err)
	}
	return bin, nil
}

// startMock runs a mock upstream (name: its process and log) with the
// bench's mock knobs and waits until /v1/models answers. It returns the
// base URL, ending in /v1.
func (l *lab) startMock(ctx context.Context, name, bin string, pre []string) (*child, string, error) {
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
	l.progress("bench: start %s: %s %s", name, bin, strings.Join(args, " "))
	c, err := l.start(ctx, name, bin, args, nil, "")
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr + "/v1"
	if err := c.waitHTTP(ctx, base+"/models", mockHeader(), 200, 15*time.Second); err != nil {
		return nil, "", err
	}
	return c, base, nil
}

// startProxy re-executes this binary as the bare reverse proxy to
// upstream (name: its process and log).
func (l *lab) startProxy(ctx context.Context, name, upstream string) (*child, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("proxy: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	c, err := l.start(ctx, name, self, []string{"-proxy-only", "-listen", addr, "-upstream", upstream}, nil, "")
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr + "/v1"
	if err := c.waitHTTP(ctx, base+"/models", mockHeader(), 200, 10*time.Second); err != nil {
		return nil, "", err
	}
	return c, base, nil
}

// xrouteSetup is what sets one xroute target apart.
type xrouteSetup struct {
	name     string
	logLevel string
	mockBase string // the OpenAI mock, ending in /v1
	// nativeResponses lists native_formats: [responses] on the mock
	// provider: xroute passes Responses API requests through to the mock's
	// /responses instead of translating them into chat completions.
	nativeResponses bool
	// messagesModel, when set (the messages-stream phase runs), is a
	// second model: deployed on an anthropic provider at anthropicBase
	// (the Anthropic mock, without /v1), whose Messages requests xroute
	// passes through natively, or, with anthropicBase empty, on the OpenAI
	// mock, which xroute reaches by translating them into chat
	// completions.
	messagesModel string
	anthropicBase string
}

// pricedModel is the name under which the bench config deploys model
// with a price (the money-on phases), on the same provider. The upstream
// is asked for that same name, so that every target's upstream sees the
// same request in a phase.
func pricedModel(model string) string { return model + "-priced" }

// Prices of the priced deployments, USD per million tokens: any price
// makes xroute hold, settle and write the ledger.
const (
	benchInputPrice  = "0.15"
	benchOutputPrice = "0.60"
)

// config is the xroute.yaml of x: listening on addr, every file it writes
// under dir (an absolute path: nothing lands in the working directory),
// serving model and its priced twin (and x.messagesModel's) with key as
// the mocks' key.
func (x xrouteSetup) config(addr, dir, model, key string) string {
	var b strings.Builder
	// The load generator opens thousands of connections at once from one
	// address: the pre-auth connection cap is for strangers, not for it.
	fmt.Fprintf(&b, `server:
  addr: %[1]s
  preauth_conns_per_ip: 0
log:
  level: %[2]s
database:
  path: %[3]s/xroute.db
usage:
  spool_dir: %[3]s/xroute.db.spool
auth:
  pepper_file: %[3]s/xroute.pepper
vault:
  master_key_file: %[3]s/xroute.master
anomaly:
  webhook_secret_file: %[3]s/xroute.webhook_secret
providers:
  - name: mock
    type: openai
    base_url: %[4]s
    api_key: %[5]s
`, addr, x.logLevel, dir, x.mockBase, key)
	if x.nativeResponses {
		b.WriteString("    native_formats: [\"responses\"]\n")
	}
	messagesProvider := "mock"
	if x.messagesModel != "" && x.anthropicBase != "" {
		messagesProvider = "anthropic-mock"
		fmt.Fprintf(&b, `  - name: anthropic-mock
    type: anthropic
    base_url: %[1]s
    api_key: %[2]s
`, x.anthropicBase, key)
	}
	b.WriteString("models:\n")
	// The mocks cost nothing, and the money-off phases say so: they
	// measure routing and relaying, without credit holds. The priced twin
	// of each model is the money-on phases': a hold before the request, a
	// settle and a ledger entry after it.
	deploy := func(name, provider string, priced bool) {
		price := "        free: true\n"
		if priced {
			price = fmt.Sprintf("        input_price: %q\n        output_price: %q\n", benchInputPrice, benchOutputPrice)
		}
		fmt.Fprintf(&b, `  - name: %[1]s
    deployments:
      - provider: %[2]s
        model: %[1]s
%[3]s`, name, provider, price)
	}
	for _, priced := range []bool{false, true} {
		name, msgs := model, x.messagesModel
		if priced {
			name, msgs = pricedModel(model), pricedModel(msgs)
		}
		deploy(name, "mock", priced)
		if x.messagesModel != "" {
			deploy(msgs, messagesProvider, priced)
		}
	}
	return b.String()
}

// benchCredit is what the bench account is funded with, USD: far more
// than any run spends, so that no hold is ever refused.
const benchCredit = "1000000.00"

// startXroute writes a config, creates a caller key and serves xroute,
// waiting for /healthz. It returns the server, its base URL (ending in
// /v1) and the caller key.
func (l *lab) startXroute(ctx context.Context, bin string, x xrouteSetup) (*child, string, string, error) {
	name := x.name
	dir := filepath.Join(l.tmp, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", "", fmt.Errorf("%s: %w", name, err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	cfgPath := filepath.Join(dir, "xroute.yaml")
	if err := os.WriteFile(cfgPath, []byte(x.config(addr, dir, l.cfg.model, mockKey)), 0o600); err != nil {
		return nil, "", "", fmt.Errorf("%s: write config: %w", name, err)
	}
	env := strings.Fields(l.cfg.xrouteEnv)
	// One funded account and one key on it: the money-off phases ask for
	// free models (no hold), the money-on ones for priced models (a hold,
	// a settle and a ledger entry on every request).
	out, err := runOutputEnv(ctx, dir, env, bin, "accounts", "create", "--config", cfgPath, "bench")
	if err != nil {
		return nil, "", "", fmt.Errorf("%s: create account: %w", name, err)
	}
	acct := strings.TrimSpace(out)
	if acct == "" || strings.ContainsAny(acct, " \n\t") {
		return nil, "", "", fmt.Errorf("%s: accounts create printed %q, want one id", name, out)
	}
	if _, err := runOutputEnv(ctx, dir, env, bin, "credits", "topup", "--config", cfgPath, "--account", acct,
		"--amount", benchCredit, "--idempotency-key", "bench-funding"); err != nil {
		return nil, "", "", fmt.Errorf("%s: fund account: %w", name, err)
	}
	keyCmd := []string{"keys", "create", "--config", cfgPath, "--name", "bench", "--account", acct, "--quiet"}
	out, err = runOutputEnv(ctx, dir, env, bin, keyCmd...)
	if err != nil {
		return nil, "", "", fmt.Errorf("%s: create key: %w", name, err)
	}
	key := strings.TrimSpace(out)
	l.accounts[name] = benchAccount{bin: bin, config: cfgPath, id: acct, env: env}
	if key == "" || strings.ContainsAny(key, " \n\t") {
		return nil, "", "", fmt.Errorf("%s: keys create --quiet printed %q, want one key on one line", name, out)
	}
	l.progress("bench: start %s: %s serve --config %s", name, bin, cfgPath)
	c, err := l.start(ctx, name, bin, []string{"serve", "--config", cfgPath}, env, dir)
	if err != nil {
		return nil, "", "", err
	}
	if err := c.waitHTTP(ctx, "http://"+addr+"/healthz", nil, 200, 30*time.Second); err != nil {
		return nil, "", "", err
	}
	return c, "http://" + addr + "/v1", key, nil
}
