package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "tdsproxy",
		Short: "A TDS (SQL Server) proxy that records negotiation and reproduces error 10054",
		Long: `tdsproxy stands between SQL Server clients and SQL Server. It records how every
connection negotiates (PRELOGIN, the TLS handshake inside it, LOGIN7) and can
deliberately cause each documented failure behind "error 10054: An existing
connection was forcibly closed by the remote host".`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what `tdsproxy version` prints.
		Version: currentBuild().Version,
	}
	root.SetVersionTemplate(currentBuild().String())
	// Flag errors are the user's input: exit 2 with the flag named.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{err}
	})
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands lists the constructors of tdsproxy's subcommands; each
// subcommand's file appends to it from an init function.
var subcommands []func() *cobra.Command
