package faults

import (
	"context"
	"fmt"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// ---- reset / limit_data -------------------------------------------------

// Reset forwards AfterBytes bytes of the direction, then asks for the
// connection to be reset (Cut with Style RST: the client sees 10054 on
// Windows). With AfterBytes 0 the first chunk resets and nothing passes.
// The cut comes with the chunk that completes AfterBytes, without waiting
// for more data.
type Reset struct {
	// AfterBytes is how many bytes pass before the reset (option "bytes").
	AfterBytes int64 `opt:"bytes"`
}

// NewReset returns a reset stage for one connection and direction.
func NewReset(c Reset) (proxy.Stage, error) { return newStage(c) }

func (c Reset) validate() error { return checkNonNeg("reset", "bytes", c.AfterBytes) }

func (c Reset) build(*Rand, Clock) proxy.Stage {
	return &cutoffStage{limit: c.AfterBytes,
		cut: proxy.Cut{Style: proxy.StyleRST, Reason: fmt.Sprintf("reset after %d bytes", c.AfterBytes)}}
}

// LimitData forwards at most Bytes bytes of the direction, then asks for a
// normal close (Toxiproxy "limit_data": Cut with Style FIN). The close comes
// with the chunk that completes Bytes; Bytes 0 closes at the first chunk.
type LimitData struct {
	// Bytes is the most that passes (option "bytes").
	Bytes int64 `opt:"bytes"`
}

// NewLimitData returns a limit_data stage for one connection and direction.
func NewLimitData(c LimitData) (proxy.Stage, error) { return newStage(c) }

func (c LimitData) validate() error { return checkNonNeg("limit_data", "bytes", c.Bytes) }

func (c LimitData) build(*Rand, Clock) proxy.Stage {
	return &cutoffStage{limit: c.Bytes,
		cut: proxy.Cut{Style: proxy.StyleFIN, Reason: fmt.Sprintf("limit_data %d bytes", c.Bytes)}}
}

// cutoffStage forwards limit bytes, then returns cut on every call.
type cutoffStage struct {
	limit, sent int64
	cut         proxy.Cut
	done        bool
}

var _ proxy.Stage = (*cutoffStage)(nil)

func (s *cutoffStage) Forward(ctx context.Context, chunk []byte, emit func([]byte) error) (*proxy.Cut, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.done {
		return s.result(), nil
	}
	if len(chunk) == 0 {
		return nil, nil
	}
	room := s.limit - s.sent
	if int64(len(chunk)) < room {
		s.sent += int64(len(chunk))
		return nil, emit(chunk)
	}
	// This chunk reaches the limit: pass the part up to it, then cut.
	s.done = true
	s.sent = s.limit
	if room > 0 {
		if err := emit(chunk[:room]); err != nil {
			return nil, err
		}
	}
	return s.result(), nil
}

// result returns a fresh copy, so that a proxy that keeps or edits the Cut
// never shares it with the next call.
func (s *cutoffStage) result() *proxy.Cut {
	c := s.cut
	return &c
}
