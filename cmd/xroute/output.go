package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// output is the --json/--csv pair every listing takes; the table is the
// default. One printer serves every listing, local or remote.
type output struct {
	json, csv bool
}

func addOutputFlags(c *cobra.Command) *output {
	o := &output{}
	c.Flags().BoolVar(&o.json, "json", false, "print JSON")
	c.Flags().BoolVar(&o.csv, "csv", false, "print CSV (the table's columns, with a header row)")
	return o
}

// check refuses both at once (a usage error).
func (o *output) check() error {
	if o.json && o.csv {
		return fmt.Errorf("%w: --json or --csv, not both", errUsage)
	}
	return nil
}

// listing is one listing's rows: the table's (and CSV's) columns, and the
// value its JSON is.
type listing struct {
	header     []string
	rows       [][]string
	data       any  // printed by --json
	alignRight bool // numbers-first tables (the ledger)
}

func (l *listing) add(cells ...string) { l.rows = append(l.rows, cells) }

func (o *output) print(w io.Writer, l listing) error {
	if err := o.check(); err != nil {
		return err
	}
	switch {
	case o.json:
		return printJSON(w, l.data)
	case o.csv:
		cw := csv.NewWriter(w)
		cw.Write(l.header)
		cw.WriteAll(l.rows) // flushes
		return cw.Error()
	}
	var flags uint
	end := ""
	if l.alignRight {
		flags, end = tabwriter.AlignRight, "\t"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', flags)
	fmt.Fprintln(tw, strings.Join(l.header, "\t")+end)
	for _, r := range l.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+end)
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
