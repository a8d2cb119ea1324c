package lab

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The retry section: go-mssqldb alone sees each transient error; behind
// the retry wrapper it gets SELECT 1 = 1 (the transient login on its 3rd
// attempt, the deadlock victim on its 2nd, the failover once its 2 s are
// over).
func TestRunRetry(t *testing.T) {
	if testing.Short() {
		t.Skip("retry section: about 3 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := RunRetry(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 3 || !rep.OK() {
		t.Fatalf("rows %+v", rep.Rows)
	}
	if a := rep.Rows[0].Attempts; a != 3 {
		t.Errorf("transient login: %d attempts, want 3", a)
	}
	if a := rep.Rows[1].Attempts; a != 2 {
		t.Errorf("deadlock victim: %d attempts, want 2", a)
	}
	if a := rep.Rows[2].Attempts; a < 2 {
		t.Errorf("failover: %d attempts, want more than 1", a)
	}
	var b bytes.Buffer
	if err := rep.Table(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"transient-login", "error 40613: ", "error 1205: ", "SELECT 1 = 1 after 3 attempts"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	t.Logf("\n%s", b.String())
}
