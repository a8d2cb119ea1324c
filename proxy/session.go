package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
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
	readers  [2]*dirReader
	counted  bool // holds a slot of the proxy's WaitGroup

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
	d := net.Dialer{Timeout: s.p.dialTimeout()}
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
	closed := s.closed
	s.mu.Unlock()
	if closed { // the proxy closed while we dialled
		up.Close()
		s.closeConn(s.client, false)
		return nil, false
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
	defer s.directionDone()
	s.relay(ClientToServer, s.client, s.server)
	// The client's reader ends a FIN close the proxy began (drainClient).
	s.drainClient()
}
func (s *session) relayServerToClient() {
	defer s.directionDone()
	s.relay(ServerToClient, s.server, s.client)
}

// maxEarly bounds what the proxy buffers from a client while it holds the
// client's bytes (delayed-accept, a held client phase): a PRELOGIN or
// ClientHello is a few KiB.
const maxEarly = 64 << 10

// holdClient holds the client for d while watching it: it forwards nothing,
// but keeps reading the client (bounded), so that a client giving up during
// the hold is seen at once, with how long it waited, and the upstream side
// is released at once. It is called by the client's reader only (the
// session goroutine before the directions start, or the client-to-server
// direction). It returns what the client sent meanwhile, or false if the
// connection ended.
func (s *session) holdClient(d time.Duration) ([]byte, bool) {
	deadline := time.Now().Add(d)
	defer s.client.SetReadDeadline(time.Time{})
	var early []byte
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for len(early) < maxEarly {
		if s.finWait.Load() || s.ctx.Err() != nil {
			return nil, false
		}
		_ = s.client.SetReadDeadline(deadline)
		n, err := s.client.Read((*bp)[:min(len(*bp), maxEarly-len(early))])
		if s.finWait.Load() || s.ctx.Err() != nil {
			// The proxy closed the connection meanwhile (a fault, the API,
			// shutdown, negotiation_timeout); with a FIN, drainClient takes
			// over the socket.
			return nil, false
		}
		if n > 0 {
			early = append(early, (*bp)[:n]...)
			s.mu.Lock()
			s.lastRead[ClientToServer] = s.p.now()
			s.mu.Unlock()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return early, true
		}
		if err != nil {
			kind, ours := classify(err)
			if !ours {
				s.setClose(SideClient, kind, reasonOf(kind, err))
			}
			// The client left: let the upstream go now, not when the hold
			// would have ended.
			s.closeBoth()
			return nil, false
		}
	}
	// The client sent more than a hello while unanswered: wait out the
	// hold without reading further.
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-t.C:
		return early, true
	case <-s.ctx.Done():
		return nil, false
	}
}

// pipe runs direction dir while the watcher looks (or stages shape it),
// then hands the direction to a fresh goroutine for the relay. The handoff
// is for memory: parsing (x509, JA4, TLS records) grows this goroutine's
// stack to 8 KiB and more, and the runtime shrinks a stack only at a GC,
// which an idle proxy rarely runs; the relay's goroutine starts small and
// stays small, and this stack is free for the next connection's use.
func (s *session) pipe(dir Direction, src, dst net.Conn) {
	if !s.negotiate(dir, src, dst) {
		if dir == ClientToServer {
			s.drainClient()
		}
		s.directionDone()
		return
	}
	if dir == ClientToServer {
		go s.relayClientToServer()
	} else {
		go s.relayServerToClient()
	}
}

// negotiate forwards dir's chunks through the watcher and the stages until
// neither wants to see more. It reports false when the direction ended.
func (s *session) negotiate(dir Direction, src, dst net.Conn) bool {
	for {
		if dir == ClientToServer && len(s.early) > 0 {
			// Bytes read while a hold watched the client go through the
			// same path as any other chunk.
			if !s.stepEarly(dst) {
				return false
			}
			continue
		}
		if !s.watching.Load() && s.stagesFor(dir) == nil {
			return true
		}
		more, relay := s.step(dir, src, dst)
		if relay {
			return true
		}
		if !more {
			return false
		}
	}
}

// stepEarly forwards what the client sent during a hold (s.early), as
// step does a chunk read from the socket.
func (s *session) stepEarly(dst net.Conn) bool {
	buf := s.early
	s.early = nil
	if s.watching.Load() {
		v := s.observe(ClientToServer, buf)
		if !s.applyBeforeForward(v, ClientToServer) {
			return false
		}
	}
	return s.forward(ClientToServer, dst, buf, s.stagesFor(ClientToServer))
}

// relay moves dir's bytes after negotiation, blind. On Linux (relayBursts)
// each message is read into a pooled buffer and written on, and the rest
// of a burst that fills the buffer is spliced kernel to kernel; elsewhere
// relayCopy reads and writes through user space (docs/architecture.md,
// "Platforms").
func (s *session) relay(dir Direction, src, dst net.Conn) {
	if dir == ClientToServer && len(s.early) > 0 && !s.stepEarly(dst) {
		return
	}
	if s.relayBursts(dir, src, dst) {
		return
	}
	s.relayCopy(dir, src, dst)
}

// relayCopy is the relay where splice does not apply (not Linux, or not a
// TCP socket): a read and a write per chunk, each error blamed on the
// socket that returned it (io.Copy returns read and write errors alike).
func (s *session) relayCopy(dir Direction, src, dst net.Conn) {
	for {
		bp, n, err, _ := s.readChunk(dir, src)
		if dir == ClientToServer && s.finWait.Load() {
			if bp != nil {
				bufPool.Put(bp)
			}
			return
		}
		if n > 0 {
			if _, werr := dst.Write((*bp)[:n]); werr != nil {
				bufPool.Put(bp)
				s.writeFailed(dir, werr)
				return
			}
			s.bytes[dir].Add(int64(n))
		}
		if bp != nil {
			bufPool.Put(bp)
		}
		if err != nil {
			s.readEnded(dir, err)
			return
		}
	}
}

// step reads one chunk from src into a pooled buffer, shows it to the
// watcher and forwards it; the buffer goes back to the pool before step
// returns. more is false when the direction must stop; relay is true when
// the negotiation ended while step waited, with nothing read.
func (s *session) step(dir Direction, src, dst net.Conn) (more, relay bool) {
	bp, n, err, relay := s.readChunk(dir, src)
	if relay {
		return true, true
	}
	if bp != nil {
		defer bufPool.Put(bp)
	}
	if dir == ClientToServer && s.finWait.Load() {
		// The proxy has closed the connection: what the client still sends
		// is drained, not forwarded (drainClient).
		return false, false
	}
	if n > 0 {
		buf := (*bp)[:n]
		staged := s.stagesFor(dir)
		if s.watching.Load() {
			v := s.observe(dir, buf)
			if !s.applyBeforeForward(v, dir) {
				return false, false
			}
			staged = s.stagesFor(dir)
		}
		if !s.forward(dir, dst, buf, staged) {
			return false, false
		}
	}
	if err != nil {
		s.readEnded(dir, err)
		return false, false
	}
	return true, false
}

// forward writes chunk to dst, through the direction's stages if any. It
// reports false when the direction must stop.
func (s *session) forward(dir Direction, dst net.Conn, chunk []byte, stages []Stage) bool {
	emit := func(b []byte) error {
		if _, err := dst.Write(b); err != nil {
			return err
		}
		s.bytes[dir].Add(int64(len(b)))
		return nil
	}
	if len(stages) == 0 {
		if err := emit(chunk); err != nil {
			s.writeFailed(dir, err)
			return false
		}
		return true
	}
	cut, err := runStages(s.ctx, stages, chunk, emit)
	if err != nil {
		if s.ctx.Err() == nil {
			s.writeFailed(dir, err)
		}
		return false
	}
	if cut != nil {
		s.cut(dir, cut)
		return cut.After > 0
	}
	return true
}

// runStages passes chunk through stages[0], whose output goes through
// stages[1], and so on; the last stage's output is emitted.
func runStages(ctx context.Context, stages []Stage, chunk []byte, emit func([]byte) error) (*Cut, error) {
	if len(stages) == 0 {
		return nil, emit(chunk)
	}
	var firstCut *Cut
	next := func(b []byte) error {
		c, err := runStages(ctx, stages[1:], b, emit)
		if c != nil && firstCut == nil {
			firstCut = c
		}
		return err
	}
	c, err := stages[0].Forward(ctx, chunk, next)
	if c != nil && firstCut == nil {
		firstCut = c
	}
	return firstCut, err
}

func (s *session) stagesFor(dir Direction) []Stage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stages[dir]
}

// applyBeforeForward acts on a verdict before the chunk that triggered it is
// forwarded: delay, attach stages, or close. It reports false when the
// connection was closed.
func (s *session) applyBeforeForward(v Verdict, dir Direction) bool {
	if v.Delay > 0 && dir == ClientToServer {
		// This goroutine is the client's reader: hold while reading the
		// client, so a client giving up is seen when it leaves (a delay
		// before a close included).
		more, ok := s.holdClient(v.Delay)
		if !ok {
			return false
		}
		s.early = append(s.early, more...)
		s.releaseHold()
	} else if v.Delay > 0 {
		// The client-to-server direction watches the client meanwhile and
		// cancels s.ctx if it leaves (readEnded).
		s.waiting.Store(true)
		t := time.NewTimer(v.Delay)
		select {
		case <-t.C:
			s.waiting.Store(false)
		case <-s.ctx.Done():
			t.Stop()
			return false
		}
		s.releaseHold()
	}
	if len(v.Stages) > 0 {
		s.mu.Lock()
		for _, ds := range v.Stages {
			s.stages[ds.Dir] = append(s.stages[ds.Dir], ds.Stage)
		}
		s.mu.Unlock()
	}
	if v.Close {
		s.inject(v)
		return false
	}
	return true
}

// inject closes the connection as a verdict asks: the client sees the close
// in the configured style, exactly where the emulated peer would close.
func (s *session) inject(v Verdict) {
	style := v.Style
	if style == "" {
		style = StyleRST
	}
	kind := CloseRST
	switch style {
	case StyleFIN:
		kind = CloseFIN
	case StyleAlert:
		kind = CloseAlert
	}
	s.setClose(SideProxy, kind, strings.TrimSuffix("fault "+v.Rule+": "+v.Detail, ": "))
	s.mu.Lock()
	s.closed = true
	srv := s.server
	wrapped := s.rec.TLS != nil && s.rec.TLS.Wrapped || s.rec.Protocol == ProtocolTDS7
	s.mu.Unlock()
	s.cancel()
	switch style {
	case StyleAlert:
		_ = s.client.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = s.client.Write(alertBytes(v.Alert, wrapped))
		s.finClient()
	case StyleFIN:
		s.finClient()
	default:
		resetConn(s.client)
	}
	if srv != nil {
		srv.Close()
	}
}

// Bounds of a FIN close's drain (drainClient).
const (
	finLinger    = 2 * time.Second
	finDrainCap  = 1 << 20
	finDrainRead = 32 << 10
)

// finClient begins a FIN close of the client: the FIN goes out now
// (shutdown(SHUT_WR)); the client's reader then drains what the client
// still sends and closes the socket (drainClient).
//
// Closing a socket outright while the client's bytes sit unread in its
// receive queue (the PRELOGIN every client sends first, the rest of an
// upload) makes the kernel send RST instead of FIN (RFC 1122 4.2.2.13,
// RFC 2525 2.17): the client would read "connection reset" (10054) where
// the record says fin.
func (s *session) finClient() {
	s.finAt.Store(time.Now().UnixNano())
	s.finWait.Store(true)
	// Bounds the reader's wait whatever it is doing (a hold, the relay).
	_ = s.client.SetReadDeadline(time.Now().Add(finLinger))
	s.closeWrite(s.client)
}

// drainClient ends a FIN close begun by finClient; only the client's reader
// calls it. It reads and discards what the client sends until the client
// closes, finLinger after the FIN or finDrainCap bytes, whichever is first,
// and then closes the socket. If the client was still sending then, the
// close is an RST after the FIN, and the record says so.
func (s *session) drainClient() {
	if !s.finWait.Load() || !s.drained.CompareAndSwap(false, true) {
		return
	}
	c := s.client
	_ = c.SetReadDeadline(time.Unix(0, s.finAt.Load()).Add(finLinger))
	// Proxy.Close cuts the drain short.
	stop := context.AfterFunc(s.p.ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var total int
	var err error
	for total < finDrainCap {
		var n int
		n, err = c.Read((*bp)[:min(len(*bp), finDrainRead)])
		total += n
		if err != nil {
			break
		}
	}
	clean := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	after := time.Since(time.Unix(0, s.finAt.Load())).Round(time.Millisecond)
	if !clean {
		switch unreadBytes(c) {
		case 0:
		case -1: // not known on this system
			s.amendClose(fmt.Sprintf("FIN sent; the client had not closed %v after it, so the close may have ended with an RST", after))
		default:
			s.amendClose(fmt.Sprintf("FIN sent, then RST: the client was still sending %v after it", after))
		}
	}
	c.Close()
}

// sentText says what a limit's close sends, for a record whose kind says
// why it closed (limit, timeout).
func sentText(style CloseStyle) string {
	if style == StyleFIN {
		return "closed with a FIN"
	}
	return "closed with an RST"
}

// amendClose adds to the recorded close's reason.
func (s *session) amendClose(note string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec.Close == nil {
		return
	}
	if s.rec.Close.Reason == "" {
		s.rec.Close.Reason = note
	} else {
		s.rec.Close.Reason += "; " + note
	}
}

// closeConn closes c (with an RST if reset), unless c is the client and a
// FIN close of it is under way: then the client's reader owns the socket.
func (s *session) closeConn(c net.Conn, reset bool) {
	if c == s.client && s.finWait.Load() && !reset {
		return
	}
	if reset {
		resetConn(c)
	} else {
		c.Close()
	}
}

// cut closes the connection on a stage's request, now or after c.After.
func (s *session) cut(dir Direction, c *Cut) {
	do := func() {
		s.inject(Verdict{Close: true, Style: c.Style, Rule: "stage", Detail: c.Reason})
	}
	if c.After <= 0 {
		do()
		return
	}
	t := time.AfterFunc(c.After, do)
	go func() { <-s.ctx.Done(); t.Stop() }()
}

// observe shows a chunk to the watcher and acts on the phases it completes.
func (s *session) observe(dir Direction, b []byte) Verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	prevPhase, prevRead := s.rec.Phase, s.lastRead[dir]
	s.lastRead[dir] = s.p.now()
	if s.p.chunkHook != nil {
		s.p.chunkHook(dir, b)
	}
	evs := s.feedSafely(dir, b)
	if s.w.done {
		s.stopWatchingLocked()
		// The watcher gets no more bytes: let its last events (and the
		// parsed hellos they point to) go with this call.
		s.w.events = nil
	}
	defer s.logEvents(evs)
	v := s.decideLocked(evs)
	if v.Delay > 0 && len(evs) > 0 && !v.Close {
		// The bytes that completed these phases are held back: for the
		// peer they have not happened yet. A close during the hold belongs
		// to the phase before, with this side still owing its answer.
		s.held = &heldPhase{phase: s.rec.Phase, dir: dir}
		s.rec.Phase, s.lastRead[dir] = prevPhase, prevRead
		for i := range s.rec.Phases {
			for _, ev := range evs {
				if s.rec.Phases[i].Phase == ev.Phase && s.rec.Phases[i].Held == 0 {
					s.rec.Phases[i].Held = v.Delay
				}
			}
		}
	}
	return v
}

// heldPhase is a phase whose bytes a delay verdict holds back.
type heldPhase struct {
	phase Phase
	dir   Direction
}

// releaseHold marks the held phase reached once its bytes go on.
func (s *session) releaseHold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		return
	}
	if s.rec.Close == nil {
		s.rec.Phase = s.held.phase
		s.lastRead[s.held.dir] = s.p.now()
	}
	s.held = nil
}

// stopWatchingLocked switches the session to the blind relay.
func (s *session) stopWatchingLocked() {
	s.watching.Store(false)
	if s.deadline != nil {
		s.deadline.Stop()
	}
}

// negotiationTimedOut closes a connection still negotiating past the
// deadline: a slowloris peer must not hold a connection forever.
func (s *session) negotiationTimedOut() {
	if !s.watching.Load() {
		return
	}
	d := s.p.cfg.negotiationTimeout()
	// The kind says why; the reason also says what went on the wire.
	s.setClose(SideProxy, CloseTimeout, fmt.Sprintf("negotiation not over after %v (negotiation_timeout); %s", d, sentText(s.p.cfg.limitStyle())))
	s.mu.Lock()
	s.w.note("negotiation timeout")
	s.mu.Unlock()
	s.inject(Verdict{Close: true, Style: s.p.cfg.limitStyle(), Rule: "negotiation_timeout"})
}

// refuse closes a connection at accept because of a limit, and records it.
//
// It runs on the accept loop; a FIN close drains the client on its own
// goroutine.
func (s *session) refuse(reason string, style CloseStyle) {
	s.setClose(SideProxy, CloseLimit, reason+"; "+sentText(style))
	s.cancel()
	if style == StyleFIN {
		s.finClient()
		go func() {
			s.drainClient()
			s.finish()
		}()
		return
	}
	resetConn(s.client)
	s.finish()
}

// feedSafely runs the watcher and turns a bug in it into a parse issue: a
// parser must never take a production connection down with it. This is a
// last-resort net, not control flow; the watcher returns errors.
func (s *session) feedSafely(dir Direction, b []byte) (evs []Event) {
	defer func() {
		if r := recover(); r != nil {
			s.w.issue(dir, "watcher", fmt.Errorf("internal error: %v", r))
			s.w.stopWatching("internal error in the watcher")
			s.p.log.Error("watcher panicked; relaying without parsing", zap.Uint64("conn", s.id), zap.Any("panic", r))
			evs = nil
		}
	}()
	return s.w.feed(dir, b)
}

// decideLocked asks the connection's decider about each event in order and
// merges the answers: delays add up, stages accumulate, the first close wins.
func (s *session) decideLocked(evs []Event) Verdict {
	var out Verdict
	if s.cd == nil {
		return out
	}
	for i := range evs {
		v := s.cd.Decide(&evs[i], &s.rec)
		if v.Rule != "" && room(&s.rec, len(s.rec.Faults)) {
			s.rec.Faults = append(s.rec.Faults, FaultEvent{
				Rule: v.Rule, Scenario: v.Scenario, Phase: evs[i].Phase,
				Action: v.Action, Detail: v.Detail, At: s.p.now().Sub(s.rec.Start),
			})
		}
		out.Delay += v.Delay
		out.Stages = append(out.Stages, v.Stages...)
		if v.Close {
			out.Close, out.Style, out.Alert = true, v.Style, v.Alert
			out.Rule, out.Scenario, out.Detail, out.Action = v.Rule, v.Scenario, v.Detail, v.Action
			break
		}
	}
	return out
}

func (s *session) logEvents(evs []Event) {
	if len(evs) > 0 && s.p.log.Core().Enabled(zap.DebugLevel) {
		for _, ev := range evs {
			s.p.log.Debug("phase", zap.Uint64("conn", s.id), zap.String("proxy", s.p.cfg.Name),
				zap.String("phase", string(ev.Phase)), zap.Stringer("dir", ev.Dir), zap.Bool("encrypted", ev.Encrypted))
		}
	}
}

// readEnded handles the end of src's stream in direction dir.
func (s *session) readEnded(dir Direction, err error) {
	src, dst := s.ends(dir)
	kind, ours := classify(err)
	if ours {
		// We closed this conn ourselves (the other direction or Close did).
		return
	}
	if dir == ClientToServer && s.finWait.Load() {
		// The proxy closed first; this is the client's answer to our FIN,
		// and drainClient closes the socket.
		return
	}
	if dir == ClientToServer {
		s.mu.Lock()
		holding := s.held != nil || s.waiting.Load()
		s.mu.Unlock()
		if holding || kind != CloseFIN {
			// The client left while the server's bytes are held (a delay
			// verdict), or reset (latency stages too): end the holds now,
			// so the record says when the client left and the upstream is
			// released at once. A FIN otherwise may be a half-close, with
			// what a stage holds still owed to the client.
			defer s.cancel()
		}
	} else if kind != CloseFIN {
		// The server reset: nothing held for it can be delivered.
		defer s.cancel()
	}
	if kind == CloseFIN && s.peerReset(src) {
		// An end of stream from a socket the peer reset: the reset's error
		// went to a write on this socket (the other direction), and the
		// read then finds the stream shut. The peer sent an RST, not a FIN.
		kind = CloseRST
		err = fmt.Errorf("read %s: %w (the reset's error was taken by a write)", dir, syscall.ECONNRESET)
	}
	if s.watching.Load() {
		s.mu.Lock()
		s.w.ended(dir)
		s.mu.Unlock()
	}
	s.setClose(dir.sender(), kind, reasonOf(kind, err))
	switch kind {
	case CloseFIN:
		// A slow_close stage holds the close back for a while first.
		for _, st := range s.stagesFor(dir) {
			if es, ok := st.(EOFStage); ok {
				es.OnEOF(s.ctx)
			}
		}
		// Half-close: pass the FIN on and let the other direction finish.
		s.closeWrite(dst)
	case CloseRST:
		// Pass the reset on: an RST from SQL Server must reach the client as
		// an RST, or 10054 becomes a mere EOF.
		s.closeConn(dst, true)
		src.Close()
	default:
		s.closeConn(src, false)
		s.closeConn(dst, false)
	}
}

// writeFailed handles a failed write to dst: its peer is gone, and the
// direction reading from it will learn how.
func (s *session) writeFailed(dir Direction, err error) {
	src, dst := s.ends(dir)
	kind, ours := classify(err)
	if !ours {
		s.setClose(peer(dir.sender()), kind, "write "+dir.String()+": "+err.Error())
	}
	if s.finWait.Load() {
		// The proxy closed first: a write to the client fails on our own
		// FIN, a write to the server on our close of it. The client's
		// reader drains and closes the client.
		if dst != s.client {
			dst.Close()
		}
		return
	}
	s.closeConn(src, kind == CloseRST)
	dst.Close()
}

func (s *session) ends(dir Direction) (src, dst net.Conn) {
	if dir == ClientToServer {
		return s.client, s.server
	}
	return s.server, s.client
}

// setClose records the first close only: who closed first is what matters.
func (s *session) setClose(by Side, kind CloseKind, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec.Close != nil {
		return
	}
	ci := &CloseInfo{By: by, Kind: kind, Phase: s.rec.Phase, Reason: reason}
	// Who owed the next bytes: the side that did not send last. Only known
	// while the watcher sees the bytes; after negotiation the relay is blind.
	c, sv := s.lastRead[ClientToServer], s.lastRead[ServerToClient]
	if (s.watching.Load() || s.held != nil) && (!c.IsZero() || !sv.IsZero()) {
		if c.After(sv) {
			ci.Awaiting = SideServer
			ci.Silence = s.p.now().Sub(c)
		} else {
			ci.Awaiting = SideClient
			ci.Silence = s.p.now().Sub(sv)
		}
	}
	s.rec.Close = ci
}

func (s *session) closeBoth() {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	srv := s.server
	s.mu.Unlock()
	s.client.Close()
	if srv != nil {
		srv.Close()
	}
}

// finish stamps the record and hands it on.
func (s *session) finish() {
	if s.deadline != nil {
		s.deadline.Stop()
	}
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

// abort closes the connection now, as the proxy (shutdown, Close, the
// admin API): with an RST when reset, else with a FIN that stays a FIN on
// the wire (finClient). It records kind and reason.
func (s *session) abort(kind CloseKind, reset bool, reason string) {
	s.setClose(SideProxy, kind, reason)
	s.cancel()
	s.mu.Lock()
	s.closed = true
	srv := s.server
	s.mu.Unlock()
	if reset {
		resetConn(s.client)
	} else {
		s.finClient()
	}
	if srv != nil {
		s.closeConn(srv, reset)
	}
}

// peer is the other party of a side (the client's is the server).
func peer(sd Side) Side {
	if sd == SideClient {
		return SideServer
	}
	return SideClient
}

// classify maps a read or write error to a close kind; ours is true when the
// error only says that we closed the conn ourselves.
func classify(err error) (kind CloseKind, ours bool) {
	switch {
	case errors.Is(err, io.EOF):
		return CloseFIN, false
	case errors.Is(err, net.ErrClosed):
		return "", true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return CloseRST, false
	case errors.Is(err, os.ErrDeadlineExceeded):
		return CloseTimeout, false
	}
	return CloseError, false
}

func reasonOf(kind CloseKind, err error) string {
	if kind == CloseFIN {
		return ""
	}
	return err.Error()
}

// closeWrite half-closes c, one of the session's sockets, and remembers it.
func (s *session) closeWrite(c net.Conn) {
	s.finSent[s.index(c)].Store(true)
	closeWrite(c)
}

func (s *session) index(c net.Conn) int {
	if c == s.client {
		return 0
	}
	return 1
}

// peerReset reports whether c's peer reset it, when the TCP state can say
// so: only while the proxy has not half-closed c, since a socket whose FIN
// exchange completes (TIME_WAIT) also reads as closed.
func (s *session) peerReset(c net.Conn) bool {
	return !s.finSent[s.index(c)].Load() && tcpReset(c)
}

// closeWrite half-closes c (sends FIN) when it can, else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.Close()
}

// resetConn closes c with an RST: SO_LINGER 0 makes the kernel drop unsent
// data and send RST instead of FIN, which is what a Windows client reports
// as error 10054 (WSAECONNRESET).
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}
