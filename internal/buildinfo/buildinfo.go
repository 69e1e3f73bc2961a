// Package buildinfo says what a hanode binary is: its release version,
// the commit it was built from, the Go version and the wire protocol
// versions it speaks. `hanode version`, GET /status and the
// hanode_build_info metric all read it.
//
// The release script (scripts/release.sh) sets the version and commit at
// link time:
//
//	go build -ldflags "-X github.com/hanode/hanode/internal/buildinfo.version=v0.1.0
//	  -X github.com/hanode/hanode/internal/buildinfo.commit=<40 hex>" ./cmd/hanode
//
// A plain `go build` in a clone needs no flags: the version is then
// "devel-" and the first 12 digits of the commit Go stamped into the binary
// (vcs.revision), with "-dirty" when the tree had uncommitted changes, and
// the commit is the whole revision.
package buildinfo

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/hanode/hanode/membership"
	"github.com/hanode/hanode/multicast"
)

// Set with -ldflags -X by the release script; empty otherwise.
var (
	version string
	commit  string
)

// Info describes one build. Its JSON field names are those of GET /status
// and `hanode version --json`.
type Info struct {
	// Version is the release ("v0.1.0") or "devel-<commit>[-dirty]".
	Version string `json:"version"`
	// Commit is the full commit hash, or "" when unknown (a build outside
	// a git checkout without the release script's flags).
	Commit string `json:"commit"`
	// Modified reports a build from a tree with uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go release that compiled the binary.
	GoVersion string `json:"go_version"`
	// WireVersion is the version of the multicast packet header (the
	// wire protocol) this build sends.
	WireVersion int `json:"wire_version"`
	// WireVersions are the header versions this build accepts, ascending.
	WireVersions []int `json:"wire_versions"`
	// MembershipVersion is the version of the membership messages
	// (heartbeats, probes) this build sends.
	MembershipVersion int `json:"membership_version"`
	// MembershipVersions are the membership versions it accepts, ascending.
	MembershipVersions []int `json:"membership_versions"`
}

// WireVersions returns the multicast header versions this build accepts,
// ascending; it sends multicast.WireVersion. A wire change is made in
// steps (README, "Compatibility and upgrades"): a release accepts the new
// version while it still sends the old one, the next sends the new one,
// a later one stops accepting the old one.
func WireVersions() []int {
	return []int{multicast.WireVersion}
}

// MembershipVersions returns the membership message versions this build
// accepts, ascending.
func MembershipVersions() []int {
	var vs []int
	for v := membership.MinProtocolVersion; v <= membership.ProtocolVersion; v++ {
		vs = append(vs, int(v))
	}
	return vs
}

// FormatVersions writes versions as "1" or "1,2".
func FormatVersions(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

var releaseRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)

// Read returns the information of the running binary.
func Read() Info {
	info := Info{
		GoVersion:          runtime.Version(),
		WireVersion:        multicast.WireVersion,
		WireVersions:       WireVersions(),
		MembershipVersion:  membership.ProtocolVersion,
		MembershipVersions: MembershipVersions(),
	}
	var mainVersion, revision string
	if bi, ok := debug.ReadBuildInfo(); ok {
		mainVersion = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	return resolve(info, version, commit, mainVersion, revision)
}

// resolve picks the version and commit: the link-time values first, then
// a release tag Go derived from the checkout, then "devel-<commit>".
func resolve(info Info, ldVersion, ldCommit, mainVersion, revision string) Info {
	info.Commit = revision
	if ldCommit != "" {
		info.Commit = ldCommit
		info.Modified = false
	}
	switch {
	case ldVersion != "":
		info.Version = ldVersion
	case releaseRE.MatchString(mainVersion) && !info.Modified:
		info.Version = mainVersion
	case info.Commit != "":
		short := info.Commit
		if len(short) > 12 {
			short = short[:12]
		}
		info.Version = "devel-" + short
		if info.Modified {
			info.Version += "-dirty"
		}
	default:
		info.Version = "devel"
	}
	return info
}
