package tds

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// QueryMode says what a SessionDecoder keeps of SQL batch text.
type QueryMode string

// Query recording modes (the record_queries option, docs/bridge.md).
const (
	QueriesNone        QueryMode = "none"        // counts only (the default)
	QueriesFingerprint QueryMode = "fingerprint" // a hash of the normalised text
	QueriesText        QueryMode = "text"        // the text itself, cut at MaxQueryText
)

// ParseQueryMode accepts "", none, fingerprint and text.
func ParseQueryMode(s string) (QueryMode, error) {
	switch QueryMode(strings.ToLower(s)) {
	case "", QueriesNone:
		return QueriesNone, nil
	case QueriesFingerprint:
		return QueriesFingerprint, nil
	case QueriesText:
		return QueriesText, nil
	}
	return "", fmt.Errorf("tds: record_queries %q: want none, fingerprint or text", s)
}

// Bounds of what a SessionDecoder keeps, so a long session's summary stays
// small whatever the traffic.
const (
	// MaxSessionErrors is how many server ERROR tokens a summary keeps;
	// later ones are only counted.
	MaxSessionErrors = 16
	// MaxSessionProcs is how many distinct RPC procedure names it keeps.
	MaxSessionProcs = 16
	// MaxSessionQueries is how many queries (text or fingerprint) it keeps.
	MaxSessionQueries = 16
	// MaxQueryText is where a recorded query text is cut, in bytes.
	MaxQueryText = 1024
	// MaxSessionIssues is how many decoding problems it keeps.
	MaxSessionIssues = 8
	// DefaultDecodeLimit is how much of one message's payload is kept for
	// decoding; the rest of a longer message is counted, not decoded.
	DefaultDecodeLimit = 64 << 10
)

// SessionSummary is what a SessionDecoder learned from a decrypted TDS
// session. It never holds a password: LOGIN7 is reduced to its public
// fields at once.
type SessionSummary struct {
	Prelogin *Prelogin `json:"-"` // the client's PRELOGIN, when seen (TDS 8.0 strict: inside TLS)

	Login        *SessionLogin   `json:"login,omitempty"`
	LoginOutcome string          `json:"login_outcome,omitempty"` // success, failed, pending
	LoginAck     *LoginAck       `json:"-"`
	Errors       []ServerMessage `json:"-"`
	ErrorCount   int             `json:"error_count"`
	Database     string          `json:"database,omitempty"`
	Language     string          `json:"language,omitempty"`
	PacketSize   string          `json:"packet_size,omitempty"`
	Routing      string          `json:"routing,omitempty"` // host:port from an ENVCHANGE ROUTING
	SQLBatches   int             `json:"sql_batches"`
	RPCs         int             `json:"rpcs"`
	Procedures   []string        `json:"procedures,omitempty"`
	Attentions   int             `json:"attentions"`
	Dones        int             `json:"dones"`
	Rows         uint64          `json:"rows"` // sum of DONE-family row counts with DoneCount set
	Queries      []string        `json:"queries,omitempty"`
	Messages     [2]int          `json:"-"` // messages seen: [client→server, server→client]
	Truncated    int             `json:"truncated,omitempty"`
	Issues       []string        `json:"issues,omitempty"`
}

// SessionLogin is the public part of a LOGIN7 (MS-TDS §2.2.6.4).
type SessionLogin struct {
	TDSVersion uint32
	User       string
	App        string
	Host       string
	Server     string
	Database   string
	Library    string
	Language   string
	SSPI       bool // integrated (Windows) authentication: an SSPI blob is present
	FeatureExt bool
}

// SessionDecoder decodes both directions of a TDS session that a bridge
// sees in plaintext: packets are reassembled into messages, at most
// DecodeLimit bytes of each message are kept, and every message is reduced
// to a few facts (SessionSummary). It never fails: what it cannot decode
// it notes in Issues and skips. Not safe for concurrent use; the caller
// serialises the two directions.
type SessionDecoder struct {
	// Queries says what is kept of SQL batch text; "" means QueriesNone.
	Queries QueryMode
	// DecodeLimit caps the bytes of one message kept for decoding; 0
	// means DefaultDecodeLimit.
	DecodeLimit int

	sum      SessionSummary
	dirs     [2]decodeDir
	login7   bool // LOGIN7 seen, its answer not yet
	prelogin bool // PRELOGIN seen, its answer not yet
}

type decodeDir struct {
	hdr     [HeaderLen]byte
	nhdr    int
	left    int // payload bytes of the current packet still to come
	typ     PacketType
	payload []byte
	over    bool // the message outgrew DecodeLimit
	midMsg  bool
	eom     bool
	broken  bool // a bad header: the direction is no longer decoded
}

func (d *SessionDecoder) limit() int {
	if d.DecodeLimit > 0 {
		return d.DecodeLimit
	}
	return DefaultDecodeLimit
}

// Feed hands the decoder bytes that went from the client to the server
// (fromClient) or back. Any split of the stream is fine.
func (d *SessionDecoder) Feed(fromClient bool, b []byte) {
	di := 1
	if fromClient {
		di = 0
	}
	s := &d.dirs[di]
	for len(b) > 0 && !s.broken {
		if s.left == 0 {
			n := copy(s.hdr[s.nhdr:], b)
			s.nhdr += n
			b = b[n:]
			if s.nhdr < HeaderLen {
				return
			}
			s.nhdr = 0
			h, err := ParseHeader(s.hdr[:])
			if err != nil {
				s.broken = true
				d.issue(fmt.Sprintf("%s: %v; no longer decoded", dirName(fromClient), err))
				return
			}
			if s.midMsg && h.Type != s.typ {
				d.issue(fmt.Sprintf("%s: packet of type %s inside a %s message", dirName(fromClient), h.Type, s.typ))
				s.payload, s.over = s.payload[:0], false
			}
			if !s.midMsg || h.Type != s.typ {
				s.typ = h.Type
				s.payload, s.over = s.payload[:0], false
			}
			s.left = h.PayloadLen()
			s.eom = h.Status.EOM()
			s.midMsg = !s.eom
			if s.left == 0 && s.eom {
				d.message(fromClient, s.typ, s.payload, s.over)
			}
			continue
		}
		n := min(s.left, len(b))
		room := d.limit() - len(s.payload)
		if room > 0 {
			s.payload = append(s.payload, b[:min(n, room)]...)
		}
		if n > room {
			s.over = true
		}
		s.left -= n
		b = b[n:]
		if s.left == 0 && s.eom {
			d.message(fromClient, s.typ, s.payload, s.over)
			if s.typ == PacketLogin7 {
				clear(s.payload) // the obfuscated password lived here
			}
			s.payload, s.over = s.payload[:0], false
			if cap(s.payload) > 2*DefaultPacketSize {
				s.payload = nil // do not hold a big buffer for an idle session
			}
		}
	}
}

// Message hands the decoder one whole message, for callers that read
// messages themselves (the LOGIN7 of a login-only connection).
func (d *SessionDecoder) Message(fromClient bool, t PacketType, payload []byte) {
	over := len(payload) > d.limit()
	if over {
		payload = payload[:d.limit()]
	}
	d.message(fromClient, t, payload, over)
}

func dirName(fromClient bool) string {
	if fromClient {
		return "client"
	}
	return "server"
}

func (d *SessionDecoder) issue(s string) {
	if len(d.sum.Issues) < MaxSessionIssues {
		d.sum.Issues = append(d.sum.Issues, s)
	}
}

func (d *SessionDecoder) message(fromClient bool, t PacketType, p []byte, over bool) {
	if fromClient {
		d.sum.Messages[0]++
	} else {
		d.sum.Messages[1]++
	}
	if over {
		d.sum.Truncated++
	}
	if fromClient {
		d.clientMessage(t, p, over)
		return
	}
	if t != PacketReply {
		d.issue(fmt.Sprintf("server: %s message", t))
		return
	}
	switch {
	case d.prelogin:
		d.prelogin = false // the PRELOGIN answer: nothing to count
	case d.login7:
		d.loginResponse(p, over)
	default:
		d.result(p, over)
	}
}

func (d *SessionDecoder) clientMessage(t PacketType, p []byte, over bool) {
	switch t {
	case PacketPrelogin:
		if d.sum.Prelogin == nil && d.sum.Login == nil {
			if pl, err := ParsePrelogin(p); err == nil {
				d.sum.Prelogin = pl
			} else {
				d.issue(fmt.Sprintf("client PRELOGIN: %v", err))
			}
			d.prelogin = true
		}
	case PacketLogin7:
		l, err := ParseLogin7(p)
		if err != nil {
			d.issue(fmt.Sprintf("client LOGIN7: %v", err))
		} else {
			d.sum.Login = &SessionLogin{
				TDSVersion: l.TDSVersion, User: l.UserName, App: l.AppName, Host: l.HostName,
				Server: l.ServerName, Database: l.Database, Library: l.LibraryName,
				Language: l.Language, SSPI: len(l.SSPI) > 0, FeatureExt: l.FeatureExt != nil,
			}
		}
		d.login7 = true
		d.sum.LoginOutcome = "pending"
	case PacketSQLBatch:
		d.sum.SQLBatches++
		if d.Queries == QueriesNone || d.Queries == "" || len(d.sum.Queries) >= MaxSessionQueries {
			return
		}
		text, err := ParseSQLBatch(p)
		if err != nil && !over {
			d.issue(fmt.Sprintf("client SQL batch: %v", err))
			return
		}
		if d.Queries == QueriesFingerprint {
			d.sum.Queries = append(d.sum.Queries, QueryFingerprint(text))
		} else {
			d.sum.Queries = append(d.sum.Queries, cutText(text, MaxQueryText))
		}
	case PacketRPC:
		d.sum.RPCs++
		name, err := ParseRPCName(p)
		if err != nil {
			d.issue(fmt.Sprintf("client RPC: %v", err))
			return
		}
		if len(d.sum.Procedures) < MaxSessionProcs && !containsString(d.sum.Procedures, name) {
			d.sum.Procedures = append(d.sum.Procedures, cutText(name, 128))
		}
	case PacketAttention:
		d.sum.Attentions++
	case PacketSSPI, PacketFedAuthToken:
		// Authentication continues; the login answer is still to come.
	}
}

func (d *SessionDecoder) loginResponse(p []byte, over bool) {
	r, err := ParseLoginResponse(p)
	if r.Ack != nil {
		d.login7 = false
		d.sum.LoginAck = r.Ack
		d.sum.LoginOutcome = "success"
	} else if len(r.Errors) > 0 {
		d.login7 = false
		d.sum.LoginOutcome = "failed"
	}
	d.addMessages(r.Errors)
	d.envChanges(r.EnvChanges)
	if r.Done != nil {
		d.done(*r.Done)
	}
	if err != nil && !(over && errors.Is(err, ErrTokenTruncated)) {
		d.issue(fmt.Sprintf("server login response: %v", err))
	}
}

func (d *SessionDecoder) result(p []byte, over bool) {
	r, err := ParseResult(p)
	d.addMessages(r.Errors)
	d.envChanges(r.EnvChanges)
	for _, dn := range r.Done {
		d.done(dn)
	}
	// A result with a column type the token parser cannot measure stops
	// the walk: that is a limit of this decoder, not a fault of the
	// stream, so it is not an issue. A truncated token in a message cut at
	// DecodeLimit is expected too.
	if err != nil && !errors.Is(err, ErrUnsupportedType) && !errors.Is(err, ErrUnknownToken) &&
		!(over && errors.Is(err, ErrTokenTruncated)) {
		d.issue(fmt.Sprintf("server result: %v", err))
	}
}

func (d *SessionDecoder) addMessages(ms []ServerMessage) {
	for _, m := range ms {
		d.sum.ErrorCount++
		if len(d.sum.Errors) < MaxSessionErrors {
			m.Message = cutText(m.Message, MaxQueryText)
			d.sum.Errors = append(d.sum.Errors, m)
		}
	}
}

func (d *SessionDecoder) envChanges(es []EnvChange) {
	for _, e := range es {
		switch e.Type {
		case EnvDatabase:
			d.sum.Database = cutText(e.New, 128)
		case EnvLanguage:
			d.sum.Language = cutText(e.New, 128)
		case EnvPacketSize:
			d.sum.PacketSize = cutText(e.New, 16)
		case EnvRouting:
			d.sum.Routing = routingValue(e.NewBytes)
		}
	}
}

// routingValue decodes the ROUTING value (MS-TDS §2.2.7.9): protocol (1
// byte, 0 = TCP), port (USHORT), then the server name as US_VARCHAR.
func routingValue(b []byte) string {
	c := leCursor(b)
	var proto uint8
	var port uint16
	var host string
	if !c.u8(&proto) || !c.u16(&port) || !c.usVarChar(&host) {
		return "(malformed)"
	}
	return fmt.Sprintf("%s:%d", cutText(host, 255), port)
}

func (d *SessionDecoder) done(dn Done) {
	d.sum.Dones++
	if dn.Status&DoneCount != 0 {
		d.sum.Rows += dn.RowCount
	}
}

// Summary returns what was decoded so far. Its slices are copies.
func (d *SessionDecoder) Summary() SessionSummary {
	s := d.sum
	s.Errors = append([]ServerMessage(nil), s.Errors...)
	s.Procedures = append([]string(nil), s.Procedures...)
	s.Queries = append([]string(nil), s.Queries...)
	s.Issues = append([]string(nil), s.Issues...)
	if s.Login != nil {
		l := *s.Login
		s.Login = &l
	}
	if s.LoginAck != nil {
		a := *s.LoginAck
		s.LoginAck = &a
	}
	return s
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// cutText cuts s at n bytes without splitting a UTF-8 sequence.
func cutText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// NormalizeQuery reduces a T-SQL text to its shape: string literals
// ('...', N'...') and numbers become ?, comments go, runs of white space
// become one space, and letters outside literals are lower-cased. Two
// batches that differ only in their literals normalise alike.
func NormalizeQuery(q string) string {
	var b strings.Builder
	rs := []rune(q)
	space := false
	emit := func(r rune) {
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '-' && i+1 < len(rs) && rs[i+1] == '-':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
			space = true
		case r == '/' && i+1 < len(rs) && rs[i+1] == '*':
			i += 2
			for i+1 < len(rs) && !(rs[i] == '*' && rs[i+1] == '/') {
				i++
			}
			i++
			space = true
		case unicode.IsSpace(r):
			space = true
		case r == '\'' || ((r == 'N' || r == 'n') && i+1 < len(rs) && rs[i+1] == '\'' && !identBefore(rs, i)):
			if r != '\'' {
				i++
			}
			// Skip to the closing quote; '' is an escaped quote.
			for i++; i < len(rs); i++ {
				if rs[i] == '\'' {
					if i+1 < len(rs) && rs[i+1] == '\'' {
						i++
						continue
					}
					break
				}
			}
			emit('?')
		case unicode.IsDigit(r) && !identBefore(rs, i):
			for i+1 < len(rs) && (unicode.IsDigit(rs[i+1]) || rs[i+1] == '.' || rs[i+1] == 'x' || rs[i+1] == 'X' ||
				(rs[i+1] >= 'a' && rs[i+1] <= 'f') || (rs[i+1] >= 'A' && rs[i+1] <= 'F')) {
				i++
			}
			emit('?')
		default:
			emit(unicode.ToLower(r))
		}
	}
	return b.String()
}

// identBefore reports whether rs[i] continues an identifier (so a digit or
// N there is not a literal).
func identBefore(rs []rune, i int) bool {
	if i == 0 {
		return false
	}
	p := rs[i-1]
	return p == '_' || p == '@' || p == '#' || p == '$' || unicode.IsLetter(p) || unicode.IsDigit(p)
}

// QueryFingerprint is the first 16 hex digits of the SHA-256 of
// NormalizeQuery(q): it groups queries without keeping their literals.
func QueryFingerprint(q string) string {
	h := sha256.Sum256([]byte(NormalizeQuery(q)))
	return hex.EncodeToString(h[:8])
}
