package control

import (
	"sync"

	"github.com/tdsproxy/tdsproxy/proxy"
)

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
