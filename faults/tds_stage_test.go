package faults

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
	"github.com/tdsproxy/tdsproxy/tds"
)

// run passes chunks through a stage and returns what it emitted and the
// first cut.
func runStage(t *testing.T, s proxy.Stage, chunks ...[]byte) ([]byte, *proxy.Cut) {
	t.Helper()
	var out []byte
	for _, c := range chunks {
		cut, err := s.Forward(context.Background(), c, func(b []byte) error { out = append(out, b...); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if cut != nil {
			return out, cut
		}
	}
	return out, nil
}

// A TLS record (login-only: LOGIN7 inside TLS) passes whole, whatever its
// length's low bits, even split across chunks; TDS packets after it are
// read as packets.
func TestFramerTLSThenTDS(t *testing.T) {
	for _, n := range []int{1, 5, 7, 0x0102, 0x0107, 16389} {
		rec := append([]byte{23, 3, 3, byte(n >> 8), byte(n)}, bytes.Repeat([]byte{0xEE}, n)...)
		w := tds.Writer{}
		batch := w.AppendMessage(nil, tds.PacketSQLBatch, 0, tds.AppendSQLBatch(nil, "SELECT 1", 0))
		stream := append(append([]byte(nil), rec...), batch...)
		var f framer
		var units [][]byte
		for i := 0; i < len(stream); i += 3 {
			f.feed(stream[i:min(i+3, len(stream))])
			for {
				u, _ := f.next()
				if u == nil {
					break
				}
				units = append(units, append([]byte(nil), u...))
			}
			f.compact()
		}
		if len(units) != 2 || !bytes.Equal(units[0], rec) || !bytes.Equal(units[1], batch) || f.broken {
			t.Fatalf("record of %d bytes: %d units, broken %v", n, len(units), f.broken)
		}
	}
}

// A matching batch goes to the server as a harmless batch with the same
// ALL_HEADERS, and its reply comes back as ERROR + DONE(error); the next
// request and reply pass unchanged.
func TestRequestAndReplyStages(t *testing.T) {
	o, err := bindTDSOptions(&tdsFaults[0], OptionValues{"at": "query", "number": "1205", "query": "(?i)^update", "times": "1"})
	if err != nil {
		t.Fatal(err)
	}
	tr := &tdsRule{fault: &tdsFaults[0], opts: o, hits: new(atomic.Int64)}
	q := &reqQueue{}
	m := o.known.message("", "", "")
	req := &requestStage{q: q, t: tr, plan: func() replyPlan { return replyPlan{replace: &m} }}
	rep := &replyStage{q: q}
	w := tds.Writer{PacketSize: 512}
	upd := w.AppendMessage(nil, tds.PacketSQLBatch, tds.StatusResetConnection, tds.AppendSQLBatch(nil, "UPDATE t SET x = 1"+string(bytes.Repeat([]byte(" "), 600)), 7))
	out, _ := runStage(t, req, upd[:100], upd[100:])
	msg, err := tds.NewReader(bytes.NewReader(out)).ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	text, _ := tds.ParseSQLBatch(msg.Payload)
	if msg.Type != tds.PacketSQLBatch || text != rollbackOnly {
		t.Fatalf("sent to the server: %s %q", msg.Type, text)
	}
	if h, _ := tds.ParseHeader(out); h.Status&tds.StatusResetConnection == 0 {
		t.Error("RESETCONNECTION of the client's first packet was lost")
	}
	serverReply := w.AppendMessage(nil, tds.PacketReply, 0, tds.AppendDone(nil, tds.TokenDone, tds.DoneFinal, 0, 0))
	got, _ := runStage(t, rep, serverReply)
	res, err := tds.ParseResult(got[tds.HeaderLen:])
	if err != nil || len(res.Errors) != 1 || res.Errors[0].Number != 1205 || res.Done[0].Status != tds.DoneError {
		t.Fatalf("reply to the client: %+v, %v", res, err)
	}
	// times: 1 is used: the second UPDATE and its reply pass.
	out, _ = runStage(t, req, upd)
	if !bytes.Equal(out, upd) {
		t.Error("second UPDATE was changed")
	}
	if got, _ := runStage(t, rep, serverReply); !bytes.Equal(got, serverReply) {
		t.Error("second reply was changed")
	}
}

// cut_result in bytes cuts exactly after N bytes of the counted reply.
func TestCutResultBytes(t *testing.T) {
	q := &reqQueue{}
	q.push(replyPlan{cut: true})
	rep := &replyStage{q: q, bytes: 100, style: proxy.StyleFIN}
	w := tds.Writer{PacketSize: 512}
	reply := w.AppendMessage(nil, tds.PacketReply, 0, bytes.Repeat([]byte{0}, 2000))
	out, cut := runStage(t, rep, reply)
	if len(out) != 100 || cut == nil || cut.Style != proxy.StyleFIN {
		t.Fatalf("emitted %d bytes, cut %+v", len(out), cut)
	}
}

// Bad rule input is refused with the key named.
func TestTDSRuleInputErrors(t *testing.T) {
	cases := []struct {
		opts OptionValues
		key  string
	}{
		{OptionValues{"number": "40613", "times": "-1"}, "options.times"},
		{OptionValues{"number": "50123"}, "options.message"},
		{OptionValues{"number": "-2"}, "options.number"},
		{OptionValues{}, "options.number"},
		{OptionValues{"number": "1205", "at": "query", "query": "(?i"}, "options.query"},
		{OptionValues{"number": "1205", "app": "["}, "options.app"},
		{OptionValues{"number": "1205", "at": "later"}, "options.at"},
		{OptionValues{"number": "1205", "query": "x"}, "options.query"},
		{OptionValues{"number": "1205", "class": "30"}, "options.class"},
		{OptionValues{"number": "1205", "rows": "3"}, "options.rows"},
	}
	for _, tc := range cases {
		err := Compile([]RuleSpec{{Name: "r", Action: TDSError, Options: tc.opts}})
		var re *RuleError
		if !errors.As(err, &re) || re.Key != tc.key {
			t.Errorf("%v: error %v, want key %s", tc.opts, err, tc.key)
		}
	}
	for _, spec := range []RuleSpec{
		{Name: "r", Action: TDSRedirect, Options: OptionValues{"to": "nohost"}},
		{Name: "r", Action: TDSCutResult, Options: OptionValues{"rows": "1", "bytes": "2"}},
		{Name: "r", Action: TDSAttention, Options: OptionValues{"mode": "delay"}},
	} {
		var re *RuleError
		if err := Compile([]RuleSpec{spec}); !errors.As(err, &re) || re.Key == "" {
			t.Errorf("%s %v: error %v, want a key", spec.Action, spec.Options, err)
		}
	}
	// 50123 with a message is fine; class and state override.
	if err := Compile([]RuleSpec{{Name: "r", Action: TDSError, Options: OptionValues{"number": "50123", "message": "custom", "class": "16", "state": "2"}}}); err != nil {
		t.Error(err)
	}
}

// idle_kill with in_transaction follows ENVCHANGE begin and commit in the
// server's replies.
func TestIdleKillFollowsTransactions(t *testing.T) {
	st := &idleState{idle: time.Second, onlyTx: true, clock: RealClock{}}
	s := &idleStage{st: st, replies: true}
	w := tds.Writer{PacketSize: 512}
	reply := func(typ tds.EnvChangeType) []byte {
		p := tds.AppendEnvChangeBytes(nil, typ, []byte{1, 2, 3, 4, 5, 6, 7, 8}, nil)
		return w.AppendMessage(nil, tds.PacketReply, 0, tds.AppendDone(p, tds.TokenDone, tds.DoneFinal, 0, 0))
	}
	runStage(t, s, reply(tds.EnvBeginTran))
	if !st.inTx {
		t.Fatal("BEGIN TRAN's ENVCHANGE not seen")
	}
	b := reply(tds.EnvCommitTran)
	runStage(t, s, b[:5], b[5:])
	if st.inTx {
		t.Fatal("COMMIT's ENVCHANGE not seen")
	}
}

// The failover rule's windows: once after `after`, or every `every`.
func TestFailoverWindow(t *testing.T) {
	set := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return set.Add(d) }
	once := &tdsOptions{After: time.Second, Duration: 2 * time.Second}
	every := &tdsOptions{After: time.Second, Duration: 2 * time.Second, Every: 10 * time.Second}
	cases := []struct {
		o      *tdsOptions
		t      time.Duration
		in     bool
		nextAt time.Duration // -1: none
	}{
		{once, 0, false, time.Second},
		{once, 1500 * time.Millisecond, true, -1},
		{once, 3 * time.Second, false, -1},
		{every, 2 * time.Second, true, 11 * time.Second},
		{every, 5 * time.Second, false, 11 * time.Second},
		{every, 12 * time.Second, true, 21 * time.Second},
	}
	for _, tc := range cases {
		in, next := tc.o.window(set, at(tc.t))
		want := time.Time{}
		if tc.nextAt >= 0 {
			want = at(tc.nextAt)
		}
		if in != tc.in || !next.Equal(want) {
			t.Errorf("every %v at +%v: in %v next %v, want %v %v", tc.o.Every, tc.t, in, next, tc.in, want)
		}
	}
	for _, opts := range []OptionValues{{}, {"duration": "10s", "every": "5s"}, {"duration": "1s", "number": "50123"}} {
		var re *RuleError
		if err := Compile([]RuleSpec{{Name: "f", Action: TDSFailover, Options: opts}}); !errors.As(err, &re) || re.Key == "" {
			t.Errorf("%v: %v, want an error naming the key", opts, err)
		}
	}
}
