package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at build time:
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=$(git rev-parse HEAD) -X main.date=$(date -u +%FT%TZ)" ./cmd/xroute
//
// Left empty, they come from the build info Go records (the module's
// version, or "devel", and the VCS revision of `go build` in a checkout),
// so `go run` and `go install` print something true too.
var (
	version string
	commit  string
	date    string
)

// versionInfo is what `xroute version` prints.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func buildInfo() versionInfo {
	bi, ok := debug.ReadBuildInfo()
	return versionFrom(version, commit, date, bi, ok)
}

// versionFrom fills what -ldflags left empty from the build info.
func versionFrom(version, commit, date string, bi *debug.BuildInfo, ok bool) versionInfo {
	v := versionInfo{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if ok {
		if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if v.Commit == "" {
					v.Commit = s.Value
				}
			case "vcs.time":
				if v.Date == "" {
					v.Date = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && commit == "" && v.Commit != "" {
			v.Commit += "-dirty"
		}
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}

func versionLine(v versionInfo) string {
	s := fmt.Sprintf("xroute %s (commit %s", v.Version, v.Commit)
	if v.Date != "" {
		s += ", built " + v.Date
	}
	return s + ", " + v.GoVersion + " " + v.Platform + ")"
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "version",
		Short:   "print the version, commit and Go version",
		Example: "  xroute version\n  xroute --version\n  xroute version --json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildInfo()
			if asJSON {
				return printJSON(stdout, v)
			}
			fmt.Fprintln(stdout, versionLine(v))
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
