package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/internal/app"
	"github.com/xroute/xroute/internal/auditsink"
)

// exportPage is how many rows one read (or one admin API call) takes.
const exportPage = 1000

// newAuditExportCmd is `xroute audit export --since SEQ --format jsonl`:
// the audit rows after SEQ, oldest first, one JSON object a line, as the
// audit sinks send them (to backfill a SIEM, or to check what a sink
// got). Remote through GET /admin/v1/audit/export, else on the database.
func newAuditExportCmd(stdout io.Writer) *cobra.Command {
	var since int64
	var format string
	c := &cobra.Command{
		Use:     "export",
		Short:   "print the audit rows after a sequence number as JSON lines (as the audit sinks send them)",
		Example: "  xroute audit export --since 0 > audit.jsonl\n  xroute audit export --since 1200 --format jsonl",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "jsonl" {
				return &usageError{msg: fmt.Sprintf("--format: %q is not a format; the one there is: jsonl", format)}
			}
			if since < 0 {
				return &usageError{msg: "--since: a sequence number, 0 or more (0: from the first row)"}
			}
			return runAuditExport(cmd.Context(), since, configPath(cmd), stdout)
		},
	}
	c.Flags().Int64Var(&since, "since", 0, "print the rows after this sequence number (0: all)")
	c.Flags().StringVar(&format, "format", "jsonl", "output format: jsonl")
	return c
}

func runAuditExport(ctx context.Context, since int64, cfgPath string, stdout io.Writer) error {
	if r := remoteFromEnv(); r != nil {
		for {
			raw, err := r.do(ctx, "GET", "/audit/export", url.Values{"since": {strconv.FormatInt(since, 10)}, "limit": {strconv.Itoa(exportPage)}}, nil, nil)
			if err != nil {
				return err
			}
			if len(raw) == 0 {
				return nil
			}
			if _, err := stdout.Write(raw); err != nil {
				return err
			}
			last, err := lastSeq(raw)
			if err != nil || last <= since {
				return fmt.Errorf("unexpected answer from GET /admin/v1/audit/export: %v", err)
			}
			since = last
		}
	}
	cfg, err := config.Load(cfgPath, os.Environ())
	if err != nil {
		return err
	}
	db, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	var buf []byte
	for {
		rows, err := db.ScanAudit(ctx, since, exportPage)
		if err != nil || len(rows) == 0 {
			return err
		}
		buf = auditsink.AppendJSONL(buf[:0], rows)
		if _, err := stdout.Write(buf); err != nil {
			return err
		}
		since = rows[len(rows)-1].Seq
	}
}

// lastSeq is the seq of the last JSON line of a page.
func lastSeq(page []byte) (int64, error) {
	end := len(page)
	for end > 0 && page[end-1] == '\n' {
		end--
	}
	start := end
	for start > 0 && page[start-1] != '\n' {
		start--
	}
	var l auditsink.Line
	if err := json.Unmarshal(page[start:end], &l); err != nil {
		return 0, err
	}
	return l.Seq, nil
}
