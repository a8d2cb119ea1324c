package tlsbridge

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// KeyLog is an NSS key log file (the SSLKEYLOGFILE format Wireshark
// reads): crypto/tls and utls write one line per secret through it, for
// both legs of every bridged connection. Lines from concurrent handshakes
// are written whole, one Write each.
type KeyLog struct {
	mu   sync.Mutex
	f    *os.File
	Path string
}

var _ io.Writer = (*KeyLog)(nil)

// OpenKeyLog opens (creating, mode 0600) path for appending. An existing
// file is made 0600 too: it holds session secrets.
func OpenKeyLog(path string) (*KeyLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bridge: key log: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("bridge: key log: %w", err)
	}
	return &KeyLog{f: f, Path: path}, nil
}

// Write appends one key log line.
func (k *KeyLog) Write(b []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.f.Write(b)
}

// Close closes the file.
func (k *KeyLog) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.f.Close()
}
