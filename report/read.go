package report

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/tdsproxy/tdsproxy/control/api"
	"github.com/tdsproxy/tdsproxy/control/client"
)

// MaxLine is the longest log line read; a longer one is skipped (counted
// as malformed) without being held in memory. A record line is a few KiB:
// its lists are capped (proxy's maxListEntries).
const MaxLine = 4 << 20

// closedMsg is the message of tdsproxy's one line per finished connection
// (proxy/log.go).
const closedMsg = "connection closed"

// Input counts what the readers saw.
type Input struct {
	// Lines is every line read; Records the connection records among them.
	Lines   int64 `json:"lines"`
	Records int64 `json:"records"`
	// Other counts tdsproxy's other JSON lines (startup, rule changes):
	// well-formed, not records.
	Other int64 `json:"other"`
	// Malformed counts lines skipped: not JSON (truncated, another
	// program's), JSON that is not a tdsproxy line, or longer than MaxLine.
	Malformed int64 `json:"malformed"`
	// TooLong is the part of Malformed skipped for length.
	TooLong int64 `json:"too_long"`
	// Filtered counts records outside --since.
	Filtered int64 `json:"filtered"`
	// Examples holds the first few malformed lines' places and reasons.
	Examples []string `json:"examples,omitempty"`
}

const maxMalformedExamples = 5

func (in *Input) malformed(src string, line int64, why string) {
	in.Malformed++
	if len(in.Examples) < maxMalformedExamples {
		in.Examples = append(in.Examples, fmt.Sprintf("%s:%d: %s", src, line, why))
	}
}

// Summary is the one-line account of the input, for stderr.
func (in *Input) Summary() string {
	s := fmt.Sprintf("report: %d lines, %d connection records, %d other tdsproxy lines, %d malformed lines skipped", in.Lines, in.Records, in.Other, in.Malformed)
	if in.TooLong > 0 {
		s += fmt.Sprintf(" (%d longer than %d bytes)", in.TooLong, MaxLine)
	}
	if in.Filtered > 0 {
		s += fmt.Sprintf(", %d records before --since", in.Filtered)
	}
	return s
}

// ReadFile adds the records of a log file ("-" is stdin; gzip is detected
// by its magic bytes, whatever the name).
func (b *Builder) ReadFile(name string, stdin io.Reader) error {
	if name == "-" {
		return b.ReadLog(stdin, "stdin")
	}
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return b.ReadLog(f, name)
}

// ReadLog adds the records among r's JSON log lines, streaming. Decoding
// and diagnosis run on every CPU in batches of lines; the batches are
// folded in in the order read, so the result (first examples, first seen)
// does not depend on scheduling. At most a few batches are held at once.
// src names the input in malformed-line examples.
func (b *Builder) ReadLog(r io.Reader, src string) error {
	br := bufio.NewReaderSize(r, 256<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 256<<10)
	}
	workers := max(runtime.GOMAXPROCS(0), 1)
	work := make(chan *batch, workers)
	order := make(chan *batch, 2*workers)
	// free recycles batches once folded in: at most the batches in flight
	// (order's capacity, one being filled, one being folded) exist, so the
	// line buffers are allocated a few times, not once per batch.
	free := make(chan *batch, 2*workers+2)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cache := newSectionCache()
			for bt := range work {
				bt.decode(b.opts, cache)
				close(bt.done)
			}
		}()
	}
	var readErr error
	go func() {
		defer close(order)
		defer close(work)
		readErr = splitLines(br, src, func() *batch {
			select {
			case bt := <-free:
				return bt
			default:
				return newBatch()
			}
		}, func(bt *batch) {
			order <- bt
			work <- bt
		})
	}()
	for bt := range order {
		<-bt.done
		for i := range bt.items {
			b.fold(&bt.items[i], src)
		}
		bt.reset()
		select {
		case free <- bt:
		default:
		}
	}
	wg.Wait()
	return readErr
}

// batchLines and batchBytes bound one batch.
const (
	batchLines = 256
	batchBytes = 1 << 20
)

// batch is a run of lines and, once decoded, their items.
type batch struct {
	data  []byte
	items []item
	done  chan struct{}
}

// item is one line: its place in the batch's data until decoded, then what
// it held.
type item struct {
	n          int64 // line number
	start, end int
	long       bool
	bad        string
	other      bool
	p          *prepared
}

func newBatch() *batch {
	return &batch{data: make([]byte, 0, batchBytes+64<<10), items: make([]item, 0, batchLines), done: make(chan struct{})}
}

// reset makes a folded batch ready to be filled again.
func (bt *batch) reset() {
	bt.data = bt.data[:0]
	clear(bt.items) // drop the records they point to
	bt.items = bt.items[:0]
	bt.done = make(chan struct{})
}

// splitLines reads lines and hands them over in batches.
func splitLines(br *bufio.Reader, src string, next func() *batch, emit func(*batch)) error {
	var (
		bt   = next()
		buf  []byte
		n    int64
		long bool
	)
	flush := func() {
		if len(bt.items) > 0 {
			emit(bt)
			bt = next()
		}
	}
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !long && len(buf)+len(chunk) <= MaxLine {
				buf = append(buf, chunk...)
			} else {
				long, buf = true, buf[:0]
			}
			continue
		case err != nil && !errors.Is(err, io.EOF):
			flush()
			return fmt.Errorf("%s: line %d: %w", src, n+1, err)
		}
		line := chunk
		if len(buf) > 0 || long {
			if !long && len(buf)+len(chunk) <= MaxLine {
				buf = append(buf, chunk...)
				line = buf
			} else {
				long = true
			}
		}
		if len(line) > 0 || long {
			n++
			it := item{n: n, long: long}
			if !long {
				it.start = len(bt.data)
				bt.data = append(bt.data, line...)
				it.end = len(bt.data)
			}
			bt.items = append(bt.items, it)
			if len(bt.items) >= batchLines || len(bt.data) >= batchBytes {
				flush()
			}
		}
		buf, long = buf[:0], false
		if err != nil { // io.EOF
			flush()
			return nil
		}
	}
}

// decode turns each line of the batch into an item (a worker's job).
func (bt *batch) decode(opts Options, cache *sectionCache) {
	for i := range bt.items {
		it := &bt.items[i]
		if it.long {
			continue
		}
		line := bytes.TrimSpace(bt.data[it.start:it.end])
		switch {
		case len(line) == 0:
			it.bad = "empty"
			continue
		case line[0] != '{':
			it.bad = "not a JSON object"
			continue
		}
		rec, msg, err := cache.decodeLine(line)
		if err != nil {
			it.bad = "not JSON: " + err.Error()
			continue
		}
		switch {
		case msg == closedMsg && rec != nil:
			it.p = prepare(rec, opts)
		case msg != "":
			it.other = true
		default:
			it.bad = "JSON without a tdsproxy message"
		}
	}
}

// fold adds one decoded line to the builder.
func (b *Builder) fold(it *item, src string) {
	switch {
	case it.bad == "empty":
		return
	case it.long:
		b.in.Lines++
		b.in.TooLong++
		b.in.malformed(src, it.n, fmt.Sprintf("longer than %d bytes", MaxLine))
		return
	}
	b.in.Lines++
	switch {
	case it.bad != "":
		b.in.malformed(src, it.n, it.bad)
	case it.other:
		b.in.Other++
	case it.p != nil:
		b.in.Records++
		b.addPrepared(it.p)
	}
}

// pageSize is how many records one GET /records asks for.
const pageSize = 500

// ReadAPI adds the finished records a running tdsproxy keeps (GET /records
// of its admin API at base), paging until the newest. since, if not zero,
// is sent as the first page's since.
func (b *Builder) ReadAPI(ctx context.Context, base, token string, since time.Time) error {
	c := client.New(base, token)
	q := api.RecordQuery{Since: since, Limit: pageSize}
	// Bounded: the ring holds a fixed number of records; stop as soon as a
	// page does not move the cursor on.
	for range 1 << 20 {
		page, err := c.Records(ctx, q)
		if err != nil {
			return err
		}
		for i := range page.Records {
			b.Add(&page.Records[i])
		}
		if len(page.Records) < pageSize || page.Next <= q.After {
			return nil
		}
		q = api.RecordQuery{After: page.Next, Limit: pageSize}
	}
	return nil
}
