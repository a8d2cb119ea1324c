package control

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchSettle is how long WatchFile waits after the last event before it
// calls back: editors save in several steps (truncate, write, rename), and
// one reload should follow one save.
const watchSettle = 250 * time.Millisecond

// WatchFile calls changed (from one goroutine, never concurrently) each time
// the file at path is written, created, replaced by a rename (editors,
// atomic saves), or, when path is a symlink, pointed elsewhere (a
// Kubernetes ConfigMap update), once the events have settled. It watches
// the file's directory, so the file may be replaced or even briefly
// missing. It returns once the watch is set up; the watch ends when ctx is
// done.
func WatchFile(ctx context.Context, path string, changed func()) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		return fmt.Errorf("watch %s: %w", path, err)
	}
	target := func() string {
		t, _ := filepath.EvalSymlinks(abs)
		return t
	}
	// The version seen now, before returning: a change right after
	// WatchFile returns must count as a change.
	real, stamp := target(), fileStamp(abs)
	go func() {
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				// Any event in the directory may be the symlink swap of a
				// ConfigMap (..data is renamed): compare the target.
				if filepath.Clean(ev.Name) == abs || target() != real {
					timer.Reset(watchSettle)
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
			case <-timer.C:
				real = target()
				// Skip events that changed nothing (a touch, a chmod) and
				// a file caught missing mid-replace (its creation follows).
				if s := fileStamp(abs); s != "" && s != stamp {
					stamp = s
					changed()
				}
			}
		}
	}()
	return nil
}

// fileStamp identifies a version of the file by its content (a config file
// is small; modification times are too coarse to tell two quick saves
// apart). "" means it cannot be read.
func fileStamp(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}
