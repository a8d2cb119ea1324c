package emulator

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/tdsproxy/tdsproxy/tds"
)

// serveRequests answers SQL batches, RPCs and attentions until the client
// goes away or sends something the emulator cannot parse.
func (ss *session) serveRequests() error {
	tr := tds.NewReader(ss.rw)
	tr.MaxMessage = maxRequestMessage
	for {
		m, err := tr.ReadMessage()
		if err != nil {
			return wrapRead("request", err)
		}
		switch m.Type {
		case tds.PacketSQLBatch:
			text, err := tds.ParseSQLBatch(m.Payload)
			if err != nil {
				return protocolErrorf("SQL batch: %v", err)
			}
			ss.s.stats.batches.Add(1)
			if err := ss.runBatch(text, false); err != nil {
				return err
			}
		case tds.PacketRPC:
			call, err := parseRPC(m.Payload)
			if err != nil {
				return protocolErrorf("RPC: %v", err)
			}
			ss.s.stats.batches.Add(1)
			if err := ss.runRPC(call); err != nil {
				return err
			}
		case tds.PacketAttention:
			// Requests are answered to the end before the next is read, so
			// there is nothing left to cancel: acknowledge (MS-TDS §3.2.5.7:
			// a DONE with DONE_ATTN).
			rw := newReplyWriter(ss.rw, ss.packetSize, ss.spid)
			rw.add(tds.AppendDone(nil, tds.TokenDone, tds.DoneAttn, tds.CurCmdNone, 0))
			if err := rw.end(); err != nil {
				return err
			}
		case tds.PacketTransMgrReq:
			// BEGIN/COMMIT through the transaction manager is not emulated;
			// answer with an error rather than drop the connection.
			if err := ss.writeError(tds.TokenDone, tds.ServerMessage{Number: 40000, State: 1, Class: 16,
				Message: "The tdsproxy emulator does not support transaction manager requests."}); err != nil {
				return err
			}
		default:
			return protocolErrorf("unexpected %s message after login", m.Type)
		}
	}
}

// statement kinds the emulator understands.
type stmtKind int

const (
	stmtUnknown stmtKind = iota
	stmtSetup            // SET / USE: accepted, no output
	stmtSelect1
	stmtVersion
	stmtSPID
	stmtLarge
)

type statement struct {
	kind       stmtKind
	text       string // as the client sent it, trimmed
	rows, size int    // stmtLarge
}

var largeRE = regexp.MustCompile(`^select large(?: ?\( ?(\d{1,9}) ?(?:, ?(\d{1,9}) ?)?\))?$`)

// setupKeywords start session-setup statements (what tedious, FreeTDS and
// go-mssqldb send after login) that are accepted without effect.
var setupKeywords = []string{"set ", "use "}

// statementStarters begin a new statement on a new line in a batch that
// has no ';' between statements (tedious's initial SQL is SET lines).
var statementStarters = []string{"set ", "use ", "select ", "exec ", "execute "}

// splitStatements cuts a batch at ';' and at line starts that begin a new
// statement, and classifies each piece. It is deliberately simple: the
// emulator only needs to recognise a handful of fixed statements.
func (ss *session) splitStatements(text string) []statement {
	var out []statement
	for _, piece := range strings.Split(text, ";") {
		var cur []string
		flush := func() {
			s := strings.TrimSpace(strings.Join(cur, "\n"))
			cur = cur[:0]
			if s != "" {
				out = append(out, ss.classify(s))
			}
		}
		for _, line := range strings.Split(piece, "\n") {
			l := strings.ToLower(strings.TrimSpace(line)) + " "
			if len(cur) > 0 && hasAnyPrefix(l, statementStarters) {
				flush()
			}
			cur = append(cur, line)
		}
		flush()
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func (ss *session) classify(text string) statement {
	norm := strings.ToLower(strings.Join(strings.Fields(text), " "))
	st := statement{text: text}
	switch {
	case hasAnyPrefix(norm+" ", setupKeywords):
		st.kind = stmtSetup
	case norm == "select 1":
		st.kind = stmtSelect1
	case norm == "select @@version":
		st.kind = stmtVersion
	case norm == "select @@spid":
		st.kind = stmtSPID
	default:
		m := largeRE.FindStringSubmatch(norm)
		if m == nil {
			break
		}
		st.kind, st.rows, st.size = stmtLarge, ss.s.cfg.LargeRows, ss.s.cfg.LargeRowBytes
		if m[1] != "" {
			st.rows, _ = strconv.Atoi(m[1])
		}
		if m[2] != "" {
			st.size, _ = strconv.Atoi(m[2])
		}
		if st.rows > maxLargeRows || st.size < 1 || st.size > tds.MaxVarLen {
			st.kind = stmtUnknown
		}
	}
	return st
}

// runBatch answers one SQL batch (rpc false) or the statement of an
// sp_executesql call (rpc true). A batch ends with a DONE without DONE_MORE;
// in an RPC every statement ends with DONEINPROC and the call with
// RETURNSTATUS and DONEPROC (MS-TDS §2.2.7.6, §2.2.7.18).
func (ss *session) runBatch(text string, rpc bool) error {
	stmts := ss.splitStatements(text)
	ss.log.Debug("batch", zap.Bool("rpc", rpc), zap.Int("statements", len(stmts)), zap.String("text", truncate(text, 200)))
	doneTok := byte(tds.TokenDone)
	if rpc {
		doneTok = tds.TokenDoneInProc
	}
	// The last statement with output gets the final DONE (no DONE_MORE)
	// in a batch.
	lastOut := -1
	for i, st := range stmts {
		if st.kind != stmtSetup {
			lastOut = i
		}
	}
	rw := newReplyWriter(ss.rw, ss.packetSize, ss.spid)
	failed := false
	for i, st := range stmts {
		if st.kind == stmtSetup {
			continue
		}
		status := tds.DoneCount | tds.DoneMore
		if i == lastOut && !rpc {
			status &^= tds.DoneMore
		}
		if st.kind == stmtUnknown {
			ss.log.Debug("unsupported statement", zap.String("text", truncate(st.text, 200)))
			rw.add(ss.appendError(nil, unknownStatement(st.text)))
			// The batch stops here, so in a batch this DONE is the last
			// token: no DONE_MORE. In an RPC, DONEPROC follows.
			errStatus := tds.DoneError
			if rpc {
				errStatus |= tds.DoneMore
			}
			rw.add(tds.AppendDone(nil, doneTok, errStatus, tds.CurCmdNone, 0))
			failed = true
			break // like a batch-aborting error: later statements do not run
		}
		if err := ss.writeResult(rw, st, doneTok, status); err != nil {
			return err
		}
	}
	switch {
	case rpc:
		status := tds.DoneFinal
		if failed {
			status = tds.DoneError
		}
		rw.add(appendReturnStatus(nil, 0))
		rw.add(tds.AppendDone(nil, tds.TokenDoneProc, status, tds.CurCmdNone, 0))
	case lastOut < 0:
		// Only session setup (or an empty batch): one DONE says it is done.
		rw.add(tds.AppendDone(nil, tds.TokenDone, tds.DoneFinal, tds.CurCmdNone, 0))
	}
	return rw.end()
}

// writeResult streams one result set: COLMETADATA, the rows, DONE.
func (ss *session) writeResult(rw *replyWriter, st statement, doneTok byte, status tds.DoneStatus) error {
	var cols []tds.Column
	var rows uint64
	var buf []byte
	var err error
	switch st.kind {
	case stmtSelect1:
		cols = []tds.Column{{Name: "", Type: tds.ColInt4}}
		rw.add(tds.AppendColMetadata(nil, cols))
		buf, err = tds.AppendRow(nil, cols, []any{int32(1)})
		rw.add(buf)
		rows = 1
	case stmtVersion:
		cols = []tds.Column{{Name: "", Type: tds.ColNVarChar, Size: 2 * 300}} // @@VERSION is nvarchar(300)
		rw.add(tds.AppendColMetadata(nil, cols))
		buf, err = tds.AppendRow(nil, cols, []any{ss.s.versionText()})
		rw.add(buf)
		rows = 1
	case stmtSPID:
		cols = []tds.Column{{Name: "", Type: tds.ColIntN, Size: 2}} // @@SPID is smallint
		rw.add(tds.AppendColMetadata(nil, cols))
		buf, err = tds.AppendRow(nil, cols, []any{int64(ss.spid)})
		rw.add(buf)
		rows = 1
	case stmtLarge:
		cols = []tds.Column{{Name: "data", Type: tds.ColBigVarBinary, Size: st.size}}
		rw.add(tds.AppendColMetadata(nil, cols))
		value := make([]byte, st.size)
		for i := range value {
			value[i] = byte('A' + i%26)
		}
		vals := []any{value}
		for i := 0; i < st.rows && rw.err == nil; i++ {
			buf, err = tds.AppendRow(buf[:0], cols, vals)
			if err != nil {
				break
			}
			rw.add(buf)
			rows++
		}
	}
	if err != nil {
		// A bug in the emulator, not the client's fault: say so on the
		// wire and keep the connection.
		ss.log.Error("encoding result", zap.Error(err))
		return fmt.Errorf("encoding result: %w", err)
	}
	rw.add(tds.AppendDone(nil, doneTok, status, tds.CurCmdSelect, rows))
	return rw.err
}

// versionText is what SELECT @@VERSION returns: shaped like SQL Server's,
// and saying plainly that this is the emulator.
func (s *Server) versionText() string {
	v := s.version
	return fmt.Sprintf("Microsoft SQL Server 2022 (RTM) - %d.%d.%d.%d (X64) (tdsproxy emulator)\n"+
		"\ttdsproxy SQL Server emulator on %s: not a real SQL Server\n", v.Major, v.Minor, v.Build, v.SubBuild, s.cfg.ServerName)
}

// unknownStatement is the error for anything the emulator does not
// implement: SQL Server's 2812, which a client treats as an ordinary
// statement error (class 16) on a healthy connection.
func unknownStatement(text string) tds.ServerMessage {
	return tds.ServerMessage{Number: 2812, State: 62, Class: 16,
		Message: fmt.Sprintf("Could not find stored procedure '%s'.", truncate(strings.Join(strings.Fields(text), " "), 128))}
}

func (ss *session) appendError(b []byte, m tds.ServerMessage) []byte {
	m.ServerName = ss.s.cfg.ServerName
	if m.Line == 0 {
		m.Line = 1
	}
	return tds.AppendError(b, m)
}

// writeError answers a request with one error and a final DONE (or
// DONEPROC) carrying DONE_ERROR.
func (ss *session) writeError(doneTok byte, m tds.ServerMessage) error {
	rw := newReplyWriter(ss.rw, ss.packetSize, ss.spid)
	rw.add(ss.appendError(nil, m))
	rw.add(tds.AppendDone(nil, doneTok, tds.DoneError, tds.CurCmdNone, 0))
	return rw.end()
}

// appendReturnStatus appends a RETURNSTATUS token (MS-TDS §2.2.7.18).
func appendReturnStatus(b []byte, v int32) []byte {
	b = append(b, tds.TokenReturnStatus)
	return binary.LittleEndian.AppendUint32(b, uint32(v))
}

// runRPC answers an RPC. sp_executesql runs its statement like a batch;
// any other procedure gets error 2812.
func (ss *session) runRPC(call rpcCall) error {
	if !call.isExecuteSQL() {
		ss.log.Debug("unsupported RPC", zap.String("proc", call.name()))
		rw := newReplyWriter(ss.rw, ss.packetSize, ss.spid)
		rw.add(ss.appendError(nil, tds.ServerMessage{Number: 2812, State: 62, Class: 16,
			Message: fmt.Sprintf("Could not find stored procedure '%s'.", call.name())}))
		rw.add(tds.AppendDone(nil, tds.TokenDoneProc, tds.DoneError, tds.CurCmdNone, 0))
		return rw.end()
	}
	if !call.hasStmt {
		return ss.writeError(tds.TokenDoneProc, tds.ServerMessage{Number: 214, State: 2, Class: 16,
			Message: "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'."})
	}
	return ss.runBatch(call.stmt, true)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
