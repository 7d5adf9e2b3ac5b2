package portmap

import (
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// unhex decodes hex with spaces, for readable byte layouts.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type binaryAppender interface {
	AppendBinary([]byte) ([]byte, error)
}

// checkEncoding appends msg onto a non-empty prefix and compares with want.
func checkEncoding(t *testing.T, msg binaryAppender, want string) {
	t.Helper()
	got, err := msg.AppendBinary([]byte("foo"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got[:3]) != "foo" {
		t.Fatalf("prefix clobbered: % x", got)
	}
	if w := unhex(t, want); string(got[3:]) != string(w) {
		t.Fatalf("encoding:\n got % x\nwant % x", got[3:], w)
	}
}

var (
	testExternal = netip.MustParseAddr("203.0.113.7")
	testNonce    = [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
)

func TestPMPEncoding(t *testing.T) {
	tests := []struct {
		name string
		msg  binaryAppender
		want string
	}{
		{"external_address_request", pmpRequest{Op: pmpOpExternalAddr}, "00 00"},
		{"map_udp_request", pmpRequest{Op: pmpOpMapUDP, InternalPort: 51820, ExternalPort: 51820, Lifetime: 600},
			"00 01 0000 ca6c ca6c 00000258"},
		{"delete_request", pmpRequest{Op: pmpOpMapUDP, InternalPort: 51820},
			"00 01 0000 ca6c 0000 00000000"},
		{"external_address_response", pmpResponse{Op: pmpOpExternalAddr, Epoch: 1000, ExternalAddr: testExternal},
			"00 80 0000 000003e8 cb007107"},
		{"map_response", pmpResponse{Op: pmpOpMapUDP, Epoch: 1000, InternalPort: 51820, ExternalPort: 40000, Lifetime: 600},
			"00 81 0000 000003e8 ca6c 9c40 00000258"},
		{"error_response_zeroes_fields", pmpResponse{Op: pmpOpMapUDP, Result: pmpNotAuthorized, Epoch: 7, InternalPort: 1, ExternalPort: 2, Lifetime: 3},
			"00 81 0002 00000007 0000 0000 00000000"},
		{"error_external_address_response", pmpResponse{Op: pmpOpExternalAddr, Result: pmpNetworkFailure, Epoch: 7},
			"00 80 0003 00000007 00000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkEncoding(t, tc.msg, tc.want) })
	}
}

func TestPMPEncodingErrors(t *testing.T) {
	if _, err := (pmpRequest{Op: 9}).AppendBinary(nil); !errors.Is(err, errUnknownOpcode) {
		t.Errorf("request op 9: %v", err)
	}
	if _, err := (pmpResponse{Op: pmpOpExternalAddr, ExternalAddr: netip.MustParseAddr("2001:db8::1")}).AppendBinary(nil); !errors.Is(err, errNotIPv4) {
		t.Errorf("IPv6 external address: %v", err)
	}
}

func TestParsePMPResponse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    pmpResponse
		wantErr error
	}{
		{"external_address", "00 80 0000 000003e8 cb007107",
			pmpResponse{Op: pmpOpExternalAddr, Epoch: 1000, ExternalAddr: testExternal}, nil},
		{"map", "00 81 0000 000003e8 ca6c 9c40 00000258",
			pmpResponse{Op: pmpOpMapUDP, Epoch: 1000, InternalPort: 51820, ExternalPort: 40000, Lifetime: 600}, nil},
		{"trailing_bytes_ignored", "00 81 0000 000003e8 ca6c 9c40 00000258 ffff",
			pmpResponse{Op: pmpOpMapUDP, Epoch: 1000, InternalPort: 51820, ExternalPort: 40000, Lifetime: 600}, nil},
		{"error_fields_ignored", "00 81 0004 00000001 ffff ffff ffffffff",
			pmpResponse{Op: pmpOpMapUDP, Result: pmpOutOfResources, Epoch: 1}, nil},
		{"short_unsupported_version", "00 81 0001 00000000",
			pmpResponse{Op: pmpOpMapUDP, Result: pmpUnsupportedVersion}, nil},
		{"empty", "", pmpResponse{}, errShort},
		{"truncated_success", "00 81 0000 000003e8 ca6c", pmpResponse{}, errShort},
		{"truncated_address", "00 80 0000 000003e8 cb00", pmpResponse{}, errShort},
		{"pcp_version", "02 81 0000 000003e8 ca6c 9c40 00000258", pmpResponse{}, errVersion},
		{"request_echoed", "00 01 0000 ca6c ca6c 00000258", pmpResponse{}, errNotResponse},
		{"unknown_opcode", "00 83 0000 000003e8 ca6c 9c40 00000258", pmpResponse{}, errUnknownOpcode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePMPResponse(unhex(t, tc.in))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParsePMPRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    pmpRequest
		wantErr error
	}{
		{"external_address", "00 00", pmpRequest{}, nil},
		{"map_tcp", "00 02 ffff 0016 0017 00001c20", pmpRequest{Op: pmpOpMapTCP, InternalPort: 22, ExternalPort: 23, Lifetime: 7200}, nil},
		{"short_map", "00 01 0000 ca6c", pmpRequest{}, errShort},
		{"response", "00 80", pmpRequest{}, errNotRequest},
		{"pcp", "02 01", pmpRequest{}, errVersion},
		{"unknown_opcode", "00 07", pmpRequest{}, errUnknownOpcode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePMPRequest(unhex(t, tc.in))
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// roundTrip checks the property every parser here must have: whatever it
// accepts re-encodes, and the encoding parses back to the same value and
// re-encodes to the same bytes.
func roundTrip[T interface {
	comparable
	binaryAppender
}](t *testing.T, parse func([]byte) (T, error), b []byte) {
	v, err := parse(b)
	if err != nil {
		return
	}
	enc, err := v.AppendBinary(nil)
	if err != nil {
		t.Fatalf("parsed %+v from % x, but cannot encode it: %v", v, b, err)
	}
	v2, err := parse(enc)
	if err != nil {
		t.Fatalf("encoding % x of %+v does not parse: %v", enc, v, err)
	}
	if v2 != v {
		t.Fatalf("round trip changed the value:\n%+v\n%+v", v, v2)
	}
	if enc2, _ := v2.AppendBinary(nil); string(enc2) != string(enc) {
		t.Fatalf("encoding not stable: % x then % x", enc, enc2)
	}
}

// FuzzNATPMPResponse feeds the NAT-PMP response parser untrusted bytes
// (anything on the LAN can send us a datagram from the gateway's address).
func FuzzNATPMPResponse(f *testing.F) {
	for _, r := range []pmpResponse{
		{Op: pmpOpExternalAddr, Epoch: 1000, ExternalAddr: testExternal},
		{Op: pmpOpMapUDP, Epoch: 1000, InternalPort: 51820, ExternalPort: 40000, Lifetime: 600},
		{Op: pmpOpMapTCP, Result: pmpOutOfResources},
	} {
		b, _ := r.AppendBinary(nil)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Add([]byte{0, 0x81, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, parsePMPResponse, b) })
}

// FuzzNATPMPRequest covers the request parser the fake gateway uses.
func FuzzNATPMPRequest(f *testing.F) {
	for _, r := range []pmpRequest{{}, {Op: pmpOpMapUDP, InternalPort: 51820, ExternalPort: 51820, Lifetime: 600}} {
		b, _ := r.AppendBinary(nil)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, parsePMPRequest, b) })
}

const (
	// MAP request from 192.168.1.2 for UDP 51820, lifetime 600, any external address.
	pcpMapRequestHex = "02 01 0000 00000258 00000000000000000000ffffc0a80102" +
		" 0102030405060708090a0b0c 11 000000 ca6c ca6c 00000000000000000000ffff00000000"
	// Its answer: 203.0.113.7:40000 for 600 s, epoch 1000.
	pcpMapResponseHex = "02 81 00 00 00000258 000003e8 000000000000000000000000" +
		" 0102030405060708090a0b0c 11 000000 ca6c 9c40 00000000000000000000ffffcb007107"
)

var (
	testPCPRequest = pcpRequest{
		Opcode: pcpOpMap, Lifetime: 600, ClientAddr: netip.MustParseAddr("192.168.1.2"),
		Map: pcpMap{Nonce: testNonce, Protocol: pcpProtocolUDP, InternalPort: 51820, ExternalPort: 51820, ExternalAddr: netip.IPv4Unspecified()},
	}
	testPCPResponse = pcpResponse{
		Opcode: pcpOpMap, Lifetime: 600, Epoch: 1000,
		Map: pcpMap{Nonce: testNonce, Protocol: pcpProtocolUDP, InternalPort: 51820, ExternalPort: 40000, ExternalAddr: testExternal},
	}
)

func TestPCPEncoding(t *testing.T) {
	tests := []struct {
		name string
		msg  binaryAppender
		want string
	}{
		{"map_request", testPCPRequest, pcpMapRequestHex},
		{"map_response", testPCPResponse, pcpMapResponseHex},
		{"announce_request", pcpRequest{Opcode: pcpOpAnnounce, ClientAddr: netip.MustParseAddr("2001:db8::2")},
			"02 00 0000 00000000 20010db8000000000000000000000002"},
		{"error_response", pcpResponse{Opcode: pcpOpAnnounce, Result: pcpNotAuthorized, Lifetime: 30, Epoch: 5},
			"02 80 00 02 0000001e 00000005 000000000000000000000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkEncoding(t, tc.msg, tc.want) })
	}
}

func TestParsePCP(t *testing.T) {
	t.Run("map_request", func(t *testing.T) {
		got, err := parsePCPRequest(unhex(t, pcpMapRequestHex))
		if err != nil || got != testPCPRequest {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	tests := []struct {
		name    string
		in      string
		want    pcpResponse
		wantErr error
	}{
		{"map", pcpMapResponseHex, testPCPResponse, nil},
		{"options_ignored", pcpMapResponseHex + " 01 00 0004 00000000", testPCPResponse, nil},
		{"natpmp_unsupported_version", "00 81 0001 00000000", pcpResponse{}, errVersion},
		{"short_header", "02 81 00 00 00000258", pcpResponse{}, errShort},
		{"short_map", "02 81 00 00 00000258 000003e8 000000000000000000000000 0102030405060708090a0b0c 11", pcpResponse{}, errShort},
		{"request", pcpMapRequestHex, pcpResponse{}, errNotResponse},
		{"peer_opcode", "02 82 00 00 00000258 000003e8 000000000000000000000000", pcpResponse{}, errUnknownOpcode},
		{"empty", "", pcpResponse{}, errShort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePCPResponse(unhex(t, tc.in))
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("got %+v, %v\nwant %+v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// FuzzPCPResponse feeds the PCP response parser untrusted bytes.
func FuzzPCPResponse(f *testing.F) {
	b, _ := testPCPResponse.AppendBinary(nil)
	f.Add(b)
	b, _ = pcpResponse{Opcode: pcpOpAnnounce, Result: pcpNoResources}.AppendBinary(nil)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, parsePCPResponse, b) })
}

// FuzzPCPRequest covers the request parser the fake gateway uses.
func FuzzPCPRequest(f *testing.F) {
	b, _ := testPCPRequest.AppendBinary(nil)
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) { roundTrip(t, parsePCPRequest, b) })
}

func TestParseSSDPResponse(t *testing.T) {
	from := netip.MustParseAddr("192.168.1.1")
	const ok = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
		"USN: uuid:x::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\nSERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.1\r\n" +
		"LOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n"
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"miniupnpd", ok, "http://192.168.1.1:5000/rootDesc.xml", false},
		{"other_host", strings.Replace(ok, "192.168.1.1:5000", "192.168.1.9:5000", 1), "", true},
		{"hostname", strings.Replace(ok, "192.168.1.1:5000", "router.lan:5000", 1), "", true},
		{"https", strings.Replace(ok, "http://", "https://", 1), "", true},
		{"not_ok", strings.Replace(ok, "200 OK", "404 Not Found", 1), "", true},
		{"no_location", "HTTP/1.1 200 OK\r\nST: x\r\n\r\n", "", true},
		{"search_request", ssdpSearchRequest, "", true},
		{"garbage", "\x00\x01", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			loc, err := parseSSDPResponse([]byte(tc.in), from)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && loc.String() != tc.want {
				t.Fatalf("location %v, want %v", loc, tc.want)
			}
		})
	}
}

// FuzzSSDPResponse: any datagram on the search socket is untrusted. An
// accepted answer always points at the host it came from, over http.
func FuzzSSDPResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nLOCATION: http://[::ffff:192.168.1.1]/d.xml\r\n\r\n"))
	f.Add([]byte{})
	f.Add([]byte{0xff})
	from := netip.MustParseAddr("192.168.1.1")
	f.Fuzz(func(t *testing.T, b []byte) {
		loc, err := parseSSDPResponse(b, from)
		if err != nil {
			return
		}
		if host, err := netip.ParseAddr(loc.Hostname()); err != nil || host.Unmap() != from || loc.Scheme != "http" {
			t.Fatalf("accepted location %v from %v", loc, from)
		}
	})
}

func TestParseProcNetRoute(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{"default", header +
			"eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
			"eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n", "192.168.1.1", false},
		{"lowest_metric", header +
			"wlan0\t00000000\t0100000A\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
			"eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "192.168.1.1", false},
		{"down_route_skipped", header +
			"eth0\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n", "", true},
		{"no_gateway_flag", header +
			"wg0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n", "", true},
		{"empty", "", "", true},
		{"garbage", header + "eth0\tzz\t0101A8C0\t0003\t0\t0\t0\t00000000\n", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcNetRoute([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && got.String() != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestIsPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"203.0.113.7": true, "11.22.1.1": true, "2001:db8::1": true,
		"192.168.1.1": false, "10.0.0.1": false, "172.16.0.1": false, "100.64.0.1": false,
		"127.0.0.1": false, "0.0.0.0": false, "169.254.1.1": false, "::ffff:10.0.0.1": false,
	} {
		if got := isPublic(netip.MustParseAddr(addr)); got != want {
			t.Errorf("isPublic(%s) = %v, want %v", addr, got, want)
		}
	}
}
