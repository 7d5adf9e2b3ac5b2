package portmap

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// PCP (RFC 6887) messages, on the same gateway port as NAT-PMP. Integers
// are big-endian; addresses are 16 bytes, IPv4 ones in IPv4-mapped form
// (::ffff:a.b.c.d).
//
// Request header (24 bytes):
//
//	 0        1        2        3
//	+--------+-+------+--------+--------+
//	| vers 2 |0|opcode|  reserved (0)   |
//	+--------+-+------+--------+--------+
//	|   requested lifetime (seconds)    |
//	+--------+--------+--------+--------+
//	|   client's IP address (16 bytes)  |
//	|               ...                 |
//	+--------+--------+--------+--------+
//
// Response header (24 bytes):
//
//	+--------+-+------+--------+--------+
//	| vers 2 |1|opcode|reserved| result |
//	+--------+-+------+--------+--------+
//	|   lifetime (seconds)              |
//	+--------+--------+--------+--------+
//	|   epoch time (seconds)            |
//	+--------+--------+--------+--------+
//	|   reserved (12 bytes)             |
//	+--------+--------+--------+--------+
//
// MAP payload after either header (36 bytes); in an error response the
// server copies the request's:
//
//	+--------+--------+--------+--------+
//	|   mapping nonce (12 bytes)        |
//	+--------+--------+--------+--------+
//	|protocol|     reserved (0)         |
//	+--------+--------+--------+--------+
//	| internal port   | (suggested or   |
//	|                 | assigned) ext.  |
//	+--------+--------+--------+--------+
//	| (suggested or assigned) external  |
//	| IP address (16 bytes)             |
//	+--------+--------+--------+--------+
//
// Options may follow; we send none and ignore those we receive. A MAP
// request with lifetime 0 and the mapping's nonce deletes it.
const (
	pcpVersion       = 2
	pcpOpAnnounce    = 0
	pcpOpMap         = 1
	pcpResponseBit   = 0x80
	pcpHeaderSize    = 24
	pcpMapSize       = 36
	pcpProtocolUDP   = 17
	pcpMapPacketSize = pcpHeaderSize + pcpMapSize
)

// pcpResult is a PCP result code (RFC 6887 §7.4).
type pcpResult uint8

const (
	pcpSuccess               pcpResult = 0
	pcpUnsuppVersion         pcpResult = 1
	pcpNotAuthorized         pcpResult = 2
	pcpMalformedRequest      pcpResult = 3
	pcpUnsuppOpcode          pcpResult = 4
	pcpUnsuppOption          pcpResult = 5
	pcpMalformedOption       pcpResult = 6
	pcpNetworkFailure        pcpResult = 7
	pcpNoResources           pcpResult = 8
	pcpUnsuppProtocol        pcpResult = 9
	pcpUserExQuota           pcpResult = 10
	pcpCannotProvideExternal pcpResult = 11
	pcpAddressMismatch       pcpResult = 12
	pcpExcessiveRemotePeers  pcpResult = 13
)

var pcpResultNames = [...]string{
	"success", "unsupported version", "not authorized", "malformed request",
	"unsupported opcode", "unsupported option", "malformed option",
	"network failure", "no resources", "unsupported protocol",
	"user exceeded quota", "cannot provide external", "address mismatch",
	"excessive remote peers",
}

func (r pcpResult) String() string {
	if int(r) < len(pcpResultNames) {
		return pcpResultNames[r]
	}
	return fmt.Sprintf("result %d", uint8(r))
}

// pcpMap is the MAP opcode's payload.
type pcpMap struct {
	Nonce        [12]byte
	Protocol     uint8 // IANA protocol number: 17 for UDP
	InternalPort uint16
	ExternalPort uint16     // suggested (request) or assigned (response)
	ExternalAddr netip.Addr // suggested (request) or assigned (response)
}

func (m pcpMap) appendBinary(b []byte) []byte {
	b = append(b, m.Nonce[:]...)
	b = append(b, m.Protocol, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, m.InternalPort)
	b = binary.BigEndian.AppendUint16(b, m.ExternalPort)
	a := m.ExternalAddr.As16()
	return append(b, a[:]...)
}

func parsePCPMap(b []byte) pcpMap {
	return pcpMap{
		Nonce:        [12]byte(b[0:12]),
		Protocol:     b[12],
		InternalPort: binary.BigEndian.Uint16(b[16:]),
		ExternalPort: binary.BigEndian.Uint16(b[18:]),
		ExternalAddr: netip.AddrFrom16([16]byte(b[20:36])).Unmap(),
	}
}

// pcpRequest is a PCP request: ANNOUNCE, or MAP with its payload.
type pcpRequest struct {
	Opcode     uint8
	Lifetime   uint32     // seconds; 0 deletes a mapping
	ClientAddr netip.Addr // must be the request's source address
	Map        pcpMap     // MAP only
}

// AppendBinary appends the request's wire form to b.
func (r pcpRequest) AppendBinary(b []byte) ([]byte, error) {
	if r.Opcode != pcpOpAnnounce && r.Opcode != pcpOpMap {
		return b, fmt.Errorf("pcp request: %w %d", errUnknownOpcode, r.Opcode)
	}
	if !r.ClientAddr.IsValid() || (r.Opcode == pcpOpMap && !r.Map.ExternalAddr.IsValid()) {
		return b, fmt.Errorf("pcp request: %w", errInvalidAddress)
	}
	b = append(b, pcpVersion, r.Opcode, 0, 0)
	b = binary.BigEndian.AppendUint32(b, r.Lifetime)
	a := r.ClientAddr.As16()
	b = append(b, a[:]...)
	if r.Opcode == pcpOpMap {
		b = r.Map.appendBinary(b)
	}
	return b, nil
}

// parsePCPRequest decodes a request; options after it are ignored.
func parsePCPRequest(b []byte) (pcpRequest, error) {
	if len(b) < pcpHeaderSize {
		return pcpRequest{}, errShort
	}
	if b[0] != pcpVersion {
		return pcpRequest{}, errVersion
	}
	if b[1]&pcpResponseBit != 0 {
		return pcpRequest{}, errNotRequest
	}
	r := pcpRequest{
		Opcode:     b[1],
		Lifetime:   binary.BigEndian.Uint32(b[4:]),
		ClientAddr: netip.AddrFrom16([16]byte(b[8:24])).Unmap(),
	}
	switch r.Opcode {
	case pcpOpAnnounce:
	case pcpOpMap:
		if len(b) < pcpMapPacketSize {
			return pcpRequest{}, errShort
		}
		r.Map = parsePCPMap(b[pcpHeaderSize:])
	default:
		return pcpRequest{}, errUnknownOpcode
	}
	return r, nil
}

// pcpResponse is a PCP response to ANNOUNCE or MAP.
type pcpResponse struct {
	Opcode   uint8 // without the response bit
	Result   pcpResult
	Lifetime uint32 // seconds granted, or how long an error lasts
	Epoch    uint32
	Map      pcpMap // MAP only
}

// AppendBinary appends the response's wire form to b.
func (r pcpResponse) AppendBinary(b []byte) ([]byte, error) {
	if r.Opcode != pcpOpAnnounce && r.Opcode != pcpOpMap {
		return b, fmt.Errorf("pcp response: %w %d", errUnknownOpcode, r.Opcode)
	}
	if r.Opcode == pcpOpMap && !r.Map.ExternalAddr.IsValid() {
		return b, fmt.Errorf("pcp response: %w", errInvalidAddress)
	}
	b = append(b, pcpVersion, r.Opcode|pcpResponseBit, 0, byte(r.Result))
	b = binary.BigEndian.AppendUint32(b, r.Lifetime)
	b = binary.BigEndian.AppendUint32(b, r.Epoch)
	b = append(b, make([]byte, 12)...)
	if r.Opcode == pcpOpMap {
		b = r.Map.appendBinary(b)
	}
	return b, nil
}

// parsePCPResponse decodes a response from the gateway; options after it
// are ignored. A NAT-PMP-only gateway answers a PCP request with a
// version-0 "unsupported version" response, reported as errVersion.
func parsePCPResponse(b []byte) (pcpResponse, error) {
	if len(b) < 2 {
		return pcpResponse{}, errShort
	}
	if b[0] != pcpVersion {
		return pcpResponse{}, errVersion
	}
	if len(b) < pcpHeaderSize {
		return pcpResponse{}, errShort
	}
	if b[1]&pcpResponseBit == 0 {
		return pcpResponse{}, errNotResponse
	}
	r := pcpResponse{
		Opcode:   b[1] &^ pcpResponseBit,
		Result:   pcpResult(b[3]),
		Lifetime: binary.BigEndian.Uint32(b[4:]),
		Epoch:    binary.BigEndian.Uint32(b[8:]),
	}
	switch r.Opcode {
	case pcpOpAnnounce:
	case pcpOpMap:
		if len(b) < pcpMapPacketSize {
			return pcpResponse{}, errShort
		}
		r.Map = parsePCPMap(b[pcpHeaderSize:])
	default:
		return pcpResponse{}, errUnknownOpcode
	}
	return r, nil
}

// pcpClient maps the node's port with PCP.
type pcpClient struct {
	server    netip.AddrPort // the gateway, port 5351
	localPort uint16
	lease     time.Duration
	// nonce names our mapping to the server (RFC 6887 §11.1), which
	// refuses to touch it under another nonce: it is the Mapper's, the
	// same for every client it makes.
	nonce [12]byte
	dial  dialFunc // nil: dialUDP
}

// newPCPNonce returns a random mapping nonce.
func newPCPNonce() (n [12]byte) {
	rand.Read(n[:])
	return n
}

func (c *pcpClient) protocol() string { return ProtocolPCP }

func (c *pcpClient) String() string { return "pcp " + c.server.String() }

// exchange sends one MAP request and waits for its answer.
func (c *pcpClient) exchange(ctx context.Context, lifetime uint32, ext netip.AddrPort) (pcpResponse, netip.Addr, error) {
	conn, err := dialExchanger(ctx, c.dial, c.server)
	if err != nil {
		return pcpResponse{}, netip.Addr{}, fmt.Errorf("pcp: %w", err)
	}
	defer conn.Close()
	req := pcpRequest{
		Opcode:     pcpOpMap,
		Lifetime:   lifetime,
		ClientAddr: conn.local,
		Map: pcpMap{
			Nonce:        c.nonce,
			Protocol:     pcpProtocolUDP,
			InternalPort: c.localPort,
			ExternalPort: ext.Port(),
			ExternalAddr: ext.Addr(),
		},
	}
	pkt, err := req.AppendBinary(nil)
	if err != nil {
		return pcpResponse{}, netip.Addr{}, err
	}
	resp, err := exchange(ctx, conn, pkt, func(b []byte) (pcpResponse, bool, error) {
		resp, err := parsePCPResponse(b)
		if err == errVersion {
			return resp, false, err
		}
		ok := err == nil && resp.Opcode == pcpOpMap && resp.Map.Nonce == c.nonce &&
			resp.Map.Protocol == pcpProtocolUDP && resp.Map.InternalPort == c.localPort
		return resp, ok, nil
	})
	return resp, conn.local, err
}

// mapPort asks for a UDP mapping of the local port, suggesting prev's
// external address when renewing, else the same port number.
func (c *pcpClient) mapPort(ctx context.Context, prev Mapping) (Mapping, error) {
	suggest := prev.External
	if !suggest.IsValid() {
		suggest = netip.AddrPortFrom(netip.IPv4Unspecified(), c.localPort)
	}
	resp, local, err := c.exchange(ctx, leaseSeconds(c.lease), suggest)
	if err != nil {
		return Mapping{}, fmt.Errorf("pcp %v: map: %w", c.server, err)
	}
	if resp.Result != pcpSuccess {
		return Mapping{}, fmt.Errorf("pcp %v: map: %w: %v", c.server, errRefused, resp.Result)
	}
	ext := netip.AddrPortFrom(resp.Map.ExternalAddr, resp.Map.ExternalPort)
	if resp.Lifetime == 0 || ext.Port() == 0 {
		return Mapping{}, fmt.Errorf("pcp %v: map: %w (%v, lifetime %d)", c.server, errBadMapping, ext, resp.Lifetime)
	}
	mp := Mapping{
		External: ext,
		Internal: netip.AddrPortFrom(local, c.localPort),
		Protocol: ProtocolPCP,
		Expires:  time.Now().Add(time.Duration(resp.Lifetime) * time.Second),
	}
	if !isPublic(ext.Addr()) {
		// Useless to peers; give the port back at once.
		c.unmap(ctx, mp)
		return Mapping{}, fmt.Errorf("pcp %v: external address %v: %w", c.server, ext.Addr(), errNoPublicAddress)
	}
	return mp, nil
}

// unmap deletes the mapping: same nonce, lifetime 0 (RFC 6887 §15).
func (c *pcpClient) unmap(ctx context.Context, mp Mapping) error {
	resp, _, err := c.exchange(ctx, 0, mp.External)
	if err != nil {
		return fmt.Errorf("pcp %v: unmap: %w", c.server, err)
	}
	if resp.Result != pcpSuccess {
		return fmt.Errorf("pcp %v: unmap: %w: %v", c.server, errRefused, resp.Result)
	}
	return nil
}
