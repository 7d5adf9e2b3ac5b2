package node

import "testing"

// TestPinned checks that a node keeps its boot nodes and trusted peers
// pinned in its codec, so that a flood of new keys cannot keep them from
// being heard, and that a reload replaces the trusted ones.
func TestPinned(t *testing.T) {
	tn := newTestNet(t, "boot", "a", "b", "c")
	nd := tn.start("a", tn.config("a", "b", "c"))
	for _, name := range []string{"boot", "b", "c"} {
		if !nd.codec.Pinned(tn.keys[name].Public()) {
			t.Errorf("%s not pinned", name)
		}
	}
	if err := nd.Reload(tn.config("a", "c")); err != nil {
		t.Fatal(err)
	}
	if nd.codec.Pinned(tn.keys["b"].Public()) {
		t.Error("b still pinned after it left the config")
	}
	if !nd.codec.Pinned(tn.keys["c"].Public()) || !nd.codec.Pinned(tn.keys["boot"].Public()) {
		t.Error("c or boot unpinned by a reload that kept them")
	}
}
