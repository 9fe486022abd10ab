package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/xroute/xroute/config"
)

// captureSetting is an account's body capture as the admin API answers it
// (GET/PUT /admin/v1/accounts/{id}/capture).
type captureSetting struct {
	AccountID string `json:"account_id"`
	Enabled   bool   `json:"enabled"`
	Retention string `json:"retention"`
	MaxBytes  int    `json:"max_bytes"`
}

// newCaptureCmd is `xroute accounts capture ID`: show an account's body
// capture, or turn it on or off. Captures live on the server (the request
// log), so the command goes through the admin API.
func newCaptureCmd(stdout io.Writer) *cobra.Command {
	var on, off bool
	var retention config.Duration
	var maxBytes int
	c := &cobra.Command{
		Use:   "capture ACCOUNT_ID",
		Short: "show or set an account's request/response body capture (off by default)",
		Long: `Show an account's body capture, or turn it on (--on) or off (--off).
While on, the request log keeps each request's body and answer (redacted of
every key, headers never) for --retention, cut at --max-bytes.`,
		Example: "  xroute accounts capture acct_123\n  xroute accounts capture acct_123 --on --retention 7d\n  xroute accounts capture acct_123 --off",
		Args:    exactArgs("ACCOUNT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := remoteFromEnv()
			if r == nil {
				return errors.New("capture settings live on the running server: set XROUTE_URL and XROUTE_ADMIN_KEY (an admin key)")
			}
			if on && off {
				return fmt.Errorf("%w: --on and --off together", errUsage)
			}
			path := "/accounts/" + args[0] + "/capture"
			var cs captureSetting
			f := cmd.Flags()
			if on || off || f.Changed("retention") || f.Changed("max-bytes") {
				if !on && !off {
					// PUT needs enabled: keep the current state
					if _, err := r.do(cmd.Context(), http.MethodGet, path, nil, nil, &cs); err != nil {
						return err
					}
					on = cs.Enabled
				}
				body := map[string]any{"enabled": on}
				if f.Changed("retention") {
					body["retention"] = config.FormatDuration(time.Duration(retention))
				}
				if f.Changed("max-bytes") {
					body["max_bytes"] = maxBytes
				}
				if _, err := r.do(cmd.Context(), http.MethodPut, path, nil, body, &cs); err != nil {
					return err
				}
			} else if _, err := r.do(cmd.Context(), http.MethodGet, path, nil, nil, &cs); err != nil {
				return err
			}
			state := "off"
			if cs.Enabled {
				state = "on"
			}
			fmt.Fprintf(stdout, "capture %s for %s: retention %s, max %d bytes per body\n", state, cs.AccountID, cs.Retention, cs.MaxBytes)
			return nil
		},
	}
	c.Flags().BoolVar(&on, "on", false, "turn capture on")
	c.Flags().BoolVar(&off, "off", false, "turn capture off")
	c.Flags().Var(&retention, "retention", "how long captures are kept, e.g. 7d, 2w, 36h")
	c.Flags().IntVar(&maxBytes, "max-bytes", 0, "cut each body at this many bytes")
	return c
}
