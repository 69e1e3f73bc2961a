// Package scripts holds the tests of the shell scripts in this directory.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// allTools are the commands scripts/test.sh checks, one per package.
var allTools = []string{"unshare", "nsenter", "ip", "nft", "haproxy", "nginx", "chromium", "redis-server", "redis-cli", "php", "node", "curl"}

// runCheck runs the tool check of scripts/test.sh with the given tools
// present (as stubs), `id -u` answering uid, and a stub apt-get that logs
// its arguments and "installs" every package's tool.
func runCheck(t *testing.T, uid string, present []string, args ...string) (out string, aptLog string, err error) {
	t.Helper()
	bash, lerr := exec.LookPath("bash")
	if lerr != nil {
		t.Fatalf("scripts/test.sh needs bash: %v", lerr)
	}
	dir := t.TempDir()
	stubs := filepath.Join(dir, "stubs") // id, apt-get: first in PATH
	toolDir := filepath.Join(dir, "tools")
	for _, d := range []string{stubs, toolDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, body string) {
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range present {
		write(filepath.Join(toolDir, tool), "exit 0")
	}
	write(filepath.Join(stubs, "id"), "echo "+uid)
	aptFile := filepath.Join(dir, "apt.log")
	// The stub "installs" by creating the tools of every package.
	write(filepath.Join(stubs, "apt-get"), `echo "$*" >> `+aptFile+`
[ "$1" = install ] || exit 0
for t in `+strings.Join(allTools, " ")+`; do printf '#!/bin/sh\nexit 0\n' > `+toolDir+`/$t; chmod +x `+toolDir+`/$t; done`)
	write(filepath.Join(stubs, "modprobe"), "exit 0")

	cmd := exec.Command(bash, append([]string{"test.sh"}, args...)...)
	cmd.Env = append(os.Environ(),
		"PATH="+stubs+":"+os.Getenv("PATH"),
		"HANODE_TOOL_PATH="+toolDir,
		"HANODE_CHECK_TOOLS_ONLY=1",
		"HANODE_IN_NETNS=",
	)
	b, err := cmd.CombinedOutput()
	log, _ := os.ReadFile(aptFile)
	return string(b), string(log), err
}

func without(names ...string) []string {
	var out []string
	for _, t := range allTools {
		keep := true
		for _, n := range names {
			keep = keep && t != n
		}
		if keep {
			out = append(out, t)
		}
	}
	return out
}

const wantLine = "apt-get install -y --no-install-recommends haproxy chromium redis-tools"

// TestTestShNonRootPrintsAptLine: as non-root with tools missing, the whole
// suite fails at once with the exact apt-get line, installing nothing.
func TestTestShNonRootPrintsAptLine(t *testing.T) {
	out, apt, err := runCheck(t, "1000", without("haproxy", "chromium", "redis-cli"))
	if err == nil {
		t.Fatalf("succeeded with tools missing:\n%s", out)
	}
	if !strings.Contains(out, "\n  "+wantLine+"\n") {
		t.Fatalf("output lacks the line %q:\n%s", wantLine, out)
	}
	if apt != "" {
		t.Fatalf("apt-get called as non-root: %q", apt)
	}
	// A run of some packages only warns and goes on.
	out, _, err = runCheck(t, "1000", without("haproxy", "chromium", "redis-cli"), "./httpsession/")
	if err != nil || !strings.Contains(out, "warning") || !strings.Contains(out, wantLine) {
		t.Fatalf("subset run: %v\n%s", err, out)
	}
}

// TestTestShRootInstalls: as root, the missing packages are installed with
// apt-get update and one install --no-install-recommends.
func TestTestShRootInstalls(t *testing.T) {
	out, apt, err := runCheck(t, "0", without("haproxy", "chromium", "redis-cli"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "update\ninstall -y --no-install-recommends haproxy chromium redis-tools\n"
	if apt != want {
		t.Fatalf("apt-get calls %q, want %q\n%s", apt, want, out)
	}
}

// TestTestShNothingMissing: with every tool present nothing is installed
// or printed; the list covers every package the suite and the benchmarks
// need.
func TestTestShNothingMissing(t *testing.T) {
	out, apt, err := runCheck(t, "0", allTools)
	if err != nil || apt != "" || strings.Contains(out, "apt-get") {
		t.Fatalf("err %v, apt %q, output:\n%s", err, apt, out)
	}
	_, apt, _ = runCheck(t, "0", nil)
	fields := strings.Fields(apt)
	for _, pkg := range []string{"util-linux", "iproute2", "nftables", "haproxy", "nginx-light", "chromium", "redis-server", "redis-tools", "php-cli", "php-redis", "curl"} {
		if !slices.Contains(fields, pkg) {
			t.Errorf("package %s not in the install line %q", pkg, apt)
		}
	}
}
