package tds

import (
	"bytes"
	"testing"
)

func TestErrorReplyRoundTrip(t *testing.T) {
	m := ServerMessage{Number: 40613, State: 1, Class: 17, Message: "Database 'db' on server 's' is not currently available.", ServerName: "tdsproxy"}
	raw := ErrorReply(m, 512, 7)
	r := NewReader(bytes.NewReader(raw))
	msg, err := r.ReadMessage()
	if err != nil || msg.Type != PacketReply {
		t.Fatalf("ReadMessage: %v %v", msg.Type, err)
	}
	res, err := ParseResult(msg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 1 || res.Errors[0].Number != 40613 || res.Errors[0].Class != 17 || res.Errors[0].Message != m.Message {
		t.Fatalf("errors = %+v", res.Errors)
	}
	if len(res.Done) != 1 || res.Done[0].Status != DoneError {
		t.Fatalf("done = %+v", res.Done)
	}
}

func TestRoutingEnvChangeRoundTrip(t *testing.T) {
	tok := AppendRoutingEnvChange(nil, Routing{Port: 14330, Server: "127.0.0.1"})
	login := AppendDone(append([]byte(nil), tok...), TokenDone, DoneFinal, 0, 0)
	res, err := ParseResult(login)
	if err != nil || len(res.EnvChanges) != 1 || res.EnvChanges[0].Type != EnvRouting {
		t.Fatalf("ParseResult: %+v, %v", res, err)
	}
	rt, err := ParseRouting(res.EnvChanges[0].NewBytes)
	if err != nil || rt.Port != 14330 || rt.Server != "127.0.0.1" {
		t.Fatalf("ParseRouting = %+v, %v", rt, err)
	}
	if got := routingValue(res.EnvChanges[0].NewBytes); got != "127.0.0.1:14330" {
		t.Fatalf("routingValue = %q", got)
	}
	// Re-encoding the decoded token gives the same bytes.
	if again := res.EnvChanges[0].AppendTo(nil); !bytes.Equal(again, tok) {
		t.Fatalf("re-encoded\n% X\nwant\n% X", again, tok)
	}
}

func TestInsertBeforeFinalDone(t *testing.T) {
	done := AppendDone(nil, TokenDone, DoneFinal, 0, 0)
	p := append([]byte{0x01, 0x02}, done...)
	out, ok := InsertBeforeFinalDone(p, []byte{0xEE})
	if !ok || !bytes.Equal(out, append([]byte{0x01, 0x02, 0xEE}, done...)) {
		t.Fatalf("out = % X, %v", out, ok)
	}
	if _, ok := InsertBeforeFinalDone([]byte{1, 2, 3}, nil); ok {
		t.Fatal("a payload without DONE was accepted")
	}
}

func TestReplaceRequestKeepsAllHeaders(t *testing.T) {
	req := AppendSQLBatch(nil, "UPDATE t SET x = 1", 0x1122334455667788)
	out := ReplaceRequest(req, "IF @@TRANCOUNT > 0 ROLLBACK")
	if !bytes.Equal(AllHeaders(out), AllHeaders(req)) {
		t.Fatal("ALL_HEADERS changed")
	}
	if text, err := ParseSQLBatch(out); err != nil || text != "IF @@TRANCOUNT > 0 ROLLBACK" {
		t.Fatalf("text = %q, %v", text, err)
	}
	rpc := AppendRPCName(nil, "sp_executesql", 0)
	if text, err := ParseSQLBatch(ReplaceRequest(rpc, "x")); err != nil || text != "x" {
		t.Fatalf("from RPC: %q, %v", text, err)
	}
}
