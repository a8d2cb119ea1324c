package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tdsproxy/tdsproxy/configs"
)

func init() { subcommands = append(subcommands, newConfigCmd) }

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the annotated example configuration, or check a configuration file",
		Example: `  tdsproxy config example > tdsproxy.yaml
  tdsproxy config check tdsproxy.yaml`,
		// A RunE, so that cobra checks the arguments: a command with only
		// subcommands would print its help for "config lint" and exit 0.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown config command %q: use example or check", args[0])
			}
			return cmd.Help()
		},
	}
	cmd.AddCommand(newConfigExampleCmd(), newConfigCheckCmd())
	return cmd
}

func newConfigExampleCmd() *cobra.Command {
	var withFaults bool
	cmd := &cobra.Command{
		Use:   "example",
		Short: "Print an example configuration that documents every key",
		Long: `Print an example configuration in YAML that documents every key: what it
does, its default, its environment variable and flag. Its values are the
defaults, except the proxy's listen (0.0.0.0:11433) and a placeholder
upstream; it is the container image's /etc/tdsproxy/tdsproxy.yaml.`,
		Example: `  tdsproxy config example > tdsproxy.yaml
  tdsproxy config example --faults > lab.yaml   # one rule per scenario, and generic faults`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("config example takes no arguments, got %q", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ex := configs.Example()
			if withFaults {
				ex = configs.FaultsExample()
			}
			_, err := cmd.OutOrStdout().Write(ex)
			return err
		},
	}
	cmd.Flags().BoolVar(&withFaults, "faults", false, "print the example of fault rules instead (every scenario and generic fault, annotated)")
	return cmd
}

func newConfigCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a configuration file as tdsproxy run --config would read it",
		Long: `Validate a configuration file as "tdsproxy run --config FILE" would read it,
TDSPROXY_* environment variables included. Prints "ok" and the proxies, or
every problem, each naming its key (and exits 2). Nothing is started: a port
already in use or an unreachable upstream is not detected.`,
		Example: `  tdsproxy config check /etc/tdsproxy/tdsproxy.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("config check takes one configuration file, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			cfg, err := configs.Load(file)
			if err == nil {
				err = checkConfig(cfg)
			}
			if err != nil {
				return configUsageError(err, keySource(file))
			}
			out := cmd.OutOrStdout()
			noun := "proxies"
			if len(cfg.Proxies) == 1 {
				noun = "proxy"
			}
			fmt.Fprintf(out, "ok: %d %s\n", len(cfg.Proxies), noun)
			for _, p := range cfg.Proxies {
				fmt.Fprintf(out, "  %s: %s -> %s", p.Name, p.Listen, p.Upstream)
				if n := len(p.Faults); n > 0 {
					fmt.Fprintf(out, " (%d fault rules)", n)
				}
				fmt.Fprintln(out)
			}
			return nil
		},
	}
}
