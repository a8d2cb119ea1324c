package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tdsproxy/tdsproxy/internal/lab"
)

// runLabRetry is "tdsproxy lab --retry": the retry section of the lab.
func runLabRetry(cmd *cobra.Command, f labFlags) error {
	fl := cmd.Flags()
	for _, name := range []string{"scenario", "hold", "client", "handshakes", "listen"} {
		if fl.Changed(name) {
			return usagef("--%s: does not go with --retry (the retry section runs go-mssqldb against its own cases)", name)
		}
	}
	log, cleanup, err := labLogger(f, false)
	if err != nil {
		return usageError{err}
	}
	defer cleanup()
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	rep, err := lab.RunRetry(ctx, lab.Options{Logger: log})
	if rep != nil {
		out := cmd.OutOrStdout()
		var werr error
		if f.json {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			werr = enc.Encode(rep)
		} else {
			werr = rep.Table(out)
		}
		if werr != nil {
			return werr
		}
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the retry section did not finish within --timeout %v", f.timeout)
		}
		return err
	}
	if !rep.OK() {
		return errors.New("the retry section did not behave as documented")
	}
	return nil
}
