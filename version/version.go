// Package version holds the version and commit stamped into the binary at build
// time (-ldflags "-X github.com/cmg-gateway/cmg/version.Version=...").
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker; see the Dockerfile and packaging scripts.
var (
	Version = "dev"
	Commit  = ""
)

// CommitOrVCS returns the stamped commit, or the VCS revision recorded by the Go
// toolchain, or "unknown".
func CommitOrVCS() string {
	if Commit != "" {
		return Commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// String is the line `cmg version` prints.
func String() string {
	return fmt.Sprintf("cmg %s (commit %s, %s, %s/%s)", Version, CommitOrVCS(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
