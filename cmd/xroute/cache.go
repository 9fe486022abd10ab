package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/spf13/cobra"
)

// newCacheCmd is `xroute cache`: the response cache of a running server.
func newCacheCmd(stdout io.Writer) *cobra.Command {
	var model, account string
	var all, asJSON bool
	purge := &cobra.Command{
		Use:   "purge",
		Short: "drop cached answers: of one model, of one account, or all",
		Long: `Drop answers from the response cache of a running server: --model, --account
(or both), or --all. The server's memory and the shared Redis layer are
purged, then every other replica's memory (announced through Redis).

The cache lives in the server: set XROUTE_URL and XROUTE_ADMIN_KEY.`,
		Example: `  xroute cache purge --model gpt-4o-mini
  xroute cache purge --account acct_123
  xroute cache purge --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all == (model != "" || account != "") {
				return fmt.Errorf("%w: name what to purge: --model, --account (or both), or --all alone", errUsage)
			}
			r := remoteFromEnv()
			if r == nil {
				return errors.New("xroute cache purges the cache of a running server: set XROUTE_URL and XROUTE_ADMIN_KEY (an admin key)")
			}
			var out struct {
				Model         string `json:"model"`
				AccountID     string `json:"account_id"`
				All           bool   `json:"all"`
				SharedDeleted int    `json:"shared_deleted"`
			}
			body := map[string]any{"model": model, "account_id": account, "all": all}
			if _, err := r.do(cmd.Context(), http.MethodPost, "/cache/purge", nil, body, &out); err != nil {
				return err
			}
			if asJSON {
				return printJSON(stdout, out)
			}
			what := "all cached answers"
			switch {
			case model != "" && account != "":
				what = "cached answers of model " + model + " for account " + account
			case model != "":
				what = "cached answers of model " + model
			case account != "":
				what = "cached answers of account " + account
			}
			_, err := fmt.Fprintf(stdout, "purged %s (%d shared entries deleted)\n", what, out.SharedDeleted)
			return err
		},
	}
	fs := purge.Flags()
	fs.StringVar(&model, "model", "", "the public model whose answers go")
	fs.StringVar(&account, "account", "", "the account whose answers go (account id)")
	fs.BoolVar(&all, "all", false, "every cached answer")
	fs.BoolVar(&asJSON, "json", false, "print the server's answer as JSON")
	return group("cache", "the response cache of a running server", "", "  xroute cache purge --all", purge)
}
