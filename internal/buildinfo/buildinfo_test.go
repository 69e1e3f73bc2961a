package buildinfo

import (
	"regexp"
	"slices"
	"testing"

	"github.com/hanode/hanode/multicast"
)

func TestResolve(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	for _, c := range []struct {
		name                                  string
		ldVersion, ldCommit, mainVersion, rev string
		modified                              bool
		wantVersion, wantCommit               string
	}{
		{"release script", "v0.1.0", rev, "(devel)", "", false, "v0.1.0", rev},
		{"release script wins over the stamp", "v0.2.0", rev, "v0.0.0-20261130-aaaaaaaaaaaa", "ffff", true, "v0.2.0", rev},
		{"go build at a tag", "", "", "v0.1.0", rev, false, "v0.1.0", rev},
		{"go build after a tag", "", "", "v0.1.1-0.20261130080000-0123456789ab", rev, false, "devel-0123456789ab", rev},
		{"go build, changes", "", "", "v0.1.0+dirty", rev, true, "devel-0123456789ab-dirty", rev},
		{"no vcs", "", "", "(devel)", "", false, "devel", ""},
	} {
		got := resolve(Info{Modified: c.modified}, c.ldVersion, c.ldCommit, c.mainVersion, c.rev)
		if got.Version != c.wantVersion || got.Commit != c.wantCommit {
			t.Errorf("%s: version %q commit %q, want %q %q", c.name, got.Version, got.Commit, c.wantVersion, c.wantCommit)
		}
	}
}

func TestRead(t *testing.T) {
	info := Read()
	if info.Version == "" || !regexp.MustCompile(`^go1\.`).MatchString(info.GoVersion) {
		t.Errorf("Read: %+v", info)
	}
	if info.WireVersion != multicast.WireVersion || !slices.Contains(info.WireVersions, info.WireVersion) {
		t.Errorf("wire version %d, accepted %v: it must accept what it sends, %d", info.WireVersion, info.WireVersions, multicast.WireVersion)
	}
	if !slices.Contains(info.MembershipVersions, info.MembershipVersion) {
		t.Errorf("membership version %d not in %v", info.MembershipVersion, info.MembershipVersions)
	}
	if len(info.MembershipVersions) == 0 {
		t.Error("no membership versions")
	}
	if FormatVersions([]int{1, 2}) != "1,2" {
		t.Error(FormatVersions([]int{1, 2}))
	}
}
