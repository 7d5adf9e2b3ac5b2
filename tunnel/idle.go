package tunnel

import (
	"runtime/debug"
	"time"
)

const (
	// busyPackets is the traffic in one watch interval that counts as load: enough
	// packets in flight to have grown wireguard-go's buffer pools.
	busyPackets = 1024
	// idleAfter is how long traffic must stay below busyPackets per interval, after a
	// busy interval, before the pools' memory is returned.
	idleAfter = 30 * time.Second
	// watchInterval is how often the memory watcher samples the Bind's counters.
	watchInterval = time.Second
)

// idleFreer decides when to return memory to the OS: once, after traffic has been quiet
// for idleAfter since the last busy interval. Keepalives and control traffic are far below
// busyPackets per interval and do not delay it.
type idleFreer struct {
	last     uint64    // traffic counter at the previous sample
	busy     bool      // a busy interval happened since memory was last freed
	lastBusy time.Time // end of the last busy interval
}

// sample takes the Bind's cumulative packet count at now and reports whether to free
// memory now.
func (f *idleFreer) sample(now time.Time, packets uint64) bool {
	delta := packets - f.last
	f.last = packets
	if delta >= busyPackets {
		f.busy, f.lastBusy = true, now
		return false
	}
	if f.busy && now.Sub(f.lastBusy) >= idleAfter {
		f.busy = false
		return true
	}
	return false
}

// watchMemory runs until Close, freeing memory when the device goes idle after load.
func (d *Device) watchMemory() {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	var f idleFreer
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			s := d.bind.Stats()
			if f.sample(now, s.WireGuardIn+s.WireGuardOut+s.RelayedIn+s.RelayedOut) {
				// The first collection moves the pools into their victim caches,
				// the second frees them; each also returns free pages to the OS.
				debug.FreeOSMemory()
				debug.FreeOSMemory()
				d.log.Debug("idle: returned memory to the OS")
			}
		}
	}
}
