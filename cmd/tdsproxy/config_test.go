package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tdsproxy/tdsproxy/configs"
)

func TestConfigExample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := execute(t, ctx, "config", "example")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(out), configs.Example()) {
		t.Error("config example does not print configs.Example()")
	}
}

func TestConfigCheck(t *testing.T) {
	clearEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("the shipped example", func(t *testing.T) {
		out, err := execute(t, ctx, "config", "check", filepath.Join("..", "..", "configs", "tdsproxy.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		want := "ok: 1 proxy\n  default: 0.0.0.0:11433 -> sqlserver.example.com:1433\n"
		if out != want {
			t.Errorf("output = %q, want %q", out, want)
		}
	})
	t.Run("two proxies", func(t *testing.T) {
		file := writeFile(t, "two.yaml", "proxies:\n  - {name: a, listen: \":1\", upstream: \"h:1\"}\n  - {name: b, listen: \":2\", upstream: \"h:1\"}\n")
		out, err := execute(t, ctx, "config", "check", file)
		if err != nil || !bytes.HasPrefix([]byte(out), []byte("ok: 2 proxies\n")) {
			t.Errorf("output = %q, err = %v", out, err)
		}
	})
	t.Run("every problem, each with its key", func(t *testing.T) {
		file := writeFile(t, "bad.yaml", "log:\n  level: loud\nproxies:\n  - {name: a, listen: \":1\", upstream: \"db:abc\"}\n")
		_, err := execute(t, ctx, "config", "check", file)
		wantUsageError(t, err, file+`: log.level: "loud" is not one of debug, info, warn, error`+"\n"+
			file+`: proxies[0].upstream: "db:abc" is not host:port`)
	})
	t.Run("environment applied", func(t *testing.T) {
		t.Setenv("TDSPROXY_LOG_FORMAT", "pretty")
		_, err := execute(t, ctx, "config", "check", filepath.Join("..", "..", "configs", "tdsproxy.yaml"))
		wantUsageError(t, err, `TDSPROXY_LOG_FORMAT: "pretty" is not one of json, console, auto`)
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := execute(t, ctx, "config", "check", filepath.Join(t.TempDir(), "nope.yaml"))
		wantUsageError(t, err, "nope.yaml")
	})
	t.Run("no file", func(t *testing.T) {
		_, err := execute(t, ctx, "config", "check")
		wantUsageError(t, err, "takes one configuration file")
	})
	t.Run("unknown subcommand", func(t *testing.T) {
		_, err := execute(t, ctx, "config", "lint")
		wantUsageError(t, err, `"lint"`)
	})
}
