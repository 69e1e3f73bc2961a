package hanode

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
)

// FuzzParseConfigFile feeds arbitrary config files to the parser and the
// settings it accepts to the option parsers: no panic, every error wraps
// ErrConfig, and an accepted file re-renders (every value quoted) to a
// file that parses to the same settings.
func FuzzParseConfigFile(f *testing.F) {
	f.Add("# hanode\nnode = n1\nha = true\nkey-file = '/etc/hanode/key'\ncluster = \"prod \\u00e9\" # c\n")
	f.Add("listen = :8080\nadmin = \"127.0.0.1:9090\"\nsync-timeout = 2s\nlifetime = 24h\n")
	f.Add("\ufeffgroup = 239.255.42.99:45588\nttl = 1\nconsistency = sync\nlog-format = json\n")
	f.Add("[table]\n")
	f.Add("\"node\" = 'x'\nnode = y\n")
	f.Add("nod = 1\n")
	f.Add("node = \"unterminated\n")
	f.Add("admin-token = \"a\\\"b\" x\n")
	f.Add("ttl = 0x1_0\nnode = [\"a\", 'b']\ncluster = { a = 1 }\n")
	f.Add("cluster = \"\"\"\nx = y\n\"\"\"\nlisten = :1\n")
	f.Add("a.b = 1\n[[t]]\n")
	f.Fuzz(func(t *testing.T, text string) {
		entries, err := parseConfigFile("f.toml", strings.NewReader(text))
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error does not wrap ErrConfig: %v", err)
			}
			return
		}
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(entries)) {
			fmt.Fprintf(&b, "%s = %s\n", tomlQuote(k), tomlQuote(entries[k].raw))
		}
		again, err := parseConfigFile("g.toml", strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("re-rendered file %q: %v", b.String(), err)
		}
		for k, e := range entries {
			if again[k].raw != e.raw {
				t.Fatalf("%s: %q after round trip, want %q", k, again[k].raw, e.raw)
			}
		}
		flags := flagSource{}
		for k, e := range entries {
			flags[k] = e.raw
		}
		cfg, err := loadConfig(flags, func(string) string { return "" }, "")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("loadConfig error does not wrap ErrConfig: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil && !errors.Is(err, ErrConfig) {
			t.Fatalf("Validate error does not wrap ErrConfig: %v", err)
		}
		cfg.WriteEffective(io.Discard)
		_ = cfg.AdminIsLoopback()
		_ = cfg.NodeName()
	})
}

// FuzzParseAdminToken: any token-file content is accepted as a token
// without white space or control characters, or refused with an error
// that never shows the content.
func FuzzParseAdminToken(f *testing.F) {
	f.Add([]byte("s3cret\n"))
	f.Add([]byte("two words\n"))
	f.Add([]byte("\x00\x01abc"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := parseAdminToken(b)
		if err != nil {
			if s := strings.TrimSpace(string(b)); len(s) >= 4 && strings.Contains(err.Error(), s) {
				t.Fatalf("error shows the content: %v", err)
			}
			return
		}
		if tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			t.Fatalf("accepted %q", tok)
		}
	})
}
