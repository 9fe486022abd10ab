package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"syscall"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
)

// listen binds addr for the setting named (--addr, server.metrics_addr),
// and says in one line what to do when it cannot.
func listen(addr, setting, fix string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		return ln, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, &app.StartupError{What: addr + " (" + setting + ") is in use", Fix: "stop the other process or " + fix, Err: err}
	case errors.Is(err, syscall.EACCES):
		return nil, &app.StartupError{What: "no permission to listen on " + addr + " (" + setting + ")", Fix: "use a port above 1023, or " + fix, Err: err}
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, &app.StartupError{What: addr + " (" + setting + ") is not an address of this host", Fix: fix, Err: err}
	}
	return nil, &app.StartupError{What: "cannot listen on " + addr + " (" + setting + "): " + err.Error(), Fix: fix, Err: err}
}

// configError says what to do about a config file that cannot be read;
// other load errors (a field that does not validate) already name it.
func configError(path string, err error) error {
	var pe *fs.PathError
	if path == "" || !errors.As(err, &pe) || pe.Path != path {
		return err
	}
	return &app.StartupError{What: "cannot read the config file " + path + " (" + pe.Err.Error() + ")",
		Fix: "check the path and its permissions (--config, XROUTE_CONFIG)", Err: err}
}

// endpoints are the URLs a running gateway serves, for the banner.
type endpoints struct {
	Base      string // http://host:port
	OpenAI    string // the OpenAI SDKs' base URL
	Anthropic string // the Anthropic SDKs' base URL
	UI        string // the dashboard
	Metrics   string // Prometheus; "" when off
}

// endpointsOf names the URLs of the gateway on ln (and its metrics on
// metricsLn when server.metrics_addr puts them there). An unspecified
// host (0.0.0.0, [::]) is shown as loopback: a URL to paste.
func endpointsOf(ln, metricsLn net.Listener, cfg config.Config) endpoints {
	base := "http://" + pasteable(ln.Addr())
	e := endpoints{Base: base, OpenAI: base + "/v1", Anthropic: base, UI: base + "/ui/"}
	switch {
	case !cfg.Server.Metrics:
	case metricsLn != nil:
		e.Metrics = "http://" + pasteable(metricsLn.Addr()) + "/metrics"
	default:
		e.Metrics = base + "/metrics"
	}
	return e
}

func pasteable(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || !ta.IP.IsUnspecified() {
		return a.String()
	}
	if ta.IP.To4() != nil {
		return fmt.Sprintf("127.0.0.1:%d", ta.Port)
	}
	return fmt.Sprintf("[::1]:%d", ta.Port)
}

// printBanner says where everything is, on every start.
func printBanner(w io.Writer, e endpoints, cfg config.Config) {
	fmt.Fprintf(w, "xroute is serving on %s\n", e.Base)
	fmt.Fprintf(w, "  OpenAI API     %s\n", e.OpenAI)
	fmt.Fprintf(w, "  Anthropic API  %s\n", e.Anthropic)
	fmt.Fprintf(w, "  dashboard      %s\n", e.UI)
	switch {
	case e.Metrics == "":
		fmt.Fprintf(w, "  metrics        off (server.metrics)\n")
	case cfg.Server.MetricsToken != "":
		fmt.Fprintf(w, "  metrics        %s (bearer token: server.metrics_token)\n", e.Metrics)
	default:
		fmt.Fprintf(w, "  metrics        %s\n", e.Metrics)
	}
	fmt.Fprintln(w)
}
