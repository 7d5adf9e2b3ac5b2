package portmap

import (
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
)

// rootDescTemplate is a minimal Internet Gateway Device root description
// with one WAN connection service (%[1]s: its URN, %[2]d: the IGD version),
// shaped like miniupnpd's.
const rootDescTemplate = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
  <specVersion><major>1</major><minor>1</minor></specVersion>
  <device>
    <deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:%[2]d</deviceType>
    <friendlyName>fake IGD</friendlyName>
    <UDN>uuid:00000000-0000-0000-0000-000000000001</UDN>
    <deviceList>
      <device>
        <deviceType>urn:schemas-upnp-org:device:WANDevice:%[2]d</deviceType>
        <friendlyName>WAN device</friendlyName>
        <UDN>uuid:00000000-0000-0000-0000-000000000002</UDN>
        <deviceList>
          <device>
            <deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:%[2]d</deviceType>
            <friendlyName>WAN connection device</friendlyName>
            <UDN>uuid:00000000-0000-0000-0000-000000000003</UDN>
            <serviceList>
              <service>
                <serviceType>%[1]s</serviceType>
                <serviceId>urn:upnp-org:serviceId:WANConn1</serviceId>
                <SCPDURL>/WANConn.xml</SCPDURL>
                <controlURL>/ctl/Conn</controlURL>
                <eventSubURL>/evt/Conn</eventSubURL>
              </service>
            </serviceList>
          </device>
        </deviceList>
      </device>
    </deviceList>
  </device>
</root>`

const (
	urnIP2  = "urn:schemas-upnp-org:service:WANIPConnection:2"
	urnIP1  = "urn:schemas-upnp-org:service:WANIPConnection:1"
	urnPPP1 = "urn:schemas-upnp-org:service:WANPPPConnection:1"
)

// fakeIGDServer is an IGD's HTTP side: the root description and a SOAP
// control endpoint keeping a port mapping table. Like miniupnpd with
// secure_mode, it refuses (718) a mapping whose internal client is not the
// caller's own address.
type fakeIGDServer struct {
	*httptest.Server
	service string // its service URN

	mu       sync.Mutex
	external string            // guarded by mu: GetExternalIPAddress's answer
	refuse   map[string]int    // guarded by mu: "Action" or "Action port" → UPnP error code
	anyPort  string            // guarded by mu: AddAnyPortMapping's answer
	mappings map[string]string // guarded by mu: external port → internal client:port
	calls    []string          // guarded by mu
}

func newFakeIGDServer(t *testing.T, service string) *fakeIGDServer {
	s := &fakeIGDServer{service: service, external: testExternal.String(), refuse: map[string]int{}, anyPort: "40000", mappings: map[string]string{}}
	version := 1
	if strings.HasSuffix(service, ":2") {
		version = 2
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rootDesc.xml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		fmt.Fprintf(w, rootDescTemplate, service, version)
	})
	mux.HandleFunc("POST /ctl/Conn", s.control)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// soapRequest is the part of a SOAP envelope the fake reads.
type soapRequest struct {
	Body struct {
		Action struct {
			XMLName xml.Name
			Args    []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:",any"`
	} `xml:"Body"`
}

func (s *fakeIGDServer) control(w http.ResponseWriter, r *http.Request) {
	var req soapRequest
	if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	action := req.Body.Action.XMLName.Local
	if want := `"` + s.service + "#" + action + `"`; r.Header.Get("SOAPACTION") != want {
		http.Error(w, "SOAPACTION "+r.Header.Get("SOAPACTION"), http.StatusBadRequest)
		return
	}
	args := map[string]string{}
	for _, a := range req.Body.Action.Args {
		args[a.XMLName.Local] = a.Value
	}
	caller, _, _ := net.SplitHostPort(r.RemoteAddr)

	s.mu.Lock()
	defer s.mu.Unlock()
	port := args["NewExternalPort"]
	s.calls = append(s.calls, strings.TrimSpace(action+" "+port))
	code := s.refuse[action]
	if c, ok := s.refuse[action+" "+port]; ok {
		code = c
	}
	if (action == "AddPortMapping" || action == "AddAnyPortMapping") && args["NewInternalClient"] != caller {
		code = upnpConflictInMappingEntry
	}
	if code != 0 {
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>refused</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code)
		return
	}
	var out string
	switch action {
	case "GetExternalIPAddress":
		out = "<NewExternalIPAddress>" + s.external + "</NewExternalIPAddress>"
	case "AddPortMapping":
		s.mappings[port] = args["NewInternalClient"] + ":" + args["NewInternalPort"]
	case "AddAnyPortMapping":
		s.mappings[s.anyPort] = args["NewInternalClient"] + ":" + args["NewInternalPort"]
		out = "<NewReservedPort>" + s.anyPort + "</NewReservedPort>"
	case "DeletePortMapping":
		delete(s.mappings, port)
	}
	w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
	fmt.Fprintf(w, `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%[1]sResponse xmlns:u="%[2]s">%[3]s</u:%[1]sResponse></s:Body></s:Envelope>`,
		action, s.service, out)
}

func (s *fakeIGDServer) set(f func(s *fakeIGDServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *fakeIGDServer) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *fakeIGDServer) table() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.mappings {
		out[k] = v
	}
	return out
}

// fakeSSDP answers every M-SEARCH for an IGD with the given locations, one
// datagram each, on a real socket on 127.0.0.1 or an in-memory one.
type fakeSSDP struct {
	conn packetConn
	addr netip.AddrPort
	done chan struct{}

	mu       sync.Mutex
	searches int // guarded by mu
}

// newFakeSSDP answers on a real socket on 127.0.0.1.
func newFakeSSDP(t *testing.T, locations ...string) *fakeSSDP {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return serveFakeSSDP(t, conn, conn.LocalAddr().(*net.UDPAddr).AddrPort(), locations)
}

// newSimSSDP answers on the in-memory LAN's gateway.
func newSimSSDP(t *testing.T, lan *simLAN, locations ...string) *fakeSSDP {
	return serveFakeSSDP(t, lan.listenGW(t, ssdpPort), netip.AddrPortFrom(gwAddr, ssdpPort), locations)
}

func serveFakeSSDP(t *testing.T, conn packetConn, addr netip.AddrPort, locations []string) *fakeSSDP {
	s := &fakeSSDP{conn: conn, addr: addr, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			req := string(buf[:n])
			if !strings.HasPrefix(req, "M-SEARCH * HTTP/1.1\r\n") || !strings.Contains(req, "\r\nST: "+igdSearchTarget+"\r\n") {
				continue
			}
			s.mu.Lock()
			s.searches++
			s.mu.Unlock()
			for _, loc := range locations {
				fmt.Fprintf(&udpWriter{conn, from}, "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: %s\r\n"+
					"USN: uuid:00000000-0000-0000-0000-000000000001::%[1]s\r\nEXT:\r\nLOCATION: %s\r\n\r\n", igdSearchTarget, loc)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

type udpWriter struct {
	conn packetConn
	to   netip.AddrPort
}

func (w *udpWriter) Write(b []byte) (int, error) { return w.conn.WriteToUDPAddrPort(b, w.to) }

func (s *fakeSSDP) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.searches
}
