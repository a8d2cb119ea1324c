//go:build linux

package proxy

import (
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// The relay's system calls, made raw.
//
// Every socket the proxy relays is non-blocking, so read(2), write(2) and
// splice(2) with SPLICE_F_NONBLOCK return at once, with EAGAIN when they
// would wait; waiting is the netpoller's (syscall.RawConn Read and Write).
// syscall.Read and friends tell the scheduler first that the goroutine may
// block (entersyscall): when the process was idle that wakes the runtime's
// monitor thread, which then polls every 20 µs for a while — a futex wake
// and a string of nanosleeps per burst, 17% of the proxy's CPU when it
// relays bulk (BENCHMARKS.md, issue 17). A call that cannot block needs
// none of it.

func rawRead(fd uintptr, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

func rawWrite(fd uintptr, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// SPLICE_F_MOVE | SPLICE_F_NONBLOCK (splice(2)).
const spliceFlags = 0x1 | 0x2

func rawSplice(in, out uintptr, n int) (int, syscall.Errno) {
	m, _, e := syscall.RawSyscall6(syscall.SYS_SPLICE, in, 0, out, 0, uintptr(n), spliceFlags)
	if e != 0 {
		return 0, e
	}
	return int(m), 0
}

// writeAll writes b to the socket behind wrc, waiting in the netpoller
// while the socket's send buffer is full. The error is what a Write of the
// conn would have returned.
func writeAll(c net.Conn, wrc syscall.RawConn, b []byte) (int, error) {
	var done int
	var errno syscall.Errno
	err := wrc.Write(func(fd uintptr) bool {
		for done < len(b) {
			n, e := rawWrite(fd, b[done:])
			switch e {
			case 0:
				done += n
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if errno != 0 {
		return done, writeError(c, errno)
	}
	if err != nil {
		return done, err
	}
	return done, nil
}

// writeError is the error a Write of c would have returned for errno.
func writeError(c net.Conn, errno syscall.Errno) error {
	return &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", errno)}
}

// splicePipe is a pipe the relay splices a burst through: socket → pipe →
// socket, kernel to kernel (splice(2) needs a pipe on one side). Pipes are
// shared through a pool and held only for the length of a burst, so an
// idle connection holds none.
type splicePipe struct {
	r, w int
	size int
}

// pipeSize is what the relay asks of a pipe (F_SETPIPE_SZ): what one pair
// of splices moves. 1 MiB is the kernel's default ceiling for
// unprivileged users (/proc/sys/fs/pipe-max-size).
const pipeSize = 1 << 20

var pipePool = sync.Pool{New: func() any { return newSplicePipe() }}

func newSplicePipe() *splicePipe {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		return nil
	}
	p := &splicePipe{r: fds[0], w: fds[1], size: 64 << 10}
	if n, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fds[0]), syscall.F_SETPIPE_SZ, pipeSize); e == 0 {
		p.size = int(n)
	}
	// The pool drops pipes at a GC; their descriptors go with them.
	runtime.AddCleanup(p, func(fds [2]int) {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
	}, fds)
	return p
}

// flushPipe splices the n bytes waiting in p to the socket behind wrc,
// waiting in the netpoller while its send buffer is full. It returns how
// many went, and the error a Write of dst would have returned.
func flushPipe(dst net.Conn, wrc syscall.RawConn, p *splicePipe, n int) (int64, error) {
	var moved int64
	var werrno syscall.Errno
	err := wrc.Write(func(fd uintptr) bool {
		for n > 0 {
			m, e := rawSplice(uintptr(p.r), fd, n)
			switch e {
			case 0:
				n -= m
				moved += int64(m)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				werrno = e
				return true
			}
		}
		return true
	})
	if werrno != 0 {
		return moved, writeError(dst, werrno)
	}
	return moved, err
}
