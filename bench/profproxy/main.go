// Command profproxy is tdsproxy's passthrough proxy (package proxy, wired as
// `tdsproxy run --listen --upstream` wires it, without fault rules) with
// net/http/pprof served on $TDSPROXY_PPROF. It exists to profile the proxy
// under the benchmark harness's workloads without touching cmd/tdsproxy:
//
//	go build -o bench/.bin/profproxy ./bench/profproxy
//	BENCH_TDSPROXY_BIN=bench/.bin/profproxy TDSPROXY_PPROF=127.0.0.1:6060 \
//	    BENCH_SETTLE=30s go run ./bench -only memory,tdsproxy -reps 1
//	go tool pprof -sample_index=inuse_space http://127.0.0.1:6060/debug/pprof/heap
//
// It accepts the command line the harness gives tdsproxy (`run --listen A
// --upstream B` and flags it ignores).
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // the point of this program
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tdsproxy/tdsproxy/proxy"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	fs := flag.NewFlagSet("profproxy", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:11433", "host:port to accept clients on")
	upstream := fs.String("upstream", "", "host:port of the upstream")
	name := fs.String("name", "bench", "proxy name")
	// Accepted for command-line compatibility with tdsproxy run; ignored.
	fs.String("log-level", "warn", "ignored (always warn)")
	fs.String("log-format", "json", "ignored (always json)")
	fs.String("drain-timeout", "0s", "ignored (connections are closed at once)")
	fs.String("admin", "off", "ignored (no admin API; pprof is on $TDSPROXY_PPROF)")
	_ = fs.Parse(args)

	cfg := zap.NewProductionEncoderConfig()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(cfg), zapcore.Lock(os.Stderr), zapcore.WarnLevel))
	if addr := os.Getenv("TDSPROXY_PPROF"); addr != "" {
		go func() {
			srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second}
			fmt.Fprintln(os.Stderr, "profproxy: pprof on", addr, srv.ListenAndServe())
		}()
	}
	p, err := proxy.New(proxy.Config{Name: *name, Listen: *listen, Upstream: *upstream}, proxy.Options{Logger: log})
	if err == nil {
		err = p.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "profproxy:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	_ = p.Close()
}
