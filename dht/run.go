package dht

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/whnet/wh/key"
	"github.com/whnet/wh/wire"
)

// Lookup finds the K nodes nearest to target, and target itself if it is
// online: Result.Found, with Result.Vias for a NATed target. It starts from
// the table (or the boot contacts if the table is empty) and marks
// target's bucket as refreshed.
func (s *Server) Lookup(ctx context.Context, target key.Public) Result {
	return s.lookup(ctx, target, false)
}

// Find looks target up like Lookup but stops as soon as target is found:
// it answered a query, or a node that keeps it behind its NAT returned it
// (then Result.Vias holds that node, and maybe a few more). It is the
// quick way to reach a peer; Lookup collects every via.
func (s *Server) Find(ctx context.Context, target key.Public) Result {
	return s.lookup(ctx, target, true)
}

func (s *Server) lookup(ctx context.Context, target key.Public, stopWhenFound bool) Result {
	k := s.cfg.Table.K
	seeds := s.table.ClosestDirect(target, k)
	if c, ok := s.table.Get(target); ok && c.NAT {
		seeds = append(seeds, c)
	}
	if len(seeds) == 0 {
		seeds = s.cfg.Boot
	}
	cfg := LookupConfig{Self: s.self, K: k, Alpha: s.cfg.Alpha, StopWhenFound: stopWhenFound, PerPrefix: s.cfg.Table.PerPrefix}
	if s.cfg.Table.Workbit > 0 {
		cfg.Admit = func(c Contact) bool { return s.table.Admissible(c.Key) == nil }
	}
	res := Lookup(ctx, target, seeds, cfg, s.FindNode)
	s.table.Touch(target, time.Now())
	return res
}

// Bootstrap joins the network as the Kademlia paper does: it pings the
// boot contacts, looks up its own key to fill the table with its
// neighbourhood, announces itself by pinging the K nearest nodes that
// lookup found (for a NATed node, this is its first keepalive), and looks
// up a random key in each bucket farther than its nearest neighbour, so
// that its far buckets are filled too: queries from others do not fill
// them, since FindNode senders are not admitted. It fails only if nobody
// answered.
func (s *Server) Bootstrap(ctx context.Context) error {
	err := s.pingAll(ctx, s.cfg.Boot)
	if s.table.Len() == 0 {
		if err == nil { // no boot contacts
			return ErrNoAnswer
		}
		return fmt.Errorf("%w: %w", ErrNoAnswer, err)
	}
	res, err := s.announce(ctx)
	if err != nil {
		return err
	}
	r := newRand()
	for i := range commonPrefixLen(s.self, res.Closest[0].Key) {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.Lookup(ctx, s.table.RandomKey(i, r))
	}
	return nil
}

// announce looks up the own key and pings the nearest nodes found.
func (s *Server) announce(ctx context.Context) (Result, error) {
	res := s.Lookup(ctx, s.self)
	if res.Err != nil {
		return res, fmt.Errorf("dht: self-lookup: %w", res.Err)
	}
	if len(res.Closest) == 0 {
		return res, ErrNoAnswer
	}
	s.pingAll(ctx, res.Closest)
	s.mu.Lock()
	s.announced = time.Now()
	s.mu.Unlock()
	return res, nil
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) }

// keepalive pings the K nearest direct nodes in the table. A NATed node does
// so every KeepaliveInterval: it keeps its NAT mapping open towards them,
// and them aware of its reflexive address.
func (s *Server) keepalive(ctx context.Context) {
	s.pingAll(ctx, s.table.ClosestDirect(s.self, s.cfg.Table.K))
}

// pingAll pings every contact at once, waits for the answers and returns
// the errors joined.
func (s *Server) pingAll(ctx context.Context, cs []Contact) error {
	var wg sync.WaitGroup
	errs := make([]error, len(cs))
	for i, c := range cs {
		wg.Go(func() {
			if _, errs[i] = s.Ping(ctx, c); errs[i] != nil {
				s.log.Debug("dht: ping failed", "peer", c.Key, "endpoint", c.Addr, "err", errs[i])
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Refresh looks up a random key in every bucket that no lookup touched for
// RefreshInterval, shallowest first, and announces the node again if it
// has not for as long. It bootstraps again if the table is empty.
func (s *Server) Refresh(ctx context.Context, r *rand.Rand) error {
	if s.table.Len() == 0 {
		return s.Bootstrap(ctx)
	}
	for _, i := range s.table.Stale(time.Now().Add(-s.cfg.RefreshInterval)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.Lookup(ctx, s.table.RandomKey(i, r))
	}
	s.mu.Lock()
	due := time.Since(s.announced) >= s.cfg.RefreshInterval
	s.mu.Unlock()
	if !due {
		return nil
	}
	_, err := s.announce(ctx)
	return err
}

// Run keeps the table healthy until ctx ends or the server closes: it
// refreshes stale buckets, expires silent NAT contacts, and, while the
// node is behind NAT, pings its nearest nodes every KeepaliveInterval. Call
// Bootstrap first. Run returns ctx's error, or ErrClosed.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		every(ctx, s.cfg.KeepaliveInterval, func() {
			if s.nat() {
				s.keepalive(ctx)
			}
			s.table.ExpireNAT(time.Now().Add(-s.cfg.NATExpiry))
		})
	})
	wg.Go(func() {
		r := newRand()
		// Check often enough that a bucket is never more than 10% past
		// due.
		every(ctx, s.cfg.RefreshInterval/10, func() {
			if err := s.Refresh(ctx, r); err != nil && ctx.Err() == nil {
				s.log.Debug("dht: refresh", "err", err)
			}
		})
	})
	<-ctx.Done()
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	return ctx.Err()
}

// every calls f every d, plus up to 10% jitter, until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	for {
		t := time.NewTimer(d + rand.N(d/10+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
			f()
		}
	}
}

// Serve reads conn until it fails, handing every message to s, and returns
// the read error. It is the whole receive path of a node that has a socket
// for the DHT alone (tests, the simulator); a node sharing its port with
// WireGuard calls Handle from its demultiplexer instead.
func Serve(conn *wire.Conn, s *Server) error {
	buf := make([]byte, 2048)
	for {
		from, src, m, err := conn.Receive(buf)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		s.Handle(from, src, m)
	}
}
