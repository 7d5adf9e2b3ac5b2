package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/whnet/wh/key"
)

// authMessages are the invitation messages with their exact bodies.
var authMessages = []msgCase{
	{"auth", Auth{TxID: 7, Inner: []byte(strings.Repeat("\xab", Overhead+1))},
		"08 0000000000000007 42 " + strings.Repeat("ab", Overhead+1)},
	{"claim", Claim{TxID: 8, Alias: fill(0x11), Claimant: fill(0x22)},
		"0b 0000000000000008 " + strings.Repeat("11", 32) + " " + strings.Repeat("22", 32)},
	{"authed", Authed{TxID: 9, Alias: fill(0x11)},
		"09 0000000000000009 " + strings.Repeat("11", 32) + " 00 00"},
	{"authed_refused", Authed{TxID: 10, Alias: fill(0x11), Status: AuthRefused, Reason: "alias x is already claimed"},
		"09 000000000000000a " + strings.Repeat("11", 32) + " 01 1a 616c696173207820697320616c726561647920636c61696d6564"},
}

func TestAuthParseErrors(t *testing.T) {
	authed := func(tail string) string { return "09 0000000000000001 " + strings.Repeat("11", 32) + " " + tail }
	tests := []struct {
		name string
		body string
	}{
		{"auth_short", "08 0000000000000001"},
		{"auth_inner_too_short", "08 0000000000000001 3d " + strings.Repeat("ab", Overhead)},
		{"auth_inner_truncated", "08 0000000000000001 3f " + strings.Repeat("ab", Overhead+1)},
		{"claim_short", "0b 0000000000000001 " + strings.Repeat("11", 63)},
		{"authed_short", authed("00")},
		{"authed_status_2", authed("02 00")},
		{"authed_reason_truncated", authed("01 02 61")},
		{"authed_reason_101", authed("01 65 " + strings.Repeat("61", 101))},
		{"authed_reason_not_utf8", authed("01 01 ff")},
		{"authed_reason_newline", authed("01 01 0a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage(unhex(t, tt.body))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseMessage = %v, %v; want ErrMalformed", m, err)
			}
		})
	}
	if _, err := (Authed{Status: 2}).AppendBinary(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("status 2 encoded: %v", err)
	}
	if _, err := (Auth{Inner: make([]byte, 256)}).AppendBinary(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("256-byte inner encoded: %v", err)
	}
}

func TestReason(t *testing.T) {
	long := strings.Repeat("é", 60) // 120 bytes
	for in, want := range map[string]string{
		"alias x is already claimed": "alias x is already claimed",
		"line\nbreak\x00":            "line?break?",
		long:                         strings.Repeat("é", 50),
		"\xff":                       "?",
	} {
		got := Reason(in)
		if got != want {
			t.Errorf("Reason(%q) = %q, want %q", in, got, want)
		}
		if err := checkAuthed(AuthRefused, got); err != nil {
			t.Errorf("Reason(%q) does not fit an Authed: %v", in, err)
		}
	}
}

// claimFixture is a claimant, an alias and a member, all with codecs.
type claimFixture struct {
	claimant, alias, member *Codec
}

func newClaimFixture(t *testing.T) claimFixture {
	clock := newFakeClock()
	return claimFixture{
		claimant: NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now)),
		alias:    NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now)),
		member:   NewCodec(newPrivate(t), testNamespace, 0, WithClock(clock.Now)),
	}
}

// send seals m with from's codec to the member and opens it there.
func (f claimFixture) send(t *testing.T, from *Codec, m Message) (key.Public, Message) {
	t.Helper()
	k, got, err := f.member.Open(seal(t, from, f.member.Public(), m))
	if err != nil {
		t.Fatal(err)
	}
	return k, got
}

// TestClaim runs a claim end to end: the member learns the claimant's
// key, and the claimant opens the answer.
func TestClaim(t *testing.T) {
	f := newClaimFixture(t)
	a, err := f.claimant.Claim(f.member.Public(), f.alias.Public(), 42)
	if err != nil {
		t.Fatal(err)
	}
	pkt := seal(t, f.alias, f.member.Public(), a)
	if len(pkt) != 213 {
		t.Errorf("auth packet is %d bytes, the package comment says 213", len(pkt))
	}
	from, m, err := f.member.Open(pkt)
	if err != nil {
		t.Fatal(err)
	}
	if from != f.alias.Public() {
		t.Fatalf("auth from %v, want the alias", from)
	}
	got, err := f.member.OpenClaim(from, m.(Auth))
	if err != nil {
		t.Fatal(err)
	}
	if got != f.claimant.Public() {
		t.Fatalf("claimant %v, want %v", got, f.claimant.Public())
	}
	ans := seal(t, f.member, got, Authed{TxID: 42, Alias: from, Status: AuthRefused, Reason: strings.Repeat("x", MaxReason)})
	if len(ans) > len(pkt) {
		t.Errorf("largest authed is %d bytes, more than the %d-byte auth", len(ans), len(pkt))
	}
	if k, m, err := f.claimant.Open(ans); err != nil || k != f.member.Public() || m.(Authed).TxID != 42 {
		t.Errorf("claimant opened %v, %v, %v", k, m, err)
	}
}

func TestOpenClaimRefuses(t *testing.T) {
	f := newClaimFixture(t)
	member := f.member.Public()
	other := NewCodec(newPrivate(t), testNamespace, 0, WithClock(f.alias.now))
	inner := func(c *Codec, m Message) []byte { return seal(t, c, member, m) }
	claim := Claim{TxID: 1, Alias: f.alias.Public(), Claimant: f.claimant.Public()}
	tests := []struct {
		name string
		auth Auth
		want error
	}{
		{"other_txid", Auth{TxID: 2, Inner: inner(f.claimant, claim)}, ErrClaim},
		{"other_alias", Auth{TxID: 1, Inner: inner(f.claimant, Claim{TxID: 1, Alias: other.Public(), Claimant: f.claimant.Public()})}, ErrClaim},
		{"names_another_key", Auth{TxID: 1, Inner: inner(other, claim)}, ErrClaim},
		{"not_a_claim", Auth{TxID: 1, Inner: inner(f.claimant, Ping{TxID: 1})}, ErrClaim},
		{"alias_claims_itself", Auth{TxID: 1, Inner: inner(f.alias, Claim{TxID: 1, Alias: f.alias.Public(), Claimant: f.alias.Public()})}, ErrClaim},
		{"sealed_for_another", Auth{TxID: 1, Inner: seal(t, f.claimant, other.Public(), claim)}, ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := f.member.OpenClaim(f.alias.Public(), tt.auth)
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenClaim = %v, %v; want %v", k, err, tt.want)
			}
		})
	}
	// A valid inner envelope opens once: a replayed Auth is refused.
	a := Auth{TxID: 1, Inner: inner(f.claimant, claim)}
	if _, err := f.member.OpenClaim(f.alias.Public(), a); err != nil {
		t.Fatal(err)
	}
	if _, err := f.member.OpenClaim(f.alias.Public(), a); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed claim: %v, want ErrReplay", err)
	}
}

// FuzzOpenClaim checks that OpenClaim never panics and accepts nothing
// but the inner envelope the claimant sealed, naming it.
func FuzzOpenClaim(f *testing.F) {
	clock := newFakeClock()
	claimant := NewCodec(alicePriv, testNamespace, 0, WithClock(clock.Now))
	alias := fixedPrivate(0xcc).Public()
	member := bobPriv.Public()
	valid, err := claimant.Claim(member, alias, 5)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint64(5), valid.Inner)
	f.Add(uint64(6), valid.Inner)
	f.Add(uint64(5), seal(f, claimant, member, Ping{TxID: 5}))
	f.Add(uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, txid uint64, inner []byte) {
		recv := NewCodec(bobPriv, testNamespace, 0, WithClock(clock.Now))
		k, err := recv.OpenClaim(alias, Auth{TxID: txid, Inner: inner})
		if err != nil {
			return
		}
		if txid != 5 || string(inner) != string(valid.Inner) || k != claimant.Public() {
			t.Fatalf("accepted txid %d, inner %x, claimant %v", txid, inner, k)
		}
	})
}
