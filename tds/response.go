package tds

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors returned by the token decoders; test with errors.Is.
var (
	// ErrUnknownToken means the scanner met a token it cannot measure; what
	// was decoded before it is still returned.
	ErrUnknownToken = errors.New("tds: unknown token")
	// ErrTokenTruncated means a token runs past the end of the payload or
	// of its own declared length.
	ErrTokenTruncated = errors.New("tds: token truncated")
)

// LoginResponse is what a server sends in reply to LOGIN7 (MS-TDS §2.2.6.4
// response; tokens §2.2.7): typically ENVCHANGEs, INFOs, LOGINACK and DONE
// on success, ERROR and DONE with DoneError on failure.
type LoginResponse struct {
	Ack           *LoginAck
	Errors        []ServerMessage
	Infos         []ServerMessage
	EnvChanges    []EnvChange
	Done          *Done // the last DONE-family token
	SSPI          []byte
	FedAuthInfo   []byte // raw FEDAUTHINFO body after its length
	FeatureExtAck []FeatureAck
	// Tokens lists every token type met, in order.
	Tokens []TokenType
}

// Result is a decoded tabular result (the reply to a SQL batch), limited to
// the column types this package supports.
type Result struct {
	Columns    []Column // from the last COLMETADATA
	Rows       [][]any  // every ROW/NBCROW, in order
	Errors     []ServerMessage
	Infos      []ServerMessage
	EnvChanges []EnvChange
	Done       []Done
	// ReturnStatus holds RETURNSTATUS values, in order.
	ReturnStatus []int32
	Tokens       []TokenType
}

// tokenSink receives decoded tokens; unset callbacks mean the token is
// skipped after being measured.
type tokenSink struct {
	ack          func(LoginAck)
	msg          func(tok TokenType, m ServerMessage)
	env          func(EnvChange)
	done         func(Done)
	sspi         func([]byte)
	fedAuth      func([]byte)
	featureAck   func([]FeatureAck)
	returnStatus func(int32)
	colMetadata  func([]Column)
	row          func([]any)
	columns      func() []Column
	tok          func(TokenType)
	allowResult  bool // COLMETADATA/ROW/NBCROW understood
}

// scanTokens walks payload token by token. It stops at the first token it
// cannot measure or decode and returns that error; everything before it has
// been delivered to the sink.
func scanTokens(payload []byte, s tokenSink) error {
	c := leCursor(payload)
	for len(c) > 0 {
		off := len(payload) - len(c)
		var t uint8
		c.u8(&t)
		tok := TokenType(t)
		if err := scanToken(&c, tok, s); err != nil {
			if errors.Is(err, ErrUnknownToken) {
				return fmt.Errorf("%w %s at offset %d", ErrUnknownToken, tok, off)
			}
			return fmt.Errorf("%s token at offset %d: %w", tok, off, err)
		}
		if s.tok != nil {
			s.tok(tok)
		}
	}
	return nil
}

// lenBody reads a USHORT length and returns that many bytes as a cursor.
func lenBody(c *leCursor) (leCursor, error) {
	var body []byte
	if !c.usVarByte(&body) {
		return nil, ErrTokenTruncated
	}
	return leCursor(body), nil
}

func scanToken(c *leCursor, tok TokenType, s tokenSink) error {
	switch tok {
	case TokenDone, TokenDoneProc, TokenDoneInProc:
		var d Done
		d.Token = tok
		var st uint16
		if !c.u16(&st) || !c.u16(&d.CurCmd) || !c.u64(&d.RowCount) {
			return ErrTokenTruncated
		}
		d.Status = DoneStatus(st)
		if s.done != nil {
			s.done(d)
		}
	case TokenEnvChange:
		body, err := lenBody(c)
		if err != nil {
			return err
		}
		return parseEnvChanges(body, s.env)
	case TokenLoginAck:
		body, err := lenBody(c)
		if err != nil {
			return err
		}
		var a LoginAck
		var ver, pv []byte
		if !body.u8(&a.Interface) || !body.bytes(&ver, 4) || !body.bVarChar(&a.ProgName) || !body.bytes(&pv, 4) {
			return ErrTokenTruncated
		}
		// TDSVersion is big-endian in LOGINACK (MS-TDS §2.2.7.14).
		a.TDSVersion = binary.BigEndian.Uint32(ver)
		copy(a.ProgVersion[:], pv)
		if s.ack != nil {
			s.ack(a)
		}
	case TokenError, TokenInfo:
		body, err := lenBody(c)
		if err != nil {
			return err
		}
		var m ServerMessage
		var num uint32
		if !body.u32(&num) || !body.u8(&m.State) || !body.u8(&m.Class) ||
			!body.usVarChar(&m.Message) || !body.bVarChar(&m.ServerName) || !body.bVarChar(&m.ProcName) {
			return ErrTokenTruncated
		}
		m.Number = int32(num)
		// TDS 7.2+ has a 4-byte line number; TDS 7.1 and earlier a 2-byte one.
		if len(body) == 2 {
			var l uint16
			body.u16(&l)
			m.Line = int32(l)
		} else {
			var l uint32
			if !body.u32(&l) {
				return ErrTokenTruncated
			}
			m.Line = int32(l)
		}
		if s.msg != nil {
			s.msg(tok, m)
		}
	case TokenSSPI:
		body, err := lenBody(c)
		if err != nil {
			return err
		}
		if s.sspi != nil {
			s.sspi(body)
		}
	case TokenOrder, TokenTabName, TokenColInfo:
		// USHORT-length tokens we measure but do not decode.
		if _, err := lenBody(c); err != nil {
			return err
		}
	case TokenFedAuthInfo:
		var body []byte
		if !c.lVarByte(&body) {
			return ErrTokenTruncated
		}
		if s.fedAuth != nil {
			s.fedAuth(body)
		}
	case TokenFeatureExtAck:
		var acks []FeatureAck
		for {
			var id uint8
			if !c.u8(&id) {
				return ErrTokenTruncated
			}
			if id == featureExtTerminate {
				break
			}
			var data []byte
			if !c.lVarByte(&data) {
				return ErrTokenTruncated
			}
			acks = append(acks, FeatureAck{ID: id, Data: data})
		}
		if s.featureAck != nil {
			s.featureAck(acks)
		}
	case TokenReturnStatus:
		var v uint32
		if !c.u32(&v) {
			return ErrTokenTruncated
		}
		if s.returnStatus != nil {
			s.returnStatus(int32(v))
		}
	case TokenColMetadata:
		if !s.allowResult {
			return ErrUnknownToken
		}
		cols, err := parseColMetadata(c)
		if err != nil {
			return err
		}
		s.colMetadata(cols)
	case TokenRow:
		if !s.allowResult {
			return ErrUnknownToken
		}
		row, err := parseRow(c, s.columns())
		if err != nil {
			return err
		}
		s.row(row)
	case TokenNBCRow:
		if !s.allowResult {
			return ErrUnknownToken
		}
		row, err := parseNBCRow(c, s.columns())
		if err != nil {
			return err
		}
		s.row(row)
	default:
		return ErrUnknownToken
	}
	return nil
}

// parseNBCRow decodes an NBCROW (MS-TDS §2.2.7.15): a null bitmap, one bit
// per column, then the non-null values as in ROW.
func parseNBCRow(c *leCursor, cols []Column) ([]any, error) {
	var bitmap []byte
	if !c.bytes(&bitmap, (len(cols)+7)/8) {
		return nil, ErrTokenTruncated
	}
	row := make([]any, len(cols))
	for i, col := range cols {
		if bitmap[i/8]&(1<<(i%8)) != 0 {
			continue // NULL
		}
		v, err := parseRow(c, []Column{col})
		if err != nil {
			return nil, err
		}
		row[i] = v[0]
	}
	return row, nil
}

// parseEnvChanges decodes the changes inside one ENVCHANGE token body. The
// spec puts one change in a token; go-mssqldb loops, and so do we.
func parseEnvChanges(body leCursor, sink func(EnvChange)) error {
	for len(body) > 0 {
		var t uint8
		body.u8(&t)
		e := EnvChange{Type: EnvChangeType(t)}
		ok := true
		switch e.Type.kind() {
		case envString:
			ok = body.bVarChar(&e.New) && body.bVarChar(&e.Old)
		case envBytes:
			ok = body.bVarByte(&e.NewBytes) && body.bVarByte(&e.OldBytes)
		case envLBytes:
			ok = body.lVarByte(&e.NewBytes) && body.bVarByte(&e.OldBytes)
		case envRouting:
			ok = body.usVarByte(&e.NewBytes) && body.usVarByte(&e.OldBytes)
		default:
			// Unknown type: its layout is unknown, keep the rest raw.
			e.NewBytes = body
			body = nil
		}
		if !ok {
			return fmt.Errorf("%w: ENVCHANGE %s", ErrTokenTruncated, e.Type)
		}
		if sink != nil {
			sink(e)
		}
	}
	return nil
}

// ParseLoginResponse decodes the tokens of a login response (the payload of
// the server's reply to LOGIN7). It understands ENVCHANGE, LOGINACK, ERROR,
// INFO, SSPI, FEDAUTHINFO, FEATUREEXTACK, RETURNSTATUS, ORDER and the DONE
// family; at any other token it stops and returns what it decoded together
// with an error wrapping ErrUnknownToken that names the token. A truncated
// token gives ErrTokenTruncated, again with the partial response.
func ParseLoginResponse(payload []byte) (*LoginResponse, error) {
	r := &LoginResponse{}
	err := scanTokens(payload, tokenSink{
		ack: func(a LoginAck) { r.Ack = &a },
		msg: func(t TokenType, m ServerMessage) {
			if t == TokenError {
				r.Errors = append(r.Errors, m)
			} else {
				r.Infos = append(r.Infos, m)
			}
		},
		env:        func(e EnvChange) { r.EnvChanges = append(r.EnvChanges, e) },
		done:       func(d Done) { r.Done = &d },
		sspi:       func(b []byte) { r.SSPI = b },
		fedAuth:    func(b []byte) { r.FedAuthInfo = b },
		featureAck: func(a []FeatureAck) { r.FeatureExtAck = append(r.FeatureExtAck, a...) },
		tok:        func(t TokenType) { r.Tokens = append(r.Tokens, t) },
	})
	return r, err
}

// ParseResult decodes a tabular result: COLMETADATA, ROW and NBCROW for the
// supported column types, plus everything ParseLoginResponse understands.
// It stops at the first token it cannot decode and returns the partial
// result with the error (ErrUnknownToken, ErrTokenTruncated or
// ErrUnsupportedType).
func ParseResult(payload []byte) (*Result, error) {
	r := &Result{}
	err := scanTokens(payload, tokenSink{
		msg: func(t TokenType, m ServerMessage) {
			if t == TokenError {
				r.Errors = append(r.Errors, m)
			} else {
				r.Infos = append(r.Infos, m)
			}
		},
		env:          func(e EnvChange) { r.EnvChanges = append(r.EnvChanges, e) },
		done:         func(d Done) { r.Done = append(r.Done, d) },
		returnStatus: func(v int32) { r.ReturnStatus = append(r.ReturnStatus, v) },
		colMetadata:  func(c []Column) { r.Columns = c },
		row:          func(v []any) { r.Rows = append(r.Rows, v) },
		columns:      func() []Column { return r.Columns },
		tok:          func(t TokenType) { r.Tokens = append(r.Tokens, t) },
		allowResult:  true,
	})
	return r, err
}

// ParseDone decodes one DONE, DONEPROC or DONEINPROC token starting at its
// type byte (b needs at least DoneLen bytes; more are ignored).
func ParseDone(b []byte) (Done, error) {
	if len(b) < 1 {
		return Done{}, fmt.Errorf("%w: empty DONE", ErrTokenTruncated)
	}
	switch b[0] {
	case TokenDone, TokenDoneProc, TokenDoneInProc:
	default:
		return Done{}, fmt.Errorf("%w: %s where a DONE was expected", ErrUnknownToken, TokenType(b[0]))
	}
	var d Done
	err := scanTokens(b[:min(len(b), DoneLen)], tokenSink{done: func(x Done) { d = x }})
	return d, err
}
