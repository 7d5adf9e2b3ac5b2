package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// NAT-PMP (RFC 6886) messages. All integers are big-endian; every request
// goes to the default gateway's UDP port 5351.
//
// External address request (2 bytes):
//
//	 0        1
//	+--------+--------+
//	| vers 0 |  op 0  |
//	+--------+--------+
//
// External address response (12 bytes):
//
//	 0        1        2        3
//	+--------+--------+--------+--------+
//	| vers 0 | op 128 |   result code   |
//	+--------+--------+--------+--------+
//	|   seconds since start of epoch    |
//	+--------+--------+--------+--------+
//	|   external IPv4 address           |
//	+--------+--------+--------+--------+
//
// Mapping request (12 bytes), op 1 for UDP and 2 for TCP:
//
//	+--------+--------+--------+--------+
//	| vers 0 |  op    |  reserved (0)   |
//	+--------+--------+--------+--------+
//	| internal port   | suggested ext.  |
//	+--------+--------+--------+--------+
//	|   requested lifetime (seconds)    |
//	+--------+--------+--------+--------+
//
// Mapping response (16 bytes):
//
//	+--------+--------+--------+--------+
//	| vers 0 | op+128 |   result code   |
//	+--------+--------+--------+--------+
//	|   seconds since start of epoch    |
//	+--------+--------+--------+--------+
//	| internal port   | mapped ext. port|
//	+--------+--------+--------+--------+
//	|   lifetime (seconds)              |
//	+--------+--------+--------+--------+
//
// A mapping request with lifetime 0 and suggested external port 0 deletes
// the mapping. When the result code is not 0 the other fields are
// undefined: they are sent as zeros and ignored on receipt, and such a
// response may stop after the epoch (8 bytes), as an "unsupported version"
// answer to a PCP request does.
const (
	pmpServerPort = 5351
	pmpVersion    = 0

	pmpOpExternalAddr = 0
	pmpOpMapUDP       = 1
	pmpOpMapTCP       = 2
	pmpOpReply        = 0x80 // set in the opcode of every response

	pmpExternalAddrRequestSize  = 2
	pmpMapRequestSize           = 12
	pmpErrorResponseSize        = 8
	pmpExternalAddrResponseSize = 12
	pmpMapResponseSize          = 16
)

// pmpResult is a NAT-PMP result code (RFC 6886 §3.5).
type pmpResult uint16

const (
	pmpSuccess            pmpResult = 0
	pmpUnsupportedVersion pmpResult = 1
	pmpNotAuthorized      pmpResult = 2 // refused, e.g. NAT-PMP switched off by the user
	pmpNetworkFailure     pmpResult = 3 // the gateway has no external address yet
	pmpOutOfResources     pmpResult = 4
	pmpUnsupportedOpcode  pmpResult = 5
)

func (r pmpResult) String() string {
	switch r {
	case pmpSuccess:
		return "success"
	case pmpUnsupportedVersion:
		return "unsupported version"
	case pmpNotAuthorized:
		return "not authorized"
	case pmpNetworkFailure:
		return "network failure"
	case pmpOutOfResources:
		return "out of resources"
	case pmpUnsupportedOpcode:
		return "unsupported opcode"
	}
	return fmt.Sprintf("result %d", uint16(r))
}

var (
	errShort          = errors.New("message too short")
	errVersion        = errors.New("unsupported protocol version")
	errNotResponse    = errors.New("not a response")
	errNotRequest     = errors.New("not a request")
	errUnknownOpcode  = errors.New("unknown opcode")
	errNotIPv4        = errors.New("address is not IPv4")
	errInvalidAddress = errors.New("invalid address")
)

// pmpRequest is a NAT-PMP request: external address (Op 0) or mapping
// (Op 1 or 2).
type pmpRequest struct {
	Op uint8
	// Mapping requests only.
	InternalPort uint16
	ExternalPort uint16 // suggested; 0 lets the gateway choose
	Lifetime     uint32 // seconds; 0 deletes the mapping
}

// AppendBinary appends the request's wire form to b.
func (r pmpRequest) AppendBinary(b []byte) ([]byte, error) {
	switch r.Op {
	case pmpOpExternalAddr:
		return append(b, pmpVersion, r.Op), nil
	case pmpOpMapUDP, pmpOpMapTCP:
		b = append(b, pmpVersion, r.Op, 0, 0)
		b = binary.BigEndian.AppendUint16(b, r.InternalPort)
		b = binary.BigEndian.AppendUint16(b, r.ExternalPort)
		return binary.BigEndian.AppendUint32(b, r.Lifetime), nil
	}
	return b, fmt.Errorf("nat-pmp request: %w %d", errUnknownOpcode, r.Op)
}

// parsePMPRequest decodes a request; trailing bytes are ignored.
func parsePMPRequest(b []byte) (pmpRequest, error) {
	if len(b) < pmpExternalAddrRequestSize {
		return pmpRequest{}, errShort
	}
	if b[0] != pmpVersion {
		return pmpRequest{}, errVersion
	}
	r := pmpRequest{Op: b[1]}
	switch r.Op {
	case pmpOpExternalAddr:
		return r, nil
	case pmpOpMapUDP, pmpOpMapTCP:
		if len(b) < pmpMapRequestSize {
			return pmpRequest{}, errShort
		}
		r.InternalPort = binary.BigEndian.Uint16(b[4:])
		r.ExternalPort = binary.BigEndian.Uint16(b[6:])
		r.Lifetime = binary.BigEndian.Uint32(b[8:])
		return r, nil
	}
	if r.Op&pmpOpReply != 0 {
		return pmpRequest{}, errNotRequest
	}
	return pmpRequest{}, errUnknownOpcode
}

// pmpResponse is any NAT-PMP response. The fields after Epoch are set only
// when Result is pmpSuccess.
type pmpResponse struct {
	Op     uint8 // the opcode of the request answered, without pmpOpReply
	Result pmpResult
	Epoch  uint32 // seconds since the gateway (re)started its NAT-PMP service

	ExternalAddr netip.Addr // external address responses

	InternalPort uint16 // mapping responses
	ExternalPort uint16
	Lifetime     uint32 // seconds granted
}

// AppendBinary appends the response's wire form to b. Error responses
// carry zeros after the epoch, as RFC 6886 asks.
func (r pmpResponse) AppendBinary(b []byte) ([]byte, error) {
	if r.Op != pmpOpExternalAddr && r.Op != pmpOpMapUDP && r.Op != pmpOpMapTCP {
		return b, fmt.Errorf("nat-pmp response: %w %d", errUnknownOpcode, r.Op)
	}
	b = append(b, pmpVersion, r.Op|pmpOpReply)
	b = binary.BigEndian.AppendUint16(b, uint16(r.Result))
	b = binary.BigEndian.AppendUint32(b, r.Epoch)
	ok := r.Result == pmpSuccess
	if r.Op == pmpOpExternalAddr {
		if !ok {
			return append(b, 0, 0, 0, 0), nil
		}
		if !r.ExternalAddr.Is4() {
			return b, fmt.Errorf("nat-pmp response: external %v: %w", r.ExternalAddr, errNotIPv4)
		}
		a := r.ExternalAddr.As4()
		return append(b, a[:]...), nil
	}
	if !ok {
		return append(b, 0, 0, 0, 0, 0, 0, 0, 0), nil
	}
	b = binary.BigEndian.AppendUint16(b, r.InternalPort)
	b = binary.BigEndian.AppendUint16(b, r.ExternalPort)
	return binary.BigEndian.AppendUint32(b, r.Lifetime), nil
}

// parsePMPResponse decodes a response from the gateway; trailing bytes are
// ignored.
func parsePMPResponse(b []byte) (pmpResponse, error) {
	if len(b) < pmpErrorResponseSize {
		return pmpResponse{}, errShort
	}
	if b[0] != pmpVersion {
		return pmpResponse{}, errVersion
	}
	if b[1]&pmpOpReply == 0 {
		return pmpResponse{}, errNotResponse
	}
	r := pmpResponse{
		Op:     b[1] &^ pmpOpReply,
		Result: pmpResult(binary.BigEndian.Uint16(b[2:])),
		Epoch:  binary.BigEndian.Uint32(b[4:]),
	}
	switch r.Op {
	case pmpOpExternalAddr, pmpOpMapUDP, pmpOpMapTCP:
	default:
		return pmpResponse{}, errUnknownOpcode
	}
	if r.Result != pmpSuccess {
		return r, nil
	}
	if r.Op == pmpOpExternalAddr {
		if len(b) < pmpExternalAddrResponseSize {
			return pmpResponse{}, errShort
		}
		r.ExternalAddr = netip.AddrFrom4([4]byte(b[8:12]))
		return r, nil
	}
	if len(b) < pmpMapResponseSize {
		return pmpResponse{}, errShort
	}
	r.InternalPort = binary.BigEndian.Uint16(b[8:])
	r.ExternalPort = binary.BigEndian.Uint16(b[10:])
	r.Lifetime = binary.BigEndian.Uint32(b[12:])
	return r, nil
}

// pmpClient maps the node's port with NAT-PMP.
type pmpClient struct {
	server    netip.AddrPort // the gateway, port 5351
	localPort uint16
	lease     time.Duration
	dial      dialFunc // nil: dialUDP
}

func (c *pmpClient) protocol() string { return ProtocolNATPMP }

func (c *pmpClient) String() string { return "nat-pmp " + c.server.String() }

// exchange sends req and returns the first answer that is a response to
// op, retransmitting as RFC 6886 §3.1 asks.
func (c *pmpClient) exchange(ctx context.Context, conn *udpExchanger, req pmpRequest) (pmpResponse, error) {
	pkt, err := req.AppendBinary(nil)
	if err != nil {
		return pmpResponse{}, err
	}
	return exchange(ctx, conn, pkt, func(b []byte) (pmpResponse, bool, error) {
		resp, err := parsePMPResponse(b)
		if err != nil || resp.Op != req.Op {
			return resp, false, nil
		}
		if req.Op != pmpOpExternalAddr && resp.Result == pmpSuccess && resp.InternalPort != req.InternalPort {
			return resp, false, nil
		}
		return resp, true, nil
	})
}

// mapPort asks for the external address, then for a UDP mapping of the
// local port: to prev's external port when renewing, else to the same port
// number (the gateway picks another one if that is taken).
func (c *pmpClient) mapPort(ctx context.Context, prev Mapping) (Mapping, error) {
	conn, err := dialExchanger(ctx, c.dial, c.server)
	if err != nil {
		return Mapping{}, fmt.Errorf("nat-pmp: %w", err)
	}
	defer conn.Close()

	resp, err := c.exchange(ctx, conn, pmpRequest{Op: pmpOpExternalAddr})
	if err != nil {
		return Mapping{}, fmt.Errorf("nat-pmp %v: external address: %w", c.server, err)
	}
	if resp.Result != pmpSuccess {
		return Mapping{}, fmt.Errorf("nat-pmp %v: external address: %w: %v", c.server, errRefused, resp.Result)
	}
	ext := resp.ExternalAddr
	if !isPublic(ext) {
		return Mapping{}, fmt.Errorf("nat-pmp %v: external address %v: %w", c.server, ext, errNoPublicAddress)
	}

	want := c.localPort
	if prev.External.IsValid() {
		want = prev.External.Port()
	}
	req := pmpRequest{Op: pmpOpMapUDP, InternalPort: c.localPort, ExternalPort: want, Lifetime: leaseSeconds(c.lease)}
	resp, err = c.exchange(ctx, conn, req)
	if err != nil {
		return Mapping{}, fmt.Errorf("nat-pmp %v: map: %w", c.server, err)
	}
	if resp.Result != pmpSuccess {
		return Mapping{}, fmt.Errorf("nat-pmp %v: map: %w: %v", c.server, errRefused, resp.Result)
	}
	if resp.Lifetime == 0 || resp.ExternalPort == 0 {
		return Mapping{}, fmt.Errorf("nat-pmp %v: map: %w (port %d, lifetime %d)", c.server, errBadMapping, resp.ExternalPort, resp.Lifetime)
	}
	return Mapping{
		External: netip.AddrPortFrom(ext, resp.ExternalPort),
		Internal: netip.AddrPortFrom(conn.local, c.localPort),
		Protocol: ProtocolNATPMP,
		Expires:  time.Now().Add(time.Duration(resp.Lifetime) * time.Second),
	}, nil
}

// unmap deletes the mapping: lifetime 0, external port 0 (RFC 6886 §3.4).
func (c *pmpClient) unmap(ctx context.Context, _ Mapping) error {
	conn, err := dialExchanger(ctx, c.dial, c.server)
	if err != nil {
		return fmt.Errorf("nat-pmp: %w", err)
	}
	defer conn.Close()
	resp, err := c.exchange(ctx, conn, pmpRequest{Op: pmpOpMapUDP, InternalPort: c.localPort})
	if err != nil {
		return fmt.Errorf("nat-pmp %v: unmap: %w", c.server, err)
	}
	if resp.Result != pmpSuccess {
		return fmt.Errorf("nat-pmp %v: unmap: %w: %v", c.server, errRefused, resp.Result)
	}
	return nil
}
