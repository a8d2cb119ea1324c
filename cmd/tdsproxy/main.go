// Command tdsproxy is a man-in-the-middle proxy for SQL Server's TDS protocol
// that records how each connection negotiates and can reproduce every
// documented cause of "error 10054: connection forcibly closed".
package main

import (
	"errors"
	"fmt"
	"os"
)

// exitUsage is the exit code for a bad flag or config: the message names the key.
const exitUsage = 2

// usageError marks errors caused by the user's input (flags, config) so
// main can exit with exitUsage instead of 1.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "tdsproxy:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(exitUsage)
		}
		os.Exit(1)
	}
}
