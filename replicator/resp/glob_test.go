package resp

import (
	"strings"
	"testing"
)

// The glob rules of KEYS and SCAN MATCH, as Redis's stringmatchlen.
func TestMatch(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"h?llo", "hello", true},
		{"h?llo", "hllo", false},
		{"h*llo", "heeeello", true},
		{"h*llo", "hello world", false},
		{"h[ae]llo", "hallo", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true},
		{"h[a-b]llo", "hcllo", false},
		{`h\*llo`, "h*llo", true},
		{`h\*llo`, "hello", false},
		{"sess:*", "sess:abc", true},
		{"sess:*", "xsess:abc", false},
		{"*:2*", "scan:h:201", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"[abc", "[abc", true}, // an unterminated class is literal
		{"**x", "yx", true},
		{"", "", true},
		{"", "a", false},
	}
	for _, c := range cases {
		if got := match(c.p, c.s); got != c.want {
			t.Errorf("match(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
	}
}

// FuzzMatch: any pattern and key terminate without a panic, a pattern
// matches itself when it has no special characters, and "*"+p+"*"
// matches whatever p matches inside a longer key.
func FuzzMatch(f *testing.F) {
	f.Add("h[a-z]*o", "hello")
	f.Add(`\`, `\`)
	f.Add("[^", "x")
	f.Fuzz(func(t *testing.T, p, s string) {
		if len(p) > 64 || len(s) > 256 {
			return
		}
		got := match(p, s)
		if !strings.ContainsAny(p, `*?[\`) && got != (p == s) {
			t.Fatalf("literal %q against %q: %v", p, s, got)
		}
		if got && !strings.HasSuffix(p, `\`) && !match("*"+p+"*", "x"+s+"y") {
			t.Fatalf("%q matches %q but *p* does not match x%sy", p, s, s)
		}
	})
}
