package control

import (
	"sync"
	"time"

	"github.com/tdsproxy/tdsproxy/proxy"
)

// RecordQuery selects finished connection records (GET /records).
//
// Each record gets a cursor when its connection finishes: 1, 2, 3, ... in
// the order connections end (not their ids, which count accepts: a long
// connection with a small id ends late). Polling with After set to the
// previous page's Next never misses a record while the ring holds it, and
// RecordPage.Missed says how many fell out of the ring in between.
type RecordQuery struct {
	// After selects records with a cursor greater than After; 0 means from
	// the oldest kept.
	After uint64
	// Since, if not zero, selects records of connections that ended after
	// it.
	Since time.Time
	// Limit caps the page at the oldest Limit matching records; 0 means no
	// cap. Page on with After = Next.
	Limit int
	// Last, if positive, selects only the newest Last matching records
	// (a live view's "recently finished").
	Last int
}

// RecordPage is one answer of Records.
type RecordPage struct {
	// Records are oldest first.
	Records []*proxy.Record `json:"records"`
	// Next is the cursor to pass as After (since=) next time: the cursor of
	// the last record returned, or of the newest record when none matched.
	Next uint64 `json:"next"`
	// Missed counts records after the requested cursor that the ring had
	// already dropped (it keeps the newest Options.RecordRing).
	Missed uint64 `json:"missed,omitempty"`
}

// ring keeps the newest finished records.
type ring struct {
	mu   sync.Mutex
	buf  []*proxy.Record
	last uint64 // cursor of the newest record; cursors start at 1
}

func newRing(size int) *ring { return &ring{buf: make([]*proxy.Record, size)} }

func (r *ring) add(rec *proxy.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last++
	r.buf[(r.last-1)%uint64(len(r.buf))] = rec
}

func (r *ring) query(q RecordQuery) RecordPage {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := uint64(len(r.buf))
	oldest := uint64(1)
	if r.last > size {
		oldest = r.last - size + 1
	}
	page := RecordPage{Records: []*proxy.Record{}, Next: r.last}
	if q.After >= r.last {
		// Nothing new (or a cursor from before a restart: start over from
		// the newest).
		return page
	}
	from := q.After + 1
	if from < oldest {
		page.Missed = oldest - from
		from = oldest
	}
	var picked []uint64
	for c := from; c <= r.last; c++ {
		rec := r.buf[(c-1)%size]
		if !q.Since.IsZero() && !rec.End.After(q.Since) {
			continue
		}
		picked = append(picked, c)
	}
	if q.Last > 0 && len(picked) > q.Last {
		picked = picked[len(picked)-q.Last:]
	}
	if q.Limit > 0 && len(picked) > q.Limit {
		picked = picked[:q.Limit]
		page.Next = picked[len(picked)-1]
	}
	for _, c := range picked {
		page.Records = append(page.Records, r.buf[(c-1)%size])
	}
	return page
}

// Records returns finished connection records: see RecordQuery. The records
// are shared: do not modify them.
func (in *Instance) Records(q RecordQuery) RecordPage { return in.records.query(q) }
