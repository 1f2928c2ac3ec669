// Package version says which build of alertbridge is running: the version
// and commit `make build` stamps into the binary with -ldflags -X, or, for
// a binary built otherwise (go install, go run, tests), what the Go
// toolchain recorded in its build info.
package version

import (
	"cmp"
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at link time by `make build`:
//
//	-ldflags "-X github.com/alertbridge/alertbridge/internal/version.version=v0.3.0
//	          -X github.com/alertbridge/alertbridge/internal/version.commit=4504aab"
var (
	version string
	commit  string
)

// Info is one build's identity.
type Info struct {
	// Version is the release (a git tag), or the module version the Go
	// toolchain recorded, or "(devel)".
	Version string `json:"version"`
	// Commit is the git commit the binary was built from, "+dirty" when
	// the tree had local changes, or "unknown".
	Commit string `json:"commit"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"goVersion"`
}

// String is the one line `alertbridge version` prints.
func (i Info) String() string {
	return fmt.Sprintf("alertbridge %s (commit %s, %s)", i.Version, i.Commit, i.GoVersion)
}

// Get is this binary's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, commit, bi)
}

// resolve prefers what the linker stamped, then the build info.
func resolve(stampedVersion, stampedCommit string, bi *debug.BuildInfo) Info {
	info := Info{Version: stampedVersion, Commit: stampedCommit, GoVersion: runtime.Version()}
	if bi == nil {
		info.Version = cmp.Or(info.Version, "(devel)")
		info.Commit = cmp.Or(info.Commit, "unknown")
		return info
	}
	info.GoVersion = cmp.Or(bi.GoVersion, info.GoVersion)
	if info.Version == "" && bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	if info.Commit == "" {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && modified == "true" {
			rev += "+dirty"
		}
		info.Commit = rev
	}
	info.Version = cmp.Or(info.Version, "(devel)")
	info.Commit = cmp.Or(info.Commit, "unknown")
	return info
}

// NewCommand is `alertbridge version [-o json]`.
func NewCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := Get()
			switch output {
			case "":
				_, err := fmt.Fprintln(cmd.OutOrStdout(), info)
				return err
			case "json":
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			default:
				return fmt.Errorf("--output %q: want json or nothing", output)
			}
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json, or nothing for one line")
	return cmd
}
