package proxy

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// negotiationBuf is the size of a direction's read buffer: for each chunk
// while the watcher looks (or stages shape the bytes), and for each message
// of the relay after (relay_linux.go). Buffers come from bufPool and go back
// after each chunk, so a connection waiting for its peer holds none, and a
// login allocates none in the steady state.
const negotiationBuf = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, negotiationBuf); return &b }}

// session is one client connection and its upstream connection.
type session struct {
	p      *Proxy
	id     uint64
	client net.Conn
	server net.Conn

	mu       sync.Mutex
	rec      Record
	w        *watcher
	lastRead [2]time.Time
	closed   bool // both conns closed

	watching atomic.Bool
	bytes    [2]atomic.Int64
	live     atomic.Int32 // directions still running
	readers  [2]atomic.Pointer[dirReader]
	dstRC    [2]syscall.RawConn // per direction, its destination socket for raw writes (Linux: dstRawConn)
	counted  bool               // holds a slot of the proxy's WaitGroup

	// Fault injection. cd is nil when no rule can touch this connection.
	cd     ConnDecider
	stages [2][]Stage // per direction, guarded by mu
	ctx    context.Context
	cancel context.CancelFunc
	// deadline fires if negotiation is not over in time.
	deadline *time.Timer
	// held is set while a delay verdict holds the bytes of a phase.
	held *heldPhase
	// waiting is set while a delay holds the server's bytes (a delay
	// before a close included), for the client's reader to end it.
	waiting atomic.Bool

	// early is what the client sent while a hold watched it (holdClient);
	// the client's direction forwards it before reading again. Only that
	// direction (or run, before it starts) touches it.
	early []byte

	// finWait is set once the proxy has sent the client its FIN
	// (finClient): from then on the client's socket belongs to whoever
	// reads the client, which drains it and closes it (drainClient).
	finWait atomic.Bool
	finAt   atomic.Int64 // UnixNano of the FIN
	drained atomic.Bool
	// finSent[0] (client) and [1] (server) are set once the proxy has
	// half-closed that socket: its TCP state then says nothing of a reset.
	finSent [2]atomic.Bool
	// keepAlive sets TCP keep-alive once the session has lived a while
	// (keepalive.go).
	keepAlive lazyKeepAlive
}

func newSession(p *Proxy, id uint64, client net.Conn) *session {
	now := p.now()
	s := &session{p: p, id: id, client: client}
	s.rec = Record{
		ID:       id,
		Proxy:    p.cfg.Name,
		Client:   client.RemoteAddr().String(),
		Listener: client.LocalAddr().String(),
		Upstream: p.cfg.Upstream,
		Start:    now,
		Watching: true,
	}
	s.rec.Phase = PhaseAccept
	s.rec.Phases = []PhaseMark{{Phase: PhaseAccept}}
	s.w = newWatcher(&s.rec, p.now, p.cfg.maxNegotiationBuffer())
	s.watching.Store(true)
	s.ctx, s.cancel = context.WithCancel(p.ctx)
	if d := p.cfg.negotiationTimeout(); d > 0 {
		s.deadline = time.AfterFunc(d, s.negotiationTimedOut)
	}
	if p.opts.Decider != nil {
		ci := ConnInfo{ID: id, Proxy: p.cfg.Name, Seq: p.seq.Add(1), At: now}
		if ap, err := netip.ParseAddrPort(s.rec.Client); err == nil {
			ci.Client = ap
		}
		s.cd = p.opts.Decider.Connect(ci)
	}
	return s
}

// run dials the upstream and starts both directions. It does not wait for
// them: the direction that ends last closes the session (directionDone), so
// no goroutine sits parked for the connection's life.
func (s *session) run() {
	// s.ctx, not the proxy's: closing this one connection (admin API) also
	// ends its dial.
	early, ok := s.connect(s.ctx)
	if !ok {
		s.cancel()
		s.drainClient()
		s.finish()
		return
	}
	s.early = early
	s.live.Store(2)
	go s.pipeServerToClient()
	s.pipeClientToServer()
}

// connect applies the accept-time verdict and dials the upstream. It
// returns what the client sent during a held accept, or false when the
// session is over.
func (s *session) connect(ctx context.Context) ([]byte, bool) {
	var early []byte
	// This goroutine negotiates the client's direction next (stack.go).
	growStack(int(s.id))
	s.startKeepAlive()
	if s.cd != nil {
		s.mu.Lock()
		v := s.decideLocked([]Event{{Phase: PhaseAccept, Dir: ClientToServer}})
		s.mu.Unlock()
		if v.Delay > 0 && !v.Close {
			var ok bool
			if early, ok = s.holdClient(v.Delay); !ok {
				return nil, false
			}
			v.Delay = 0
		}
		if !s.applyBeforeForward(v, ClientToServer) {
			return nil, false
		}
	}
	// Keep-alive comes later, if the session lives (keepalive.go).
	d := net.Dialer{Timeout: s.p.dialTimeout(), KeepAlive: -1}
	up, err := d.DialContext(ctx, "tcp", s.p.cfg.Upstream)
	if err != nil {
		if ctx.Err() != nil {
			// The connection was closed (API, shutdown) while we dialled:
			// the client got the close that asked for it.
			return nil, false
		}
		s.setClose(SideProxy, CloseDialFailed, "dial "+s.p.cfg.Upstream+": "+err.Error())
		// The client sees what it would see from a server that refused it.
		resetConn(s.client)
		return nil, false
	}
	s.mu.Lock()
	s.server = up
	closed, keepAlive := s.closed, s.keepAlive.on
	s.mu.Unlock()
	if closed { // the proxy closed while we dialled
		up.Close()
		s.closeConn(s.client, false)
		return nil, false
	}
	if keepAlive { // the session's keep-alive timer fired during the dial
		setKeepAlive(up)
	}
	return early, true
}

// directionDone is called once by each direction when it ends; the last
// one closes both connections and hands the record on.
func (s *session) directionDone() {
	if s.live.Add(-1) == 0 {
		s.closeBoth()
		s.finish()
	}
}

// The directions get named functions so goroutine dumps say which is
// which: pipe* while negotiating, relay* after.
func (s *session) pipeClientToServer() { s.pipe(ClientToServer, s.client, s.server) }
func (s *session) pipeServerToClient() { s.pipe(ServerToClient, s.server, s.client) }
func (s *session) relayClientToServer() {
	if s.relay(ClientToServer, s.client, s.server) {
		return // parked: resumed later by relayDirection
	}
	// The client's reader ends a FIN close the proxy began (drainClient).
	s.drainClient()
	s.directionDone()
}
func (s *session) relayServerToClient() {
	if s.relay(ServerToClient, s.server, s.client) {
		return
	}
	s.directionDone()
}

// relayDirection resumes a parked direction (park_linux.go).
func (s *session) relayDirection(dir Direction) {
	if dir == ClientToServer {
		s.relayClientToServer()
	} else {
		s.relayServerToClient()
	}
}

func (s *session) ends(dir Direction) (src, dst net.Conn) {
	if dir == ClientToServer {
		return s.client, s.server
	}
	return s.server, s.client
}

// markClosed marks the session closed (a dial under way will close its
// conn instead of using it: connect) and returns the upstream conn, nil
// before the dial, for the caller to close.
func (s *session) markClosed() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.server
}

func (s *session) closeBoth() {
	s.cancel()
	srv := s.markClosed()
	s.client.Close()
	if srv != nil {
		srv.Close()
	}
	s.wake()
}

// finish stamps the record and hands it on.
func (s *session) finish() {
	if s.deadline != nil {
		s.deadline.Stop()
	}
	s.forgetParking()
	s.mu.Lock()
	s.rec.End = s.p.now()
	s.rec.BytesClientToServer = s.bytes[ClientToServer].Load()
	s.rec.BytesServerToClient = s.bytes[ServerToClient].Load()
	s.rec.Watching = false
	s.rec.Phases = append(s.rec.Phases, PhaseMark{Phase: PhaseClosed, At: s.rec.End.Sub(s.rec.Start)})
	if s.rec.Close == nil {
		s.rec.Close = &CloseInfo{By: SideProxy, Kind: CloseShutdown, Phase: s.rec.Phase}
	}
	rec := s.rec.Clone()
	s.mu.Unlock()
	s.p.finished(s, rec)
	if s.counted {
		s.p.wg.Done()
	}
}

// snapshot returns a copy of the record so far.
func (s *session) snapshot() *Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rec.Clone()
	r.BytesClientToServer = s.bytes[ClientToServer].Load()
	r.BytesServerToClient = s.bytes[ServerToClient].Load()
	return r
}

func (s *session) index(c net.Conn) int {
	if c == s.client {
		return 0
	}
	return 1
}
