package faulttest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// FaultKind names one kind of fault the suite injects; the summary counts
// each kind.
type FaultKind string

// Network faults injected by a Proxy, per call or per connection.
const (
	FaultDelay     FaultKind = "net_delay"          // the request is held before forwarding
	FaultDrop      FaultKind = "net_drop_request"   // the request never reaches the server
	FaultDropReply FaultKind = "net_drop_reply"     // the server handled it, the reply is lost
	FaultDuplicate FaultKind = "net_duplicate"      // the request is delivered twice
	FaultReset     FaultKind = "net_reset"          // a client connection is reset (RST)
	FaultDown      FaultKind = "net_partition_call" // a call refused while the link is down
)

// Odds are the per-call probabilities of each network fault, each in [0,1].
// At most one of Drop, DropReply and Duplicate applies to a call; Delay can
// come on top.
type Odds struct {
	Delay     float64
	MaxDelay  time.Duration
	Drop      float64
	DropReply float64
	Duplicate float64
}

// rawFrame is a gRPC message forwarded without decoding.
type rawFrame struct{ b []byte }

// rawCodec passes message bytes through untouched. It is named "proto" so
// that the content type on the wire is unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*rawFrame)
	if !ok {
		return nil, errors.New("faulttest: raw codec: unexpected message type")
	}
	return f.b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*rawFrame)
	if !ok {
		return errors.New("faulttest: raw codec: unexpected message type")
	}
	f.b = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// Link kinds: what a proxy sits on. A call refused while a link is down is
// counted as net_partition_call and as net_partition_call:<link kind>.
const (
	LinkInitToCoord = "initiator->coordinator"
	LinkInitToPart  = "initiator->participant"
	LinkCoordToPart = "coordinator->participant"
	LinkCheckBack   = "participant->coordinator(check-back)"
)

// Observer sees every call a proxy's backend answered with OK (the
// original and a duplicated copy alike, and a reply the proxy then drops):
// the method and the raw request and reply messages.
type Observer func(method string, req, reply []byte)

// Proxy is a gRPC-aware fault proxy for unary calls: it listens on a
// loopback address, forwards every call to a backend address, and injects
// per-call faults (delay, drop, duplicate delivery, reply lost after the
// server handled the request) and per-connection resets. Health checks
// (grpc.health.v1) are forwarded untouched.
type Proxy struct {
	name    string
	link    string
	addr    string
	lis     *trackingListener
	srv     *grpc.Server
	backend *grpc.ClientConn
	stats   *Stats

	mu   sync.Mutex
	rng  *rand.Rand
	odds Odds
	down bool
	// forced are per-call faults applied, in order, to the next calls
	// (the coverage schedule's way of firing each kind for sure).
	forced []FaultKind
	// slow delays every call (not counted as a fault: the pause fault uses
	// it to keep delivery rounds, and their leases, in flight).
	slow     time.Duration
	observer Observer
	refused  atomic.Int64 // calls refused while down

	wg     sync.WaitGroup // duplicate deliveries in flight
	closed atomic.Bool
}

// NewProxy starts a proxy named name, of link kind link (LinkInitToCoord,
// ...), in front of backend. rng decides the faults (it is used under the
// proxy's lock); stats counts them; observe (may be nil) sees every call
// the backend answered.
func NewProxy(name, link, backend string, rng *rand.Rand, stats *Stats, observe Observer) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(backend, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		l.Close()
		return nil, err
	}
	p := &Proxy{name: name, link: link, addr: l.Addr().String(), lis: &trackingListener{Listener: l, conns: map[net.Conn]struct{}{}},
		backend: cc, stats: stats, rng: rng, observer: observe}
	p.srv = grpc.NewServer(grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(p.handle))
	go func() { _ = p.srv.Serve(p.lis) }()
	return p, nil
}

// Addr is the proxy's listen address: register it as the target.
func (p *Proxy) Addr() string { return p.addr }

// SetOdds replaces the per-call fault odds; the zero Odds heals.
func (p *Proxy) SetOdds(o Odds) {
	p.mu.Lock()
	p.odds = o
	p.mu.Unlock()
}

// SetDown cuts (true) or restores (false) the link: while down every call
// fails with Unavailable without reaching the backend.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// Link is the proxy's link kind.
func (p *Proxy) Link() string { return p.link }

// Refused is how many calls the proxy refused while its link was down.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// Force applies fault k (FaultDelay, FaultDrop, FaultDropReply or
// FaultDuplicate) to the next call that has none forced yet.
func (p *Proxy) Force(k FaultKind) {
	p.mu.Lock()
	p.forced = append(p.forced, k)
	p.mu.Unlock()
}

// SetSlow delays every call by d (0: off).
func (p *Proxy) SetSlow(d time.Duration) {
	p.mu.Lock()
	p.slow = d
	p.mu.Unlock()
}

// Heal removes every fault.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.odds, p.down, p.forced, p.slow = Odds{}, false, nil, 0
	p.mu.Unlock()
}

// ResetConnection resets one live client connection, chosen at random, by
// closing it with SO_LINGER 0 (the peer sees a TCP RST). It reports whether
// there was one.
func (p *Proxy) ResetConnection() bool {
	p.mu.Lock()
	i := p.rng.IntN(1 << 20)
	p.mu.Unlock()
	if !p.lis.resetOne(i) {
		return false
	}
	p.stats.Add(FaultReset)
	return true
}

// Close stops the proxy, waits for duplicate deliveries in flight, and
// closes the backend connection.
func (p *Proxy) Close() {
	if p.closed.Swap(true) {
		return
	}
	p.srv.Stop()
	p.wg.Wait()
	_ = p.backend.Close()
}

type callPlan struct {
	delay     time.Duration
	drop      bool
	dropReply bool
	duplicate bool
	down      bool
	slow      time.Duration
}

func (p *Proxy) plan(method string) callPlan {
	if strings.HasPrefix(method, "/grpc.health.v1.") {
		return callPlan{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return callPlan{down: true}
	}
	var c callPlan
	c.slow = p.slow
	if len(p.forced) > 0 {
		k := p.forced[0]
		p.forced = p.forced[1:]
		switch k {
		case FaultDelay:
			c.delay = 20*time.Millisecond + time.Duration(p.rng.Int64N(int64(100*time.Millisecond)))
		case FaultDrop:
			c.drop = true
		case FaultDropReply:
			c.dropReply = true
		case FaultDuplicate:
			c.duplicate = true
		}
		return c
	}
	o := p.odds
	if o.Delay > 0 && o.MaxDelay > 0 && p.rng.Float64() < o.Delay {
		c.delay = time.Duration(p.rng.Int64N(int64(o.MaxDelay)) + 1)
	}
	switch r := p.rng.Float64(); {
	case r < o.Drop:
		c.drop = true
	case r < o.Drop+o.DropReply:
		c.dropReply = true
	case r < o.Drop+o.DropReply+o.Duplicate:
		c.duplicate = true
	}
	return c
}

// dropWait is how long a dropped request or reply keeps the caller waiting
// before it sees Unavailable (unless its own deadline comes first).
const dropWait = 300 * time.Millisecond

func (p *Proxy) handle(_ any, stream grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(stream)
	if !ok {
		return status.Error(codes.Internal, "faulttest proxy: no method")
	}
	in := new(rawFrame)
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	c := p.plan(method)
	if c.down {
		p.refused.Add(1)
		p.stats.Add(FaultDown)
		p.stats.AddName(string(FaultDown)+":"+p.link, 1)
		return status.Error(codes.Unavailable, "faulttest proxy: link down")
	}
	if c.slow > 0 && !sleepCtx(ctx, c.slow) {
		return status.FromContextError(ctx.Err()).Err()
	}
	if c.delay > 0 {
		p.stats.Add(FaultDelay)
		if !sleepCtx(ctx, c.delay) {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	if c.drop {
		p.stats.Add(FaultDrop)
		sleepCtx(ctx, dropWait)
		return status.Error(codes.Unavailable, "faulttest proxy: request dropped")
	}
	fwd := metadata.NewOutgoingContext(ctx, stripTransport(md))
	if c.duplicate && !p.closed.Load() {
		p.stats.Add(FaultDuplicate)
		p.wg.Add(1)
		dctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), stripTransport(md)), 5*time.Second)
		p.mu.Lock()
		lag := time.Duration(p.rng.IntN(20)) * time.Millisecond
		p.mu.Unlock()
		go func() {
			defer p.wg.Done()
			defer cancel()
			time.Sleep(lag)
			dup := new(rawFrame)
			if p.backend.Invoke(dctx, method, in, dup) == nil && p.observer != nil {
				p.observer(method, in.b, dup.b)
			}
		}()
	}
	out := new(rawFrame)
	var header, trailer metadata.MD
	err := p.backend.Invoke(fwd, method, in, out, grpc.Header(&header), grpc.Trailer(&trailer))
	if err == nil && p.observer != nil {
		p.observer(method, in.b, out.b)
	}
	if c.dropReply {
		p.stats.Add(FaultDropReply)
		sleepCtx(ctx, dropWait)
		return status.Error(codes.Unavailable, "faulttest proxy: reply lost")
	}
	if err != nil {
		return err
	}
	if len(header) > 0 {
		_ = stream.SetHeader(header)
	}
	if len(trailer) > 0 {
		stream.SetTrailer(trailer)
	}
	return stream.SendMsg(out)
}

// stripTransport drops the pseudo and transport headers that must not be
// forwarded as application metadata.
func stripTransport(md metadata.MD) metadata.MD {
	out := metadata.MD{}
	for k, v := range md {
		if strings.HasPrefix(k, ":") || k == "content-type" || k == "user-agent" || k == "te" || k == "grpc-timeout" || k == "authority" {
			continue
		}
		out[k] = v
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// trackingListener remembers accepted connections so that one can be
// reset.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

func (l *trackingListener) resetOne(i int) bool {
	l.mu.Lock()
	var all []net.Conn
	for c := range l.conns {
		all = append(all, c)
	}
	l.mu.Unlock()
	if len(all) == 0 {
		return false
	}
	c := all[i%len(all)]
	if tc, ok := c.(*trackedConn); ok {
		if t, ok := tc.Conn.(*net.TCPConn); ok {
			_ = t.SetLinger(0)
		}
	}
	_ = c.Close()
	return true
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
