package membership

import (
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, s := range []string{"a", "node-1", "n_2", "ABC", strings.Repeat("x", MaxNameLen)} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a.b", "a b", "a;b", "a,b", "a=b", "a/b", "é", strings.Repeat("x", MaxNameLen+1)} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
		if checkName(s) == nil {
			t.Errorf("checkName(%q) accepted it", s)
		}
	}
}
