package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newVersionCmd) }

// Set at link time by `make build`, `make dist` and the Dockerfile:
//
//	-ldflags "-X main.version=v1.2.3 -X main.commit=<full hash>"
//
// Empty (a plain `go build` or `go run`), they fall back to what the Go
// toolchain stamped into the binary; see buildInfo.
var (
	version string
	commit  string
)

// buildInfo is what `tdsproxy version` and `--version` print.
type buildInfo struct {
	Version string // the release, e.g. v1.2.3, or the module's pseudo-version
	Commit  string // the VCS revision, "-dirty" when built from a modified tree
	Go      string // the toolchain, e.g. go1.26.0
	OS      string // GOOS/GOARCH of this binary
}

// currentBuild resolves the link-time values, falling back to the build
// information the toolchain embeds: a module version for `go install
// ...@v1.2.3`, the VCS revision for a build in a checkout (never the bare
// "(devel)" Go writes when it knows no version).
func currentBuild() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return resolveBuild(version, commit, bi)
}

func resolveBuild(ldVersion, ldCommit string, bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: ldVersion, Commit: ldCommit, Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	var rev, modified string
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
	}
	if b.Commit == "" && rev != "" {
		b.Commit = rev
		if modified == "true" {
			b.Commit += "-dirty"
		}
	}
	if b.Version == "" {
		// No release and no module version: name the revision instead.
		b.Version = "dev"
		if rev != "" {
			b.Version += "+" + short(rev)
		}
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// String is the text of `tdsproxy version`: three lines, one fact each.
func (b buildInfo) String() string {
	return fmt.Sprintf("tdsproxy %s\ncommit   %s\ngo       %s %s\n", b.Version, b.Commit, b.Go, b.OS)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), currentBuild())
			return err
		},
	}
}
