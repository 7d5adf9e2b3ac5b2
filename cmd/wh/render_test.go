package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/whnet/wh/node"
)

// TestRenderUserspace: show says a node is userspace, and where its SOCKS5
// server listens.
func TestRenderUserspace(t *testing.T) {
	st := node.Status{Interface: "wh-x", Network: "home", Addresses: []string{"10.0.0.2/24"},
		DNS: "none", Userspace: true, SOCKS5: "127.0.0.1:1080"}
	var b bytes.Buffer
	renderStatus(&b, st, false, time.Now())
	out := b.String()
	for _, want := range []string{"interface wh-x network home <USERSPACE>", ", socks5: 127.0.0.1:1080"} {
		if !strings.Contains(out, want) {
			t.Errorf("show does not say %q:\n%s", want, out)
		}
	}
	st.Userspace, st.SOCKS5 = false, ""
	b.Reset()
	renderStatus(&b, st, false, time.Now())
	if strings.Contains(b.String(), "USERSPACE") || strings.Contains(b.String(), "socks5") {
		t.Errorf("a TUN node shown as userspace:\n%s", b.String())
	}
}
