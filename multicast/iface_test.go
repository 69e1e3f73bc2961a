package multicast

import (
	"errors"
	"net/netip"
	"testing"
)

func TestLookupInterface(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	for _, s := range []string{"lo", " 127.0.0.1 "} {
		ifi, pfx, err := LookupInterface(s)
		if err != nil {
			t.Fatalf("LookupInterface(%q): %v (every Linux host and namespace has lo)", s, err)
		}
		if ifi.Name != "lo" || pfx.Addr() != lo || pfx.Bits() != 8 {
			t.Errorf("LookupInterface(%q) = %s %s", s, ifi.Name, pfx)
		}
	}
	for _, s := range []string{"", "nosuch0", "192.0.2.77"} {
		if _, _, err := LookupInterface(s); err == nil {
			t.Errorf("LookupInterface(%q) found one", s)
		}
		if _, _, err := ResolveInterface(s, false); !errors.Is(err, ErrNoInterface) {
			t.Errorf("ResolveInterface(%q): %v", s, err)
		}
	}
	for _, s := range []string{"::1", "0.0.0.0"} {
		if _, _, err := ResolveInterface(s, false); !errors.Is(err, ErrNoInterface) {
			t.Errorf("ResolveInterface(%q): %v", s, err)
		}
	}
	if _, a, err := ResolveInterface("lo", false); err != nil || a != lo {
		t.Errorf("ResolveInterface(lo) = %s, %v (lo down?)", a, err)
	}
}
