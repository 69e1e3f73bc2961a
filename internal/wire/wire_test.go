package wire

import (
	"strings"
	"testing"
)

type delta struct{ n int }
type session struct{ id string }

func TestInstallOf(t *testing.T) {
	old := installed
	t.Cleanup(func() { installed = old })
	Install(Codec[delta, session]{
		AppendBatch: func(b []byte, ds []*delta) []byte { return append(b, byte(len(ds))) },
	})
	if got := Of[delta, session]().AppendBatch(nil, []*delta{{1}, {2}}); len(got) != 1 || got[0] != 2 {
		t.Fatalf("installed codec not returned: %v", got)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "no codec installed") {
			t.Fatalf("Of with other types: recovered %v, want a panic", r)
		}
	}()
	Of[session, delta]()
}
