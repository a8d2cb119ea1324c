// Package proxy is tdsproxy's TCP proxy for TDS: listeners, per-connection
// sessions, the negotiation watcher that builds each connection's Record,
// and the relay, which becomes a zero-copy splice once negotiation is over.
//
// In passthrough the bytes forwarded are exactly the bytes received; a
// parse failure is recorded and never disturbs the relay.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Config describes one named proxy: a listen address and one fixed upstream.
// The proxy never connects anywhere a client asks for.
type Config struct {
	// Name identifies the proxy in records, logs and the admin API.
	Name string
	// Listen is the address to accept clients on, e.g. "127.0.0.1:11433".
	Listen string
	// Upstream is the SQL Server to relay to, host:port.
	Upstream string
	// DialTimeout bounds the upstream dial; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxConnections caps the connections open at once; one more is
	// accepted and closed at once in LimitStyle, and recorded. 0 means
	// DefaultMaxConnections; negative means no cap.
	MaxConnections int
	// NegotiationTimeout bounds the time from accept until negotiation is
	// over (login answered) while the proxy watches; past it the proxy
	// closes the connection in LimitStyle (slowloris). 0 means
	// DefaultNegotiationTimeout; negative means none. A fault that delays
	// longer than this is cut short by it. (The config file spells "none"
	// as 0s and "default" as absent: control.ProxyConfigFrom is the one
	// mapping between the two.)
	NegotiationTimeout time.Duration
	// MaxNegotiationBuffer caps what the watcher buffers per direction to
	// reassemble one negotiation message; past it the proxy stops parsing
	// (the connection still flows). 0 means DefaultMaxNegotiationBuffer.
	MaxNegotiationBuffer int
	// LimitStyle is how a limit closes a connection; "" means StyleRST.
	LimitStyle CloseStyle
	// Bridge, when set, makes the proxy terminate TLS on both legs
	// (bridge.go, docs/bridge.md); nil means passthrough.
	Bridge *BridgeConfig
}

// Defaults of Config's zero values. package configs uses these same
// constants for an absent key, so each default is written once.
const (
	DefaultDialTimeout        = 10 * time.Second
	DefaultMaxConnections     = 10000
	DefaultNegotiationTimeout = 60 * time.Second
)

func (c Config) maxConnections() int {
	if c.MaxConnections == 0 {
		return DefaultMaxConnections
	}
	return c.MaxConnections
}

func (c Config) negotiationTimeout() time.Duration {
	if c.NegotiationTimeout == 0 {
		return DefaultNegotiationTimeout
	}
	return c.NegotiationTimeout
}

func (c Config) maxNegotiationBuffer() int {
	if c.MaxNegotiationBuffer <= 0 {
		return DefaultMaxNegotiationBuffer
	}
	return c.MaxNegotiationBuffer
}

func (c Config) limitStyle() CloseStyle {
	if c.LimitStyle == "" {
		return StyleRST
	}
	return c.LimitStyle
}

// Validate checks the config and names the bad field.
func (c Config) Validate() error {
	if c.Name == "" {
		return errors.New("name: must not be empty")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port: %w", c.Listen, err)
	}
	host, port, err := net.SplitHostPort(c.Upstream)
	if err != nil {
		return fmt.Errorf("upstream: %q is not host:port: %w", c.Upstream, err)
	}
	if host == "" || port == "" || port == "0" {
		return fmt.Errorf("upstream: %q needs a host and a port", c.Upstream)
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("dial_timeout: %v is negative", c.DialTimeout)
	}
	if c.MaxNegotiationBuffer < 0 {
		return fmt.Errorf("max_negotiation_buffer: %d is negative", c.MaxNegotiationBuffer)
	}
	switch c.LimitStyle {
	case "", StyleRST, StyleFIN:
	default:
		return fmt.Errorf("limit_close: %q is not rst or fin", c.LimitStyle)
	}
	if err := c.Bridge.Validate(); err != nil {
		return err // says "bridge: ..."
	}
	return nil
}

// Options are the collaborators of a Proxy. The zero value works: no logs,
// no sink.
type Options struct {
	// Logger receives one line per finished connection (Info) and one per
	// phase (Debug). nil means no logging.
	Logger *zap.Logger
	// Sink, if set, receives every finished connection's record. It is
	// called from the connection's goroutine and must not block for long.
	Sink func(*Record)
	// Finish, if set, is called with every finished connection's record
	// before it is logged and handed to the Sink, from the connection's
	// goroutine: it may fill in fields (control sets the diagnosis and the
	// login steps, package diagnose).
	Finish func(*Record)
	// IDs, if set, is shared by several proxies so connection ids are unique
	// across them.
	IDs *atomic.Uint64
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
	// Decider, if set, is asked at every phase event whether to inject a
	// fault (package faults implements it). nil means pure passthrough.
	Decider Decider
}

// Proxy is one listener relaying to one upstream.
type Proxy struct {
	cfg  Config
	log  *zap.Logger
	opts Options
	ids  *atomic.Uint64
	seq  atomic.Uint64 // connections accepted by this proxy
	// rejected counts connections closed at once because of MaxConnections.
	rejected atomic.Uint64
	// bridge is set by New when cfg.Bridge is (bridge.go).
	bridge *bridgeState
	// chunkHook, set only by tests before Start, sees every chunk the
	// watcher sees, in the order the session observed them.
	chunkHook func(dir Direction, b []byte)
	// keepAliveDelay, set only by tests before Start, replaces
	// keepAliveDelay (keepalive.go) when positive.
	keepAliveDelay time.Duration

	mu       sync.Mutex
	ln       net.Listener
	sessions map[uint64]*session
	closing  bool
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

// New returns a proxy for cfg; Start or Serve makes it accept.
func New(cfg Config, opts Options) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy %q: %w", cfg.Name, err)
	}
	p := &Proxy{cfg: cfg, opts: opts, log: opts.Logger, ids: opts.IDs, sessions: map[uint64]*session{}}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if p.ids == nil {
		p.ids = new(atomic.Uint64)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if err := p.setupBridge(); err != nil {
		p.cancel()
		return nil, fmt.Errorf("proxy %q: %w", cfg.Name, err)
	}
	return p, nil
}

// Config returns the proxy's configuration.
func (p *Proxy) Config() Config { return p.cfg }

func (p *Proxy) now() time.Time {
	if p.opts.Now != nil {
		return p.opts.Now()
	}
	return time.Now()
}

func (p *Proxy) dialTimeout() time.Duration {
	if p.cfg.DialTimeout > 0 {
		return p.cfg.DialTimeout
	}
	return DefaultDialTimeout
}

// Start listens on the configured address and accepts in the background.
func (p *Proxy) Start() error {
	ln, err := Listen("tcp", p.cfg.Listen)
	if err != nil {
		return fmt.Errorf("proxy %q: listen: %w", p.cfg.Name, err)
	}
	if err := p.checkLoop(ln); err != nil {
		ln.Close()
		return err
	}
	if !p.setListener(ln) {
		return nil
	}
	go p.serve(ln)
	return nil
}

// ErrSelfLoop is returned when a proxy's upstream is its own listener: every
// connection would dial another, without end.
var ErrSelfLoop = errors.New("upstream is this proxy's own listen address")

// checkLoop refuses an upstream that resolves to the proxy's own listener.
func (p *Proxy) checkLoop(ln net.Listener) error {
	la, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return nil
	}
	ra, err := net.ResolveTCPAddr("tcp", p.cfg.Upstream)
	if err != nil || ra.Port != la.Port {
		// An upstream that does not resolve now is the dialer's problem,
		// reported per connection.
		return nil
	}
	if la.IP.Equal(ra.IP) || la.IP.IsUnspecified() && (ra.IP.IsLoopback() || isLocalIP(ra.IP)) {
		return fmt.Errorf("proxy %q: upstream %s: %w (%s)", p.cfg.Name, p.cfg.Upstream, ErrSelfLoop, la)
	}
	return nil
}

// setListener installs ln; it reports false (and closes ln) after Close.
func (p *Proxy) setListener(ln net.Listener) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		ln.Close()
		return false
	}
	p.ln = ln
	return true
}

// Addr is the address the proxy listens on (nil before Start/Serve).
func (p *Proxy) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// Serve accepts connections on ln until Close. It returns nil after Close.
func (p *Proxy) Serve(ln net.Listener) error {
	if err := p.checkLoop(ln); err != nil {
		ln.Close()
		return err
	}
	if !p.setListener(ln) {
		return nil
	}
	return p.serve(ln)
}

func (p *Proxy) serve(ln net.Listener) error {
	p.log.Info("proxy listening", zap.String("proxy", p.cfg.Name), zap.Stringer("listen", ln.Addr()), zap.String("upstream", p.cfg.Upstream))
	var backoff time.Duration
	gate, _ := p.opts.Decider.(AcceptGate)
	backlog := 0
	for {
		if gate != nil && !p.waitGate(ln, gate, &backlog) {
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			if p.isClosing() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off instead of
			// spinning, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("accept failed", zap.String("proxy", p.cfg.Name), zap.Error(err), zap.Duration("retry_in", backoff))
			select {
			case <-time.After(backoff):
			case <-p.ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		p.handle(c)
	}
}

// waitGate asks the accept gate before an accept: it sets the listen
// backlog the gate wants and waits out its pause. A gate that says when its
// answer changes (AcceptGateNotifier) ends the pause at once when a rule is
// removed or changed. It reports false when the proxy closes meanwhile.
func (p *Proxy) waitGate(ln net.Listener, gate AcceptGate, backlog *int) bool {
	notifier, _ := gate.(AcceptGateNotifier)
	for {
		var changed <-chan struct{}
		if notifier != nil {
			// Taken before the answer, so a change in between is not missed.
			changed = notifier.GateChanged()
		}
		pause, want := gate.BeforeAccept()
		if want != *backlog {
			setBacklog(ln, want, p.log)
			*backlog = want
		}
		if pause <= 0 {
			return true
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
			return true
		case <-changed:
			t.Stop()
		case <-p.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// defaultBacklog is what the listen queue returns to when no fault shrinks
// it; Linux caps it at net.core.somaxconn.
const defaultBacklog = 4096

// isLocalIP reports whether ip belongs to this host.
func isLocalIP(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

func (p *Proxy) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}

func (p *Proxy) handle(c net.Conn) {
	max := p.cfg.maxConnections()
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		c.Close()
		return
	}
	over := max > 0 && len(p.sessions) >= max
	// Reserve the WaitGroup slot under the lock, so Shutdown's Wait never
	// races an Add. A refused connection holds one too while a FIN close
	// drains it.
	p.wg.Add(1)
	p.mu.Unlock()
	s := newSession(p, p.ids.Add(1), c)
	s.counted = true
	if over {
		p.rejected.Add(1)
		s.refuse(fmt.Sprintf("max_connections (%d) reached", max), p.cfg.limitStyle())
		return
	}
	p.mu.Lock()
	p.sessions[s.id] = s
	p.mu.Unlock()
	if p.ctx.Err() != nil {
		// Close ran between the reservation and the registration.
		s.abort(CloseShutdown, false, shutdownReason(false))
	}
	// The session releases the WaitGroup slot when its last direction
	// ends (session.finish).
	if st := p.bridgeState(); st != nil {
		go s.runBridge(st)
		return
	}
	go s.run()
}

// finished is called once per session with its final record.
//
// The sink gets the record before the session leaves the live set: a
// caller that waits for "no live connections" and then reads the records
// must find every one of them.
func (p *Proxy) finished(s *session, rec *Record) {
	// The sink's work (diagnosis, metrics, the log) runs deep on a
	// relay's goroutine, which ends after it (stack.go).
	growStack(int(s.id))
	s.stopKeepAlive()
	if p.opts.Finish != nil {
		p.opts.Finish(rec)
	}
	logRecord(p.log, rec)
	if p.opts.Sink != nil {
		p.opts.Sink(rec)
	}
	p.mu.Lock()
	delete(p.sessions, s.id)
	p.mu.Unlock()
}

// ActiveCount is the number of live connections, without copying records.
func (p *Proxy) ActiveCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sessions)
}

// Rejected is the number of connections closed at accept because
// MaxConnections was reached.
func (p *Proxy) Rejected() uint64 { return p.rejected.Load() }

// Connections returns a snapshot of the live connections' records. A
// connection the proxy has closed with a FIN, whose client socket is only
// being drained (session.drainClient), is no longer listed; its record
// comes when the drain ends.
func (p *Proxy) Connections() []*Record {
	p.mu.Lock()
	ss := make([]*session, 0, len(p.sessions))
	for _, s := range p.sessions {
		if s.finWait.Load() {
			continue
		}
		ss = append(ss, s)
	}
	p.mu.Unlock()
	out := make([]*Record, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.snapshot())
	}
	return out
}

// shutdownReason is the recorded reason of a close by Shutdown or Close:
// the kind (shutdown) says why, the reason also what went on the wire.
func shutdownReason(reset bool) string {
	if reset {
		return "proxy closed the connection; " + sentText(StyleRST)
	}
	return "proxy closed the connection; " + sentText(StyleFIN)
}

// CloseConnection closes one live connection in style: StyleRST (the
// client sees a reset) or StyleFIN (anything else: a FIN, the client's
// unread bytes drained first so that it stays a FIN on the wire). The
// record says the proxy closed it, with kind rst or fin and reason (e.g.
// "closed by admin API"). It reports whether the connection was found.
func (p *Proxy) CloseConnection(id uint64, style CloseStyle, reason string) bool {
	p.mu.Lock()
	s := p.sessions[id]
	p.mu.Unlock()
	if s == nil {
		return false
	}
	if style == StyleRST {
		s.abort(CloseRST, true, reason)
	} else {
		s.abort(CloseFIN, false, reason)
	}
	return true
}

// StopAccepting closes the listener; live connections go on.
func (p *Proxy) StopAccepting() {
	p.mu.Lock()
	p.closing = true
	ln := p.ln
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// Shutdown stops accepting and waits for live connections to end until ctx
// is done; it then closes what is left (with RST when reset is true).
func (p *Proxy) Shutdown(ctx context.Context, reset bool) error {
	p.StopAccepting()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		p.cancel()
		return nil
	case <-ctx.Done():
	}
	p.closeAll(reset)
	<-done
	p.cancel()
	return ctx.Err()
}

// Close stops accepting, closes every live connection and waits for their
// goroutines to finish.
func (p *Proxy) Close() error {
	p.StopAccepting()
	p.cancel()
	p.closeAll(false)
	p.wg.Wait()
	p.closeBridge()
	return nil
}

func (p *Proxy) closeAll(reset bool) {
	p.mu.Lock()
	ss := make([]*session, 0, len(p.sessions))
	for _, s := range p.sessions {
		ss = append(ss, s)
	}
	p.mu.Unlock()
	for _, s := range ss {
		s.abort(CloseShutdown, reset, shutdownReason(reset))
	}
}
