package probe

import (
	"context"
	"net"
	"time"

	"github.com/tdsproxy/tdsproxy/tds"
)

// PRELOGIN (MS-TDS §2.2.6.5) questions: the first, timed exchange, the
// timing samples, and the answer to each ENCRYPTION value.

type timedPL struct {
	pl           *tds.Prelogin
	connect, rtt time.Duration
}

// timedPrelogin connects, sends PRELOGIN with ENCRYPT_OFF and times both.
func (p *prober) timedPrelogin(ctx context.Context) (timedPL, error) {
	var t timedPL
	err := p.connTimed(ctx, func(c net.Conn, connect time.Duration) error {
		t.connect = connect
		s := time.Now()
		pl, err := p.exchangePrelogin(c, tds.EncryptOff)
		t.rtt = time.Since(s)
		t.pl = pl
		return err
	})
	return t, err
}

// timings takes the remaining connect/PRELOGIN samples one after another,
// so they do not queue behind each other on the server.
func (p *prober) timings(ctx context.Context, res *Result) {
	n := p.cfg.Samples
	if n <= 0 {
		n = DefaultSamples
	}
	var connect, rtt []float64
	var fails []string
	for range n - 1 {
		t, err := p.timedPrelogin(ctx)
		if err != nil {
			fails = append(fails, reason(p.cfg.Target, p.timeout, err))
			continue
		}
		connect = append(connect, ms(t.connect))
		rtt = append(rtt, ms(t.rtt))
	}
	// res.Timing already holds the first sample; only this goroutine
	// appends to it until Run's wg.Wait.
	res.Timing.ConnectMS = append(res.Timing.ConnectMS, connect...)
	res.Timing.PreloginMS = append(res.Timing.PreloginMS, rtt...)
	res.Timing.Failures = append(res.Timing.Failures, fails...)
	p.progress("timing: connect %v ms, PRELOGIN round trip %v ms", res.Timing.ConnectMS, res.Timing.PreloginMS)
}

// encryptionAnswer sends PRELOGIN with enc and returns the answer's
// ENCRYPTION, or "closed".
func (p *prober) encryptionAnswer(ctx context.Context, enc tds.Encryption) string {
	var ans string
	err := p.conn(ctx, func(c net.Conn) error {
		pl, err := p.exchangePrelogin(c, enc)
		if err != nil {
			return err
		}
		e, _ := pl.Encryption()
		ans = e.Base().String()
		return nil
	})
	if err != nil {
		return "closed"
	}
	return ans
}

func (p *prober) fillPrelogin(r *PreloginResult, pl *tds.Prelogin) {
	if v, ok := pl.Version(); ok {
		r.Version = v.String()
	}
	r.Answers = map[string]string{}
	if e, ok := pl.Encryption(); ok {
		r.Answers["OFF"] = e.Base().String()
	}
	if d, ok := pl.Get(tds.PreloginInstance); ok && p.cfg.Instance != "" {
		// MS-TDS §2.2.6.5 INSTOPT: the server answers 0x00 when the
		// instance name matched, 0x01 when it did not.
		if len(d) > 0 && d[0] == 0 {
			r.Instance = "ok"
		} else {
			r.Instance = "mismatch"
		}
	}
	if b, ok := pl.FedAuthRequired(); ok {
		r.FedAuthRequired = b
	}
	if b, ok := pl.MARS(); ok {
		r.MARS = b
	}
}

// fillEncryption infers the server's setting from its answers (MS-TDS
// §2.2.6.5 table): REQ to OFF means it forces encryption.
func (p *prober) fillEncryption(r *PreloginResult) {
	if r.Via != "tds7" {
		return
	}
	switch r.Answers["OFF"] {
	case tds.EncryptReq.String(), tds.EncryptOn.String():
		r.Encryption, r.ForcesEncryption = tds.EncryptOn.String(), true
	case tds.EncryptNotSup.String():
		r.Encryption = tds.EncryptNotSup.String()
	default:
		r.Encryption = tds.EncryptOff.String()
	}
}
