package node

import "time"

// Path is how packets reach a peer, as `wh show` says it.
type Path string

const (
	PathDirect     Path = "direct"     // straight to the peer's address
	PathRelay      Path = "relay"      // through a relay node
	PathConnecting Path = "connecting" // found, no handshake yet
	PathOffline    Path = "offline"    // not found, or silent
)

// Status is a node's state, as `wh show --json` prints it.
type Status struct {
	Interface  string       `json:"interface"`
	Network    string       `json:"network"`
	Config     string       `json:"config,omitempty"` // absolute path of the config file, if any
	PublicKey  string       `json:"public_key"`
	Hostname   string       `json:"hostname"`
	ListenPort uint16       `json:"listen_port"`
	Addresses  []string     `json:"addresses"`
	Mode       string       `json:"mode"` // unknown, direct or nat
	NAT        bool         `json:"nat"`  // whether this node believes it is behind NAT
	Router     bool         `json:"router"`
	DNS        string       `json:"dns"`                 // the active name-resolution mode
	Userspace  bool         `json:"userspace,omitempty"` // on netstack: no interface
	SOCKS5     string       `json:"socks5,omitempty"`    // the SOCKS5 server's address
	Peers      []PeerStatus `json:"peers"`
	DHT        DHTStatus    `json:"dht"`
}

// PeerStatus is one peer in Status.
type PeerStatus struct {
	Key           string    `json:"key"`
	Hostname      string    `json:"hostname"`
	IP            string    `json:"ip"`
	IPv6          string    `json:"ipv6"`
	Trusted       bool      `json:"trusted"`
	Role          string    `json:"role"`
	Path          Path      `json:"path"`
	Endpoint      string    `json:"endpoint"` // ip:port of a direct path, else ""
	Relay         string    `json:"relay"`    // the relay's key for a relayed path, else ""
	Why           string    `json:"why,omitempty"`
	LastHandshake time.Time `json:"last_handshake"`
	RxBytes       uint64    `json:"rx_bytes"`
	TxBytes       uint64    `json:"tx_bytes"`
	Bucket        int       `json:"bucket,omitempty"`
	// Alias is "unclaimed" for an alias slot nobody claimed here yet,
	// "claimed" for a claimant in an alias slot, else "".
	Alias string `json:"alias,omitempty"`
	// TrustLine is the config line that would replace a claimed alias's.
	TrustLine string `json:"trust_line,omitempty"`
}

// DHTStatus summarises the node's routing table.
type DHTStatus struct {
	Contacts int `json:"contacts"`
	Buckets  int `json:"buckets"`
}
