package faults

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// The stages of the TDS faults. They read their direction as TDS packets
// (MS-TDS §2.2.3) and pass TLS records (a login-only session's handshake
// and LOGIN7) through untouched. The client's stage sees each request
// message; the server's stage sees each reply message; between them a
// queue (reqQueue) says, in order, what to do with each reply: a client
// request gets exactly one reply message (§2.2.1), so the Nth request
// queued matches the Nth reply.

// maxHeldRequest bounds a client message held whole while the stage
// decides on it: a larger one (bulk data, a huge batch) passes unmatched.
const maxHeldRequest = 1 << 20

// maxCountedResult bounds the result kept to count rows (cut_result rows).
const maxCountedResult = 4 << 20

// noOpBatch replaces a request answered with an error: the server still
// gets one request (so it answers once, in order), and it has no effect.
// A deadlock victim's transaction is rolled back by the real server
// (1205), so that one rolls back.
const (
	noOpBatch    = "-- tdsproxy: request answered by a tds_error rule"
	rollbackOnly = "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION -- tdsproxy: deadlock victim (tds_error 1205)"
)

// replyPlan is what to do with one reply message.
type replyPlan struct {
	replace *tds.ServerMessage // answer with this error instead
	cut     bool               // cut_result: count this reply
}

// reqQueue holds the plans of the requests sent and not yet answered.
type reqQueue struct {
	mu sync.Mutex
	q  []replyPlan
	// attn counts ATTENTION packets forwarded and not yet acknowledged.
	attn int
}

func (q *reqQueue) push(p replyPlan) {
	q.mu.Lock()
	q.q = append(q.q, p)
	q.mu.Unlock()
}

func (q *reqQueue) pop() replyPlan {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q) == 0 {
		return replyPlan{}
	}
	p := q.q[0]
	q.q = q.q[1:]
	return p
}

func (q *reqQueue) attention(delta int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.attn = max(q.attn+delta, 0)
	return q.attn
}

// framer cuts a direction's bytes into units: whole TDS packets, or whole
// TLS records (content types 20..23 with major version 3, RFC 8446 §5.1),
// which a TDS packet type (1..18) cannot start with.
type framer struct {
	pend   []byte
	broken bool // not TDS: pass everything from now on
}

// next returns the next complete unit, or nil.
func (f *framer) next() (unit []byte, isTLS bool) {
	if f.broken || len(f.pend) < 5 {
		return nil, false
	}
	if f.pend[0] >= 20 && f.pend[0] <= 23 && f.pend[1] == 3 {
		n := 5 + (int(f.pend[3])<<8 | int(f.pend[4]))
		if len(f.pend) < n {
			return nil, false
		}
		u := f.pend[:n]
		f.pend = f.pend[n:]
		return u, true
	}
	if len(f.pend) < tds.HeaderLen {
		return nil, false
	}
	h, err := tds.ParseHeader(f.pend)
	if err != nil || int(h.Length) < tds.HeaderLen {
		f.broken = true
		return nil, false
	}
	if len(f.pend) < int(h.Length) {
		return nil, false
	}
	u := f.pend[:h.Length]
	f.pend = f.pend[h.Length:]
	return u, false
}

// feed appends a chunk (copied: a stage never keeps the caller's chunk).
func (f *framer) feed(chunk []byte) {
	if len(f.pend) == 0 {
		f.pend = append(f.pend[:0], chunk...)
		return
	}
	f.pend = append(f.pend, chunk...)
}

// flushBroken emits what is pending once the stream is not TDS.
func (f *framer) flushBroken(emit func([]byte) error) error {
	if !f.broken || len(f.pend) == 0 {
		return nil
	}
	b := f.pend
	f.pend = nil
	return emit(b)
}

// forward is a Forward for stages that work packet by packet: it feeds
// chunk, passes each complete TLS record as it is (a stage reads TDS, not
// what TLS hides), and hands each complete TDS packet to packet. packet
// ends the chunk early by returning a Cut, an error or stop (what is still
// pending is then the stage's to deal with); otherwise the incomplete tail
// is kept for the next chunk, and a stream found not to be TDS is passed.
func (f *framer) forward(chunk []byte, emit func([]byte) error, packet func(u []byte) (cut *proxy.Cut, stop bool, err error)) (*proxy.Cut, error) {
	f.feed(chunk)
	for {
		u, isTLS := f.next()
		if u == nil {
			break
		}
		if isTLS {
			if err := emit(u); err != nil {
				return nil, err
			}
			continue
		}
		if cut, stop, err := packet(u); err != nil || cut != nil || stop {
			return cut, err
		}
	}
	f.compact()
	return nil, f.flushBroken(emit)
}

// compact keeps the pending tail in a buffer of its own.
func (f *framer) compact() {
	if len(f.pend) == 0 {
		f.pend = f.pend[:0]
		return
	}
	f.pend = append([]byte(nil), f.pend...)
}

// attachTDS builds the rule's stages for this connection.
func (c *connDecider) attachTDS(cr *connRule, rec *proxy.Record) proxy.Verdict {
	t := cr.r.tds
	o := t.opts
	inject := func(action string) {
		if c.d.e.OnInject != nil {
			c.d.e.OnInject(c.d.name, cr.r.spec.Name, "", proxy.PhaseEstablished, action)
		}
	}
	var user, db, server string
	if rec.Login != nil {
		user, db, server = rec.Login.User, rec.Login.Database, rec.Login.Server
	}
	v := proxy.Verdict{Action: t.fault.Name}
	q := &reqQueue{}
	switch {
	case t.fault.Name == TDSError && o.At == "login":
		n, ok := t.take()
		if !ok {
			return pass(fmt.Sprintf("times: %d used", o.Times))
		}
		m := o.known.message(user, db, server)
		v.Detail = fmt.Sprintf("login answered with error %d%s", m.Number, t.timesText(n))
		v.Stages = []proxy.DirectedStage{{Dir: proxy.ServerToClient, Stage: &loginReplace{msg: m}}}
	case t.fault.Name == TDSError:
		m := o.known.message(user, db, server)
		v.Action = proxy.ActionArmed
		v.Detail = fmt.Sprintf("tds_error %d for requests matching %q", m.Number, o.Query)
		v.Stages = []proxy.DirectedStage{
			{Dir: proxy.ClientToServer, Stage: &requestStage{q: q, t: t, plan: func() replyPlan { return replyPlan{replace: &m} }, onHit: inject}},
			{Dir: proxy.ServerToClient, Stage: &replyStage{q: q}},
		}
	case t.fault.Name == TDSRedirect:
		n, ok := t.take()
		if !ok {
			return pass(fmt.Sprintf("times: %d used", o.Times))
		}
		v.Detail = fmt.Sprintf("login routed to %s:%d%s", o.routing.Server, o.routing.Port, t.timesText(n))
		v.Stages = []proxy.DirectedStage{{Dir: proxy.ServerToClient, Stage: &loginRedirect{to: o.routing}}}
	case t.fault.Name == TDSCutResult:
		v.Action = proxy.ActionArmed
		what := fmt.Sprintf("%d rows", o.Rows)
		if o.Bytes > 0 {
			what = fmt.Sprintf("%d bytes", o.Bytes)
		}
		v.Detail = fmt.Sprintf("cut_result after %s of results matching %q", what, o.Query)
		v.Stages = []proxy.DirectedStage{
			{Dir: proxy.ClientToServer, Stage: &requestStage{q: q, t: t, plan: func() replyPlan { return replyPlan{cut: true} }, onHit: inject}},
			{Dir: proxy.ServerToClient, Stage: &replyStage{q: q, rows: o.Rows, bytes: o.Bytes, style: cr.r.style}},
		}
	case t.fault.Name == TDSIdleKill:
		v.Action = proxy.ActionArmed
		v.Detail = "idle_kill after " + o.Idle.String()
		if o.onlyTx {
			v.Detail += " inside a transaction"
		}
		st := &idleState{idle: o.Idle, onlyTx: o.onlyTx, style: cr.r.style, clock: c.d.e.clock}
		st.touch()
		v.Stages = []proxy.DirectedStage{
			{Dir: proxy.ClientToServer, Stage: &idleStage{st: st}},
			{Dir: proxy.ServerToClient, Stage: &idleStage{st: st, replies: o.onlyTx}},
		}
	case t.fault.Name == TDSAttention:
		v.Action = proxy.ActionArmed
		v.Detail = "attention " + o.Mode
		if o.Mode == "delay" {
			v.Detail += " " + o.Delay.String()
		}
		v.Stages = []proxy.DirectedStage{
			{Dir: proxy.ClientToServer, Stage: &requestStage{q: q, t: t, attnDrop: o.Mode == "drop", onHit: inject}},
			{Dir: proxy.ServerToClient, Stage: &replyStage{q: q, attnDelay: o.Delay}},
		}
	}
	return v
}

// requestStage reads the client's messages: it queues a plan for each
// request, rewrites the ones a tds_error answers (the server gets a
// harmless batch instead), and drops ATTENTION packets for attention
// mode drop.
type requestStage struct {
	f     framer
	q     *reqQueue
	t     *tdsRule
	plan  func() replyPlan // the plan for a matching request; nil: none
	onHit func(action string)

	attnDrop bool

	held     []byte // the packets of the message being read
	payload  []byte
	typ      tds.PacketType
	first    tds.Header
	overflow bool
}

func (s *requestStage) Forward(_ context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	return s.f.forward(chunk, emit, func(u []byte) (*proxy.Cut, bool, error) {
		return nil, false, s.packet(u, emit)
	})
}

func (s *requestStage) packet(u []byte, emit func([]byte) error) error {
	h, _ := tds.ParseHeader(u)
	if h.Type == tds.PacketAttention {
		if s.attnDrop {
			if s.onHit != nil {
				s.onHit(TDSAttention)
			}
			return nil
		}
		s.q.attention(1)
		return emit(u)
	}
	if len(s.held) == 0 && !s.overflow {
		s.typ, s.first = h.Type, h
	}
	if s.overflow {
		if h.Status.EOM() {
			s.overflow = false
			s.q.push(replyPlan{})
		}
		return emit(u)
	}
	s.held = append(s.held, u...)
	s.payload = append(s.payload, u[tds.HeaderLen:]...)
	if len(s.held) > maxHeldRequest {
		held := s.held
		s.held, s.payload = nil, nil
		if h.Status.EOM() {
			s.q.push(replyPlan{})
		} else {
			s.overflow = true
		}
		return emit(held)
	}
	if !h.Status.EOM() {
		return nil
	}
	held, payload := s.held, s.payload
	s.held, s.payload = nil, nil
	p := replyPlan{}
	if s.plan != nil && s.matches(s.typ, payload) {
		if _, ok := s.t.take(); ok {
			p = s.plan()
		}
	}
	s.q.push(p)
	if p.cut && s.onHit != nil {
		s.onHit(TDSCutResult)
	}
	if p.replace == nil {
		return emit(held)
	}
	if s.onHit != nil {
		s.onHit(TDSError)
	}
	text := noOpBatch
	if p.replace.Number == 1205 {
		text = rollbackOnly
	}
	// The first packet's status bits (RESETCONNECTION) go with the
	// replacement, so the server's session state follows the client's.
	w := tds.Writer{PacketSize: tds.DefaultPacketSize, SPID: s.first.SPID}
	return emit(w.AppendMessage(nil, tds.PacketSQLBatch, s.first.Status, tds.ReplaceRequest(payload, text)))
}

// matches applies the rule's query to a SQL batch's text or an RPC's
// procedure name; with no query, every batch and RPC matches.
func (s *requestStage) matches(t tds.PacketType, payload []byte) bool {
	var subject string
	switch t {
	case tds.PacketSQLBatch:
		text, err := tds.ParseSQLBatch(payload)
		if err != nil {
			return false
		}
		subject = text
	case tds.PacketRPC:
		name, err := tds.ParseRPCName(payload)
		if err != nil {
			return false
		}
		subject = name
	default:
		return false
	}
	re := s.t.opts.queryRE
	return re == nil || re.MatchString(subject)
}

// replyStage reads the server's replies and acts on each as its request's
// plan says: replace it with an error, count it and cut the connection,
// or hold an attention acknowledgement.
type replyStage struct {
	f framer
	q *reqQueue

	rows, bytes int64
	style       proxy.CloseStyle
	attnDelay   time.Duration

	inReply bool
	plan    replyPlan
	spid    uint16
	seen    int64  // bytes of the counted reply so far
	result  []byte // payload of the counted reply, for rows
}

func (s *replyStage) Forward(ctx context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	return s.f.forward(chunk, emit, func(u []byte) (*proxy.Cut, bool, error) {
		cut, err := s.packet(ctx, u, emit)
		return cut, false, err
	})
}

func (s *replyStage) packet(ctx context.Context, u []byte, emit func([]byte) error) (*proxy.Cut, error) {
	h, _ := tds.ParseHeader(u)
	if !s.inReply {
		s.inReply = true
		s.plan = s.q.pop()
		s.seen, s.result = 0, s.result[:0]
	}
	eom := h.Status.EOM()
	if eom {
		s.inReply = false
	}
	switch {
	case s.plan.replace != nil:
		if !eom {
			return nil, nil
		}
		return nil, emit(tds.ErrorReply(*s.plan.replace, 0, h.SPID))
	case s.plan.cut:
		return s.count(u, emit)
	}
	if eom && s.attnDelay > 0 && s.q.attention(0) > 0 && endsWithAttnAck(u[tds.HeaderLen:]) {
		s.q.attention(-1)
		t := time.NewTimer(s.attnDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	return nil, emit(u)
}

// count passes a counted reply on until its rows or bytes reach the
// limit, then cuts the connection there.
func (s *replyStage) count(u []byte, emit func([]byte) error) (*proxy.Cut, error) {
	if s.bytes > 0 {
		left := s.bytes - s.seen
		if int64(len(u)) < left {
			s.seen += int64(len(u))
			return nil, emit(u)
		}
		if err := emit(u[:left]); err != nil {
			return nil, err
		}
		return &proxy.Cut{Style: s.style, Reason: fmt.Sprintf("cut_result after %d bytes", s.bytes)}, nil
	}
	if len(s.result) < maxCountedResult {
		s.result = append(s.result, u[tds.HeaderLen:]...)
	}
	res, _ := tds.ParseResult(s.result)
	if err := emit(u); err != nil {
		return nil, err
	}
	if res != nil && int64(len(res.Rows)) >= s.rows {
		return &proxy.Cut{Style: s.style, Reason: fmt.Sprintf("cut_result after %d rows", len(res.Rows))}, nil
	}
	return nil, nil
}

// endsWithAttnAck reports whether a reply packet ends with a DONE token
// carrying DONE_ATTN (§2.2.7.6), the server's acknowledgement of a cancel.
func endsWithAttnAck(p []byte) bool {
	if len(p) < tds.DoneLen {
		return false
	}
	d, err := tds.ParseDone(p[len(p)-tds.DoneLen:])
	return err == nil && d.Status&tds.DoneAttn != 0
}

// idleState is idle_kill's per-connection state, shared by the stages of
// both directions.
type idleState struct {
	idle   time.Duration
	onlyTx bool
	style  proxy.CloseStyle
	clock  Clock

	mu    sync.Mutex
	last  time.Time // last byte either way
	inTx  bool      // a transaction is open (ENVCHANGE begin seen)
	bound bool
}

func (st *idleState) touch() {
	st.mu.Lock()
	st.last = st.clock.Now()
	st.mu.Unlock()
}

// watch sleeps until the connection has been idle for st.idle (inside a
// transaction, with in_transaction), then closes it; it ends with ctx.
func (st *idleState) watch(ctx context.Context, closeConn func(*proxy.Cut)) {
	wait := st.idle
	for st.clock.Sleep(ctx, wait) == nil {
		st.mu.Lock()
		idle := st.clock.Now().Sub(st.last)
		armed := !st.onlyTx || st.inTx
		st.mu.Unlock()
		switch {
		case armed && idle >= st.idle:
			what := "idle"
			if st.onlyTx {
				what = "idle inside a transaction"
			}
			closeConn(&proxy.Cut{Style: st.style, Reason: fmt.Sprintf("idle_kill: %s for %v", what, idle.Round(time.Millisecond))})
			return
		case armed:
			wait = st.idle - idle
		default:
			wait = st.idle
		}
	}
}

// idleStage passes bytes on unchanged, noting when they passed; the
// server's stage also follows the transaction state when in_transaction
// asks for it.
type idleStage struct {
	st      *idleState
	replies bool
	f       framer
	msg     []byte
	over    bool
}

var _ proxy.StageCloser = (*idleStage)(nil)

// BindClose starts the idle watch once per connection.
func (s *idleStage) BindClose(ctx context.Context, closeConn func(*proxy.Cut)) {
	s.st.mu.Lock()
	first := !s.st.bound
	s.st.bound = true
	s.st.mu.Unlock()
	if first {
		go s.st.watch(ctx, closeConn)
	}
}

func (s *idleStage) Forward(_ context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	s.st.touch()
	if err := emit(chunk); err != nil {
		return nil, err
	}
	if s.replies {
		s.follow(chunk)
	}
	s.st.touch()
	return nil, nil
}

// follow reads the server's replies for ENVCHANGE begin, commit and
// rollback transaction (MS-TDS §2.2.7.9 types 8, 9, 10).
func (s *idleStage) follow(chunk []byte) {
	s.f.feed(chunk)
	defer s.f.compact()
	for {
		u, isTLS := s.f.next()
		if u == nil || isTLS {
			if u == nil {
				return
			}
			continue
		}
		h, _ := tds.ParseHeader(u)
		if len(s.msg)+len(u) > maxCountedResult {
			s.over = true
		}
		if !s.over {
			s.msg = append(s.msg, u[tds.HeaderLen:]...)
		}
		if !h.Status.EOM() {
			continue
		}
		if !s.over {
			res, _ := tds.ParseResult(s.msg)
			if res != nil {
				s.st.mu.Lock()
				for _, e := range res.EnvChanges {
					switch e.Type {
					case tds.EnvBeginTran:
						s.st.inTx = true
					case tds.EnvCommitTran, tds.EnvRollbackTran:
						s.st.inTx = false
					}
				}
				s.st.mu.Unlock()
			}
		}
		s.msg, s.over = s.msg[:0], false
	}
}
