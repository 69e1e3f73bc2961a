package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/hanode/hanode/internal/buildinfo"
	"github.com/urfave/cli/v2"
)

// buildInfo is what `hanode version` prints; main.version, when set at
// link time (the older -X main.version=...), overrides the version.
func buildInfo() buildinfo.Info {
	info := buildinfo.Read()
	if version != "" {
		info.Version = version
	}
	return info
}

// versionCommand prints the version, the commit, the Go version and the
// wire protocol versions; --json prints the fields of GET /status.
func versionCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, the commit, the Go version and the wire protocol versions this build speaks",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON (the field names of GET /status)"}},
		Action: func(c *cli.Context) error {
			info := buildInfo()
			if c.Bool("json") {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			commit := info.Commit
			if commit == "" {
				commit = "unknown"
			}
			if info.Modified {
				commit += " (with uncommitted changes)"
			}
			_, err := fmt.Fprintf(stdout, "hanode %s\ncommit:     %s\ngo:         %s\nwire:       %d (accepts %s)\nmembership: %d (accepts %s)\n",
				info.Version, commit, info.GoVersion,
				info.WireVersion, buildinfo.FormatVersions(info.WireVersions),
				info.MembershipVersion, buildinfo.FormatVersions(info.MembershipVersions))
			return err
		},
	}
}
