package config

import (
	"bytes"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics on any input, and that whatever
// it accepts survives Format: the text re-parses to an equal Network and
// formats to the same bytes.
//
// Threat model: a config file is written by people and passed around, so it
// may hold anything; Parse must reject garbage with an *Error, not crash or
// accept something Format cannot write back.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases(f) {
		f.Add([]byte(tc.src))
	}
	for _, tc := range errorCases(f) {
		f.Add([]byte(tc.src))
	}
	for _, path := range []string{"../examples/net.conf", "testdata/bad.conf"} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, src []byte) {
		n, err := Parse("fuzz.conf", src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			return
		}
		text := n.Format()
		again, err := Parse("formatted.conf", text)
		if err != nil {
			t.Fatalf("Parse(Format(n)): %v\ninput:\n%q\nformatted:\n%s", err, src, text)
		}
		if !sameNetwork(n, again) {
			t.Fatalf("Parse(Format(n)) != n (-n +reparsed):\n%s\ninput:\n%q", cmp.Diff(n, again, cmpNet, ignoreLine), src)
		}
		if text2 := again.Format(); !bytes.Equal(text, text2) {
			t.Fatalf("Format not stable:\n%s\nthen\n%s", text, text2)
		}
	})
}
