//go:build linux

package proxy

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Parking: an idle relayed connection holds no goroutine.
//
// After negotiation each direction of a connection is a goroutine blocked
// reading its source (relayBursts). Parked in the netpoller, each costs a
// 2 KiB stack and a goroutine descriptor: two per connection, about half
// of what an idle proxied connection held (BENCHMARKS.md, issue 17). A
// direction that has waited idleAfter for its next byte therefore hands its
// socket to one process-wide epoll instance (EPOLLONESHOT) and its
// goroutine ends; when the socket becomes readable (data, FIN, RST) or the
// proxy itself closes the connection (session.wake), a fresh goroutine
// resumes the relay where it stopped. A direction that keeps moving bytes
// never parks, so chatty and bulk connections pay one read deadline per
// wake-up and nothing else.
//
// The epoll instance is itself read through the Go netpoller (an epoll
// descriptor is pollable, epoll(7)), so no thread blocks in epoll_wait.

// idleAfter is how long a relay direction waits for its next byte before it
// parks. Long enough that a request/response exchange (a round trip, a
// login) never parks; short enough that a burst of new connections that
// go idle does not hold a goroutine each for long.
const idleAfter = 50 * time.Millisecond

// idlePoller is the process-wide epoll instance parked directions wait in.
type idlePoller struct {
	epfd int
	file *os.File // keeps epfd open and registered with the netpoller
	dead atomic.Bool

	mu   sync.Mutex
	dirs map[uint64]*dirReader // token → parked or parkable direction
	next uint64
}

var (
	pollerOnce sync.Once
	poller     *idlePoller // nil if epoll could not be set up: no parking
)

// idlePollerFor returns the process's idle poller, starting it on first
// use, or nil when parking is unavailable.
func idlePollerFor() *idlePoller {
	pollerOnce.Do(func() {
		p, err := newIdlePoller()
		if err == nil {
			poller = p
		}
	})
	if poller == nil || poller.dead.Load() {
		return nil
	}
	return poller
}

func newIdlePoller() (*idlePoller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// os.NewFile registers a non-blocking descriptor with the netpoller.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "tdsproxy-idle-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	p := &idlePoller{epfd: fd, file: f, dirs: make(map[uint64]*dirReader)}
	go p.loop(rc)
	return p, nil
}

// loop resumes the directions whose sockets became readable. It runs for
// the life of the process, inside one RawConn.Read: the callback empties
// epoll's ready list and returns false to wait for the next edge.
func (p *idlePoller) loop(rc syscall.RawConn) {
	events := make([]syscall.EpollEvent, 128)
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(fd), events, 0)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return true
			}
			for i := range n {
				p.fire(eventToken(&events[i]))
			}
			if n < len(events) {
				return false
			}
		}
	})
	// Never expected; if it happens, no direction may stay parked with
	// nobody to wake it.
	p.dead.Store(true)
	p.mu.Lock()
	all := make([]*dirReader, 0, len(p.dirs))
	for _, r := range p.dirs {
		all = append(all, r)
	}
	p.mu.Unlock()
	for _, r := range all {
		r.resume()
	}
}

func (p *idlePoller) fire(token uint64) {
	p.mu.Lock()
	r := p.dirs[token]
	p.mu.Unlock()
	if r != nil {
		r.resume()
	}
}

func (p *idlePoller) add(r *dirReader) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	p.dirs[p.next] = r
	return p.next
}

func (p *idlePoller) forget(token uint64) {
	p.mu.Lock()
	delete(p.dirs, token)
	p.mu.Unlock()
}

// The event's 64-bit user data (epoll_event.data, epoll_ctl(2)) is Fd and
// Pad in Go's syscall.EpollEvent.
func setEventToken(ev *syscall.EpollEvent, t uint64) {
	ev.Fd, ev.Pad = int32(uint32(t)), int32(uint32(t>>32))
}

func eventToken(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// epollOneShot is EPOLLONESHOT (1<<30), missing from package syscall.
const epollOneShot = 1 << 30

// park hands the direction to the idle poller after its wait for a byte
// timed out. It reports true when the caller's goroutine must end without
// ending the direction: the poller (or session.wake) resumes it.
func (r *dirReader) park() bool {
	p := idlePollerFor()
	if p == nil {
		return false
	}
	s := r.s
	if r.token == 0 {
		r.token = p.add(r)
	}
	op := syscall.EPOLL_CTL_MOD
	if !r.inEpoll {
		op = syscall.EPOLL_CTL_ADD
	}
	r.inEpoll = true
	// parked is set before the checks below and before arming: a closer
	// closes, then wakes (session.wake); either it sees parked, or this
	// goroutine sees what it closed.
	r.parked.Store(true)
	if s.ctx.Err() != nil || (r.dir == ClientToServer && s.finWait.Load()) {
		return !r.unpark()
	}
	var err error
	cerr := r.rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollOneShot}
		setEventToken(&ev, r.token)
		err = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
		if errors.Is(err, syscall.ENOENT) {
			err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if cerr != nil || err != nil {
		// The socket is closing, or epoll refused it: go on waiting the
		// ordinary way, unless a wake already took the direction over.
		return !r.unpark()
	}
	return true
}

// unpark takes a parked direction back; it reports false when someone else
// (the poller, a wake) already did.
func (r *dirReader) unpark() bool {
	return r.parked.CompareAndSwap(true, false)
}

// resume restarts a parked direction on a fresh goroutine.
func (r *dirReader) resume() {
	if r.unpark() {
		go r.s.relayDirection(r.dir)
	}
}

// wake resumes any parked direction of the session: called after the proxy
// closes or half-closes one of its sockets, which epoll does not report
// (a closed descriptor leaves the epoll set silently, epoll(7)).
func (s *session) wake() {
	for i := range s.readers {
		if r := s.readers[i].Load(); r != nil {
			r.resume()
		}
	}
}

// forgetParking removes the session's directions from the idle poller once
// the session is over.
func (s *session) forgetParking() {
	for i := range s.readers {
		if r := s.readers[i].Load(); r != nil && r.token != 0 {
			if p := poller; p != nil {
				p.forget(r.token)
			}
		}
	}
}

// idleDeadline arms the wait for the next byte of a relay direction:
// after idleAfter without one, the read returns os.ErrDeadlineExceeded and
// the direction parks. Without a poller the wait is unbounded.
func (r *dirReader) idleDeadline(src interface{ SetReadDeadline(time.Time) error }) {
	if r.noPark || idlePollerFor() == nil {
		return
	}
	_ = src.SetReadDeadline(time.Now().Add(idleAfter))
}
