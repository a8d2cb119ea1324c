package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"go.uber.org/zap"
)

// A session's negotiation and forwarding: each direction's chunks pass the
// watcher (and any fault stages) until negotiation is over, then the blind
// relay takes the direction (relay_linux.go splices it). session.go has the
// lifecycle, session_close.go every way a connection ends.

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
	if dir == ServerToClient {
		// A fresh goroutine (the client's grew in connect): stack.go.
		growStack(int(s.id))
	}
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
// "Platforms"). It reports true when the direction parked (park_linux.go):
// its goroutine ends and the direction goes on later on another.
func (s *session) relay(dir Direction, src, dst net.Conn) (parked bool) {
	if dir == ClientToServer && len(s.early) > 0 && !s.stepEarly(dst) {
		return false
	}
	if ok, parked := s.relayBursts(dir, src, dst); ok {
		return parked
	}
	s.relayCopy(dir, src, dst)
	return false
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
		if _, err := s.writeTo(dir, dst, b); err != nil {
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
	s.attachStages(v.Stages)
	if v.Close {
		s.inject(v)
		return false
	}
	return true
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
