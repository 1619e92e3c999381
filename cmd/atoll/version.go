package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/common/version"
)

// Set at build time: -ldflags "-X main.buildVersion=... -X main.buildRevision=...".
var (
	buildVersion  = "0.1.0-dev"
	buildRevision = ""
	buildBranch   = ""
	buildUser     = ""
	buildDate     = ""
)

func init() {
	if buildRevision == "" {
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" {
					buildRevision = s.Value
				}
			}
		}
	}
	// The version collector and the API's buildinfo endpoint read these.
	version.Version, version.Revision, version.Branch = buildVersion, buildRevision, buildBranch
	version.BuildUser, version.BuildDate = buildUser, buildDate
}

func versionString() string {
	return fmt.Sprintf("atoll, version %s (revision: %s)\n  go version: %s\n  platform: %s/%s",
		buildVersion, buildRevision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
