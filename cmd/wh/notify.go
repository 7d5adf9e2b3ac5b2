package main

import (
	"net"
	"os"
)

// sdNotify sends state (e.g. "READY=1") to the service manager that
// started us, as systemd's sd_notify(3) does: one datagram to the unix
// socket named by $NOTIFY_SOCKET (a leading @ names an abstract socket).
// Without $NOTIFY_SOCKET it does nothing.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
