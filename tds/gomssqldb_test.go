package tds

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

// captured holds the client messages a test server saw.
type captured struct {
	prelogin, login7, batch []byte
	err                     error
}

// testServerPassword is what the loopback server accepts.
const testServerPassword = "s3cr€t pass"

// serveOne plays a minimal SQL Server for one go-mssqldb connection with
// encrypt=disable: PRELOGIN (answered NOT_SUP), LOGIN7 (LOGINACK, or ERROR
// 18456 for a wrong password), then one SQL batch answered with a four-column
// row. Everything it writes comes from this package's encoders.
func serveOne(conn net.Conn) (c captured) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	r, w := NewReader(conn), NewWriter(conn)

	m, err := r.ReadMessage()
	if err != nil || m.Type != PacketPrelogin {
		c.err = fmt.Errorf("reading PRELOGIN: %v type %v", err, m.Type)
		return c
	}
	c.prelogin = m.Payload
	p, err := ParsePrelogin(m.Payload)
	if err != nil {
		c.err = err
		return c
	}
	clientEnc, _ := p.Encryption()
	reply, scope := NegotiateEncryption(clientEnc, EncryptNotSup)
	if scope != ScopeNone {
		c.err = fmt.Errorf("client asked for %v, scope %v", clientEnc, scope)
		return c
	}
	resp := &Prelogin{}
	resp.Set(PreloginVersion, ProductVersion{Major: 15, Build: 2000}.Bytes())
	resp.Set(PreloginEncryption, []byte{byte(reply)})
	resp.Set(PreloginInstance, []byte{0})
	resp.Set(PreloginThreadID, nil)
	resp.Set(PreloginMARS, []byte{0})
	if err := w.WriteMessage(PacketReply, resp.Marshal()); err != nil {
		c.err = err
		return c
	}

	if m, err = r.ReadMessage(); err != nil || m.Type != PacketLogin7 {
		c.err = fmt.Errorf("reading LOGIN7: %v type %v", err, m.Type)
		return c
	}
	c.login7 = m.Payload
	l, err := ParseLogin7(m.Payload)
	if err != nil {
		c.err = err
		return c
	}
	if l.Password.Reveal() != testServerPassword {
		b := AppendError(nil, ServerMessage{Number: 18456, State: 1, Class: 14,
			Message: fmt.Sprintf("Login failed for user '%s'.", l.UserName), ServerName: "emu", Line: 1})
		b = AppendDone(b, TokenDone, DoneError, 0, 0)
		c.err = w.WriteMessage(PacketReply, b)
		return c
	}
	coll := DefaultCollation()
	b := AppendEnvChange(nil, EnvDatabase, l.Database, "")
	b = AppendEnvChangeBytes(b, EnvSQLCollation, coll[:], nil)
	b = AppendEnvChange(b, EnvLanguage, "us_english", "")
	b = AppendEnvChange(b, EnvPacketSize, "4096", "4096")
	b = AppendInfo(b, ServerMessage{Number: 5701, State: 2, Message: "Changed database context to '" + l.Database + "'.", ServerName: "emu", Line: 1})
	b = AppendLoginAck(b, LoginAck{Interface: LoginAckInterfaceTSQL, TDSVersion: VersionTDS74,
		ProgName: "Microsoft SQL Server", ProgVersion: [4]byte{15, 0, 0x07, 0xD0}})
	b = AppendDone(b, TokenDone, DoneFinal, 0, 0)
	if err := w.WriteMessage(PacketReply, b); err != nil {
		c.err = err
		return c
	}

	if m, err = r.ReadMessage(); err != nil || m.Type != PacketSQLBatch {
		c.err = fmt.Errorf("reading SQL batch: %v type %v", err, m.Type)
		return c
	}
	c.batch = m.Payload
	cols := []Column{
		{Name: "", Type: ColInt4},
		{Name: "name", Type: ColNVarChar, Size: 40, Nullable: true},
		{Name: "blob", Type: ColBigVarBinary, Size: MaxVarLen, Nullable: true},
		{Name: "big", Type: ColIntN, Size: 8, Nullable: true},
	}
	b = AppendColMetadata(nil, cols)
	b, err = AppendRow(b, cols, []any{int32(1), "héllo", bytes.Repeat([]byte{0xAB}, 6000), nil})
	if err != nil {
		c.err = err
		return c
	}
	b = AppendDone(b, TokenDone, DoneCount, CurCmdSelect, 1)
	if err := w.WriteMessage(PacketReply, b); err != nil {
		c.err = err
		return c
	}
	// Until the client hangs up, answer an ATTENTION as SQL Server does,
	// with DONE(ATTN) (MS-TDS §2.2.1.7): database/sql cancels a query's
	// context when QueryRow's Scan closes the rows, and if go-mssqldb's
	// reader has not finished the response by then it sends an attention
	// and waits 5 s for this acknowledgement (a flake on a loaded machine).
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return c
		}
		if m.Type == PacketAttention {
			if err := w.WriteMessage(PacketReply, AppendDone(nil, TokenDone, DoneAttn, CurCmdNone, 0)); err != nil {
				return c
			}
		}
	}
}

// runGoMssqldb starts a loopback server, runs fn against it with a
// go-mssqldb DSN for the given password, and returns what the server saw.
func runGoMssqldb(t *testing.T, password string, fn func(ctx context.Context, db *sql.DB) error) (captured, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan captured, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- captured{err: err}
			return
		}
		done <- serveOne(conn)
	}()

	q := url.Values{}
	q.Set("database", "master")
	q.Set("encrypt", "disable")
	q.Set("app name", "tdsproxy-test")
	q.Set("connection timeout", "10")
	q.Set("dial timeout", "20") // generous: a loaded CI machine is slow to log in
	u := url.URL{Scheme: "sqlserver", User: url.UserPassword("sa", password), Host: ln.Addr().String(), RawQuery: q.Encode()}
	db, err := sql.Open("sqlserver", u.String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clientErr := fn(ctx, db)
	db.Close()
	ln.Close()
	select {
	case c := <-done:
		return c, clientErr
	case <-time.After(25 * time.Second):
		t.Fatal("server did not finish")
	}
	return captured{}, clientErr
}

// TestGoMssqldbLive runs the real go-mssqldb v1.11.2 client against a
// loopback server built from this package: the client accepts every
// message we encode, and what it sends parses and re-encodes byte for byte.
func TestGoMssqldbLive(t *testing.T) {
	t.Run("login and query", func(t *testing.T) {
		var (
			one  int32
			name string
			blob []byte
			big  sql.NullInt64
		)
		c, err := runGoMssqldb(t, testServerPassword, func(ctx context.Context, db *sql.DB) error {
			return db.QueryRowContext(ctx, "SELECT 1, N'héllo', 0xAB, CAST(NULL AS bigint)").Scan(&one, &name, &blob, &big)
		})
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		if c.err != nil {
			t.Fatalf("server: %v", c.err)
		}
		if one != 1 || name != "héllo" || len(blob) != 6000 || big.Valid {
			t.Errorf("row = %d %q %d bytes %v", one, name, len(blob), big)
		}

		p, err := ParsePrelogin(c.prelogin)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Marshal(); !bytes.Equal(got, c.prelogin) {
			t.Errorf("PRELOGIN re-encodes differently:\n% X\n% X", got, c.prelogin)
		}
		if want := tokensOf(mustParsePrelogin(t, fixtureGoMssqldbPrelogin(t))); fmt.Sprint(tokensOf(p)) != fmt.Sprint(want) {
			t.Errorf("PRELOGIN options %v, fixture has %v", tokensOf(p), want)
		}
		live, fix := c.prelogin, fixtureGoMssqldbPrelogin(t)
		if len(live) != len(fix) || !bytes.Equal(live[:44], fix[:44]) {
			t.Errorf("PRELOGIN differs from the fixture outside TRACEID:\n% X\n% X", live, fix)
		}
		if e, _ := p.Encryption(); e != EncryptNotSup {
			t.Errorf("Encryption = %v", e)
		}
		if tr, ok := p.TraceID(); !ok || tr.ConnectionID == (GUID{}) {
			t.Errorf("TraceID = %v, %v", tr, ok)
		}

		l, err := ParseLogin7(c.login7)
		if err != nil {
			t.Fatal(err)
		}
		if l.TDSVersion != VersionTDS74 || l.UserName != "sa" || l.Password.Reveal() != testServerPassword ||
			l.Database != "master" || l.AppName != "tdsproxy-test" || l.LibraryName != "go-mssqldb" ||
			l.ClientProgVersion() != "1.11.2" || l.PacketSize != 4096 {
			t.Errorf("LOGIN7 = %+v (%s)", l, l.ClientProgVersion())
		}
		if got := l.Marshal(); !bytes.Equal(got, c.login7) {
			t.Errorf("LOGIN7 re-encodes differently:\n% X\n% X", got, c.login7)
		}

		text, err := ParseSQLBatch(c.batch)
		if err != nil || text != "SELECT 1, N'héllo', 0xAB, CAST(NULL AS bigint)" {
			t.Errorf("batch = %q, %v", text, err)
		}
		if got := AppendSQLBatch(nil, text, 0); !bytes.Equal(got, c.batch) {
			t.Errorf("SQL batch re-encodes differently:\n% X\n% X", got, c.batch)
		}
	})
	t.Run("wrong password gets error 18456", func(t *testing.T) {
		c, err := runGoMssqldb(t, "wrong", func(ctx context.Context, db *sql.DB) error {
			return db.PingContext(ctx)
		})
		if c.err != nil {
			t.Fatalf("server: %v", c.err)
		}
		var me mssql.Error
		if !errors.As(err, &me) || me.Number != 18456 || me.Class != 14 {
			t.Fatalf("client error = %v (%T)", err, err)
		}
	})
}

func mustParsePrelogin(t *testing.T, b []byte) *Prelogin {
	t.Helper()
	p, err := ParsePrelogin(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
