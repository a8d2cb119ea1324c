package lab

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tdsproxy/tdsproxy/faults"
	"github.com/tdsproxy/tdsproxy/internal/emulator"
	"github.com/tdsproxy/tdsproxy/tds"
	"github.com/tdsproxy/tdsproxy/tlsbridge"
	"github.com/tdsproxy/tdsproxy/tlsbridge/dhe"
)

// The DHE rows show scenarios 3 and 5 in their real form (docs/dhe.md):
// the emulator negotiates TLS_DHE_RSA with the DHE engine (tlsbridge/dhe)
// and plays the unpatched Windows server (faults.LabServer.DHE: DHE
// preferred, the shared secret Z padded to the length of p, an RST when
// the client's Finished cannot be decrypted), and a real client, which
// strips Z as RFC 5246 §8.1.2 says, fails for the real reason. No rule is
// armed: the proxy only records (the DHE suite, the group, the server's
// close after the client's Finished). In TDS 7.x, the TLS handshake inside
// PRELOGIN packets (MS-TDS §2.2.6.5).
//
// go-mssqldb has no DHE (Go's crypto/tls has none), so the default
// client's rows use the DHE engine's own client, in process, for the DHE
// handshakes (fast: a natural count of DefaultHandshakes takes seconds),
// and go-mssqldb for SELECT 1 after the fix.

// DefaultHandshakes is Options.Handshakes' default: enough to see the
// natural rate's order of magnitude in seconds (`tdsproxy lab
// --handshakes 2000` for a closer look).
const DefaultHandshakes = 200

// DefaultExtHandshakes is the same for an external client, whose every
// handshake is a process (Node, tsql, a JDBC connection: 0.3-2 s each).
const DefaultExtHandshakes = 40

// extParallelCount is how many external clients a count runs at once.
const extParallelCount = 2

// engineClientName is how rows name the DHE engine's client.
const engineClientName = "dhe engine client"

// engineParallel is how many engine handshakes a count runs at once, and
// grindParallel how many grinding ones (each is CPU-bound for a while).
const (
	engineParallel = 4
	grindParallel  = 2
)

// grindTimeout bounds one grinding handshake.
const grindTimeout = time.Minute

// dheEmulator sets cfg up with a LabDHE policy.
func dheEmulator(cfg *emulator.Config, d *faults.LabDHE) error {
	var err error
	if cfg.DHE, err = emulator.ParseDHEMode(d.Mode); err != nil {
		return err
	}
	if cfg.DHEZ, err = dhe.ParseZEncoding(d.Z); err != nil {
		return err
	}
	if cfg.DHEFail, err = dhe.ParseFailMode(d.Fail); err != nil {
		return err
	}
	cfg.DHEGroup = d.Group
	return nil
}

// engineClient is the DHE engine's client as a lab client: PRELOGIN with
// encryption on, then a TLS 1.2 DHE_RSA handshake inside PRELOGIN packets,
// offering the engine's six TLS_DHE_RSA suites only and stripping Z (as
// OpenSSL, GnuTLS and JSSE do). With Grind it chooses its private key so
// that Z starts with a zero byte: the failure on demand against a server
// that pads. It stops after the handshake (no LOGIN7).
type engineClient struct{ Grind bool }

func (c engineClient) String() string {
	s := engineClientName + " (tlsbridge/dhe), TDS 7.x encrypt on, TLS_DHE_RSA only, Z stripped"
	if c.Grind {
		s += ", grinding its key until Z starts with 0x00"
	}
	return s
}

// handshake connects to addr and runs one handshake; local is the
// client's address (the proxy's record names it).
func (c engineClient) handshake(ctx context.Context, addr string) (st dhe.ConnectionState, local string, err error) {
	var d net.Dialer
	timeout := attemptTimeout
	if c.Grind {
		// About 256 modular exponentiations before the ClientKeyExchange:
		// under a second on an idle core, far more on a loaded machine.
		timeout = grindTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return st, "", err
	}
	defer conn.Close()
	local = conn.LocalAddr().String()
	deadline, _ := dctx.Deadline()
	_ = conn.SetDeadline(deadline)
	pl := &tds.Prelogin{}
	pl.Set(tds.PreloginVersion, []byte{0, 0, 0, 0, 0, 0})
	pl.Set(tds.PreloginEncryption, []byte{byte(tds.EncryptOn)})
	pl.Set(tds.PreloginInstance, []byte{0})
	pl.Set(tds.PreloginMARS, []byte{0})
	if err := (&tds.Writer{W: conn}).WriteMessage(tds.PacketPrelogin, pl.Marshal()); err != nil {
		return st, local, fmt.Errorf("sending PRELOGIN: %w", err)
	}
	if _, err := tds.NewReader(conn).ReadMessage(); err != nil {
		return st, local, fmt.Errorf("reading the PRELOGIN response: %w", err)
	}
	fc := tlsbridge.NewFramedConn(conn, tlsbridge.RoleClient, tds.DefaultPacketSize)
	dc := dhe.Client(fc, &dhe.Config{InsecureSkipVerify: true, Z: dhe.ZStrip, Grind: c.Grind})
	err = dc.Handshake()
	return dc.ConnectionState(), local, err
}

// run is one handshake through e's proxy, as an Attempt with its record.
func (c engineClient) run(ctx context.Context, e *env, server string) Attempt {
	a := Attempt{Client: c.String(), Server: server}
	start := time.Now()
	st, local, err := c.handshake(ctx, e.addr())
	a.Elapsed = time.Since(start)
	if err != nil {
		a.Error = err.Error()
	} else {
		a.Connected = true
		a.Result = fmt.Sprintf("handshake done (%s, %s, %s)", tlsbridge.VersionName(st.Version), dhe.CipherSuiteName(st.CipherSuite), st.Group)
	}
	if local == "" {
		return a
	}
	rec, werr := e.recs.wait(ctx, local)
	if werr != nil {
		a.Error = joinErr(a.Error, "proxy: "+werr.Error())
		return a
	}
	a.Record = rec
	return a
}

// Tally counts the handshakes of one client against one server.
type Tally struct {
	Client     string `json:"client"`
	Server     string `json:"server"`
	Handshakes int    `json:"handshakes"`
	Failures   int    `json:"failures"`
	// ServerFailures and LeadingZero are the emulator's counts: TLS
	// handshakes that failed on its side, and DHE handshakes whose shared
	// secret started with a zero byte.
	ServerFailures uint64 `json:"server_failures"`
	LeadingZero    uint64 `json:"leading_zero"`
	// Rate is Failures/Handshakes; Low and High its 99% (Wilson score)
	// interval.
	Rate float64 `json:"rate"`
	Low  float64 `json:"rate_low_99"`
	High float64 `json:"rate_high_99"`
	// Errors counts the client's distinct error texts (shortened).
	Errors  map[string]int `json:"errors,omitempty"`
	Elapsed time.Duration  `json:"elapsed_ns"`
}

// DHECounts are a leading-zero row's counts (faults.LabLeadingZero).
type DHECounts struct {
	// Expected is the natural share of zero-led shared secrets in the
	// natural server's group, ExpectedText as a fraction.
	Expected     float64 `json:"expected_rate"`
	ExpectedText string  `json:"expected"`
	// Natural: the row's client against the padding server.
	Natural Tally `json:"natural"`
	// ForcedPad and ForcedStrip: the engine's grinding client against the
	// padding server and the same server stripping.
	ForcedPad   Tally `json:"forced_pad"`
	ForcedStrip Tally `json:"forced_strip"`
	// Fixed: the row's client against the fixed server.
	Fixed Tally `json:"fixed"`
}

// wilson99 is the 99% Wilson score interval of k successes in n.
func wilson99(k, n int) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	const z = 2.5758293035489004 // the normal's 99.5th percentile
	p, fn := float64(k)/float64(n), float64(n)
	den := 1 + z*z/fn
	mid := (p + z*z/(2*fn)) / den
	half := z * math.Sqrt(p*(1-p)/fn+z*z/(4*fn*fn)) / den
	return max(0, mid-half), min(1, mid+half)
}

// handshakeFunc runs one handshake against the proxy at addr (port):
// "" when it completed, else the client's error.
type handshakeFunc func(ctx context.Context, addr string) string

// tally runs n handshakes (parallel at once) against an emulator with cfg
// behind a proxy with no rule, and counts.
func (r *runner) tally(ctx context.Context, cfg emulator.Config, server, client string, n, parallel int, hs handshakeFunc) (Tally, error) {
	t := Tally{Client: client, Server: server, Handshakes: n, Errors: map[string]int{}}
	e, err := startEnv(envConfig{Emulator: cfg, Logger: r.log})
	if err != nil {
		return t, err
	}
	defer e.close()
	start := time.Now()
	var mu sync.Mutex
	next := make(chan struct{})
	var wg sync.WaitGroup
	for range max(1, parallel) {
		wg.Go(func() {
			for range next {
				msg := hs(ctx, e.addr())
				if msg == "" {
					continue
				}
				mu.Lock()
				t.Failures++
				t.Errors[shortError(msg)]++
				mu.Unlock()
			}
		})
	}
feed:
	for range n {
		select {
		case next <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	t.Elapsed = time.Since(start)
	if err := ctx.Err(); err != nil {
		return t, err
	}
	// The emulator counts a failure when its handshake returns, which can
	// be a moment after the client saw the close.
	for wait := time.Now().Add(2 * time.Second); ; {
		st := e.emu.Stats()
		t.ServerFailures, t.LeadingZero = st.TLSFailures, st.DHELeadingZero
		if t.ServerFailures >= uint64(t.Failures) || time.Now().After(wait) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Rate = float64(t.Failures) / float64(max(n, 1))
	t.Low, t.High = wilson99(t.Failures, n)
	return t, nil
}

// engineHandshake is a handshakeFunc for the engine's client.
func engineHandshake(c engineClient) handshakeFunc {
	return func(ctx context.Context, addr string) string {
		if _, _, err := c.handshake(ctx, addr); err != nil {
			return err.Error()
		}
		return ""
	}
}

// extHandshake is a handshakeFunc for an external client (a connection and
// SELECT 1); desc receives its description.
func extHandshake(client string, desc *string) handshakeFunc {
	var once sync.Once
	return func(ctx context.Context, addr string) string {
		_, portText, _ := net.SplitHostPort(addr)
		var port int
		_, _ = fmt.Sscan(portText, &port)
		d, res, err := extRun(ctx, client, extShape{}, port)
		once.Do(func() { *desc = d })
		switch {
		case err != nil && res == nil:
			return "lab: " + err.Error()
		case err != nil:
			return joinErr(res.Error, "lab: "+err.Error())
		case !res.OK:
			return res.Error
		}
		return ""
	}
}

// dheRow runs a DHE scenario's row with client (ClientGo: the engine's
// client, and go-mssqldb after the fix) and judges it.
func (r *runner) dheRow(ctx context.Context, row *Row, client string, s setup) {
	l := s.lab()
	row.Rule = faults.RuleSpec{}
	before, err := emulatorFor(l.Server)
	if err != nil {
		row.Status, row.Problem = StatusUnexpected, "lab: "+err.Error()
		return
	}
	fixed, err := emulatorFor(*l.Fixed)
	if err != nil {
		row.Status, row.Problem = StatusUnexpected, "lab: "+err.Error()
		return
	}
	one := func(cfg emulator.Config, server string, after bool) Attempt {
		if client != ClientGo {
			return r.extAttempt(ctx, client, envConfig{Emulator: cfg}, server, extShape{})
		}
		if after {
			// The engine offers DHE only; after the fix the row's SQL
			// client is go-mssqldb (ECDHE, SELECT 1).
			return r.runGo(ctx, cfg, nil, server, goClient{})
		}
		e, err := startEnv(envConfig{Emulator: cfg, Logger: r.log})
		if err != nil {
			return Attempt{Client: engineClient{}.String(), Server: server, Error: "lab: " + err.Error()}
		}
		defer e.close()
		return engineClient{}.run(ctx, e, server)
	}
	if client == ClientGo {
		row.Client = engineClientName + " / " + goClientName
	}
	refused := l.Server.DHE.Refused[client]
	row.Before = one(before, l.Server.Desc, false)
	row.After = one(fixed, l.Fixed.Desc, true)
	row.Note = l.Note + l.NoteFor[client]
	if client == ClientGo {
		row.Note += "Client: go-mssqldb has no DHE (Go's crypto/tls has none), so the handshakes before the fix are the DHE engine's " +
			"own client (it strips Z, as OpenSSL, GnuTLS and JSSE do) and SELECT 1 after the fix is go-mssqldb. " +
			"--client tedious,tsql,jdbc,odbc shows real SQL clients. "
	}
	var problems []string
	if lz := l.LeadingZero; lz != nil {
		counts, p := r.leadingZero(ctx, client, lz, fixed, l.Fixed.Desc)
		row.DHE = counts
		problems = append(problems, p...)
		if counts != nil {
			row.Note += counts.summary()
		}
	}
	problems = append(problems, judgeDHE(row, l, expectFor(s.info, client), refused)...)
	row.ClientError = shortError(row.Before.Error)
	row.FixedConnected = row.After.Connected
	if len(problems) > 0 {
		row.Status, row.Problem = StatusUnexpected, strings.Join(problems, "; ")
		return
	}
	row.Status = StatusOK
}

// judgeDHE checks the connection before the fix (a DHE suite; the server's
// close after the client's Finished, or the client's refusal of the
// group) and after it (connected), and fills the row's columns.
func judgeDHE(row *Row, l faults.LabSetup, x expect, refused []string) []string {
	var problems []string
	b := &row.Before
	if rec := b.Record; rec != nil && rec.Close != nil {
		row.FaultAt = rec.Close.Phase
		row.Close = string(rec.Close.Kind) + " by " + string(rec.Close.By)
	}
	want := x.errText
	switch {
	case b.Connected:
		problems = append(problems, "before the fix: the client connected")
	case b.Record == nil:
		problems = append(problems, "before the fix: no proxy record ("+b.Error+")")
	case b.Record.TLS == nil || !strings.HasPrefix(b.Record.TLS.CipherSuite, "TLS_DHE_"):
		problems = append(problems, fmt.Sprintf("before the fix: the server did not choose DHE (%+v)", b.Record.TLS))
	case refused != nil:
		want = refused
	default:
		if c := b.Record.Close; c == nil || c.By != x.by || c.Kind != x.kind || c.Phase != x.phase {
			problems = append(problems, fmt.Sprintf("before the fix: close %+v, want %s by %s at %s", c, x.kind, x.by, x.phase))
		}
		if ke := b.Record.TLS.KeyExchange; ke == nil || ke.DHGroup != l.Server.DHE.Group {
			problems = append(problems, fmt.Sprintf("before the fix: the record's key exchange %+v does not name the group %s", ke, l.Server.DHE.Group))
		}
	}
	if len(want) == 0 {
		problems = append(problems, "before the fix: the scenario names no error for this client")
	}
	for _, w := range want {
		if !strings.Contains(b.Error, w) {
			problems = append(problems, fmt.Sprintf("before the fix: the client's error %q lacks %q", b.Error, w))
		}
	}
	a := &row.After
	switch {
	case !a.Connected:
		problems = append(problems, "after the fix: the client did not connect: "+a.Error)
	case a.Record == nil:
		problems = append(problems, "after the fix: no proxy record")
	}
	return problems
}

// leadingZero runs a leading-zero row's counts: the client's natural
// handshakes against the padding server, the engine's grinding client
// against it and against the same server stripping, and the client's
// handshakes after the fix.
func (r *runner) leadingZero(ctx context.Context, client string, lz *faults.LabLeadingZero, fixed emulator.Config, fixedDesc string) (*DHECounts, []string) {
	n := r.handshakes
	if n <= 0 {
		n = DefaultHandshakes
		if client != ClientGo {
			n = DefaultExtHandshakes
		}
	}
	natural, stripped := emulator.Config{}, emulator.Config{}
	strip := lz.Natural
	strip.Z = "strip"
	if err := dheEmulator(&natural, &lz.Natural); err != nil {
		return nil, []string{"lab: " + err.Error()}
	}
	if err := dheEmulator(&stripped, &strip); err != nil {
		return nil, []string{"lab: " + err.Error()}
	}
	naturalDesc, stripDesc := "emulator "+lz.Natural.Flags(), "emulator "+strip.Flags()
	c := &DHECounts{Expected: lz.Expected, ExpectedText: lz.ExpectedText}
	var problems []string
	count := func(dst *Tally, cfg emulator.Config, desc string, n int, grind bool) {
		var name string
		var hs handshakeFunc
		par := engineParallel
		switch {
		case grind:
			name, hs, par = engineClient{Grind: true}.String(), engineHandshake(engineClient{Grind: true}), grindParallel
		case client == ClientGo:
			name, hs = engineClient{}.String(), engineHandshake(engineClient{})
		default:
			hs, par = extHandshake(client, &name), extParallelCount
		}
		t, err := r.tally(ctx, cfg, desc, "", n, par, hs)
		t.Client = name
		*dst = t
		if err != nil {
			problems = append(problems, "lab: "+err.Error())
		}
	}
	count(&c.Natural, natural, naturalDesc, n, false)
	// The forced counts are the engine's client whatever the row's
	// client: run once per lab, shared by the rows.
	r.forcedOnce.Do(func() {
		count(&r.forcedPad, natural, naturalDesc, lz.ForcedN, true)
		count(&r.forcedStrip, stripped, stripDesc, lz.ForcedN, true)
	})
	c.ForcedPad, c.ForcedStrip = r.forcedPad, r.forcedStrip
	count(&c.Fixed, fixed, fixedDesc, n, false)
	if t := c.Natural; t.Failures != int(t.LeadingZero) || t.ServerFailures != t.LeadingZero {
		problems = append(problems, fmt.Sprintf("natural: %d client failures, %d server failures, %d zero-led shared secrets: want all three equal",
			t.Failures, t.ServerFailures, t.LeadingZero))
	}
	if t := c.ForcedPad; t.Failures != t.Handshakes {
		problems = append(problems, fmt.Sprintf("forced against pad: %d of %d failed, want all (%v)", t.Failures, t.Handshakes, t.Errors))
	}
	if t := c.ForcedStrip; t.Failures != 0 {
		problems = append(problems, fmt.Sprintf("forced against strip: %d of %d failed, want none (%v)", t.Failures, t.Handshakes, t.Errors))
	}
	if t := c.Fixed; t.Failures != 0 {
		problems = append(problems, fmt.Sprintf("after the fix: %d of %d failed, want none (%v)", t.Failures, t.Handshakes, t.Errors))
	}
	return c, problems
}

// summary says the counts in words, for the row's note.
func (c *DHECounts) summary() string {
	pct := func(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }
	t := c.Natural
	verdict := "inside"
	if c.Expected < t.Low || c.Expected > t.High {
		verdict = "OUTSIDE"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Natural: %d of %d handshakes failed (%s, 99%% interval %s-%s; expected %s = %s: %s the interval); "+
		"the server failed %d and saw %d zero-led shared secrets, in %v. ",
		t.Failures, t.Handshakes, pct(t.Rate), pct(t.Low), pct(t.High), c.ExpectedText, pct(c.Expected), verdict,
		t.ServerFailures, t.LeadingZero, t.Elapsed.Round(10*time.Millisecond))
	if len(t.Errors) > 0 {
		texts := make([]string, 0, len(t.Errors))
		for e := range t.Errors {
			texts = append(texts, e)
		}
		slices.Sort(texts)
		fmt.Fprintf(&b, "The client's errors: ")
		for i, e := range texts {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%d x %q", t.Errors[e], e)
		}
		b.WriteString(". ")
	}
	fmt.Fprintf(&b, "Forced (the engine's grinding client): %d of %d failed against the padding server, %d of %d against the stripping one. ",
		c.ForcedPad.Failures, c.ForcedPad.Handshakes, c.ForcedStrip.Failures, c.ForcedStrip.Handshakes)
	fmt.Fprintf(&b, "After the fix (%s): %d of %d failed. ", c.Fixed.Server, c.Fixed.Failures, c.Fixed.Handshakes)
	return b.String()
}
