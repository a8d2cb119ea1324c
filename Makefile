# tdsproxy — build, test and check targets. `make test` is what CI runs
# (.ci/run); it installs the real SQL Server clients the interop tests drive.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO        ?= go
# What `tdsproxy version` prints, set at link time. VERSION is the nearest
# tag (or the short hash; "-dirty" for a modified tree), COMMIT the full hash.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
GO_LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# The one build line; the Dockerfile uses the same (with build args for
# VERSION and COMMIT, as the image's context has no .git).
GO_BUILD  := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(GO_LDFLAGS)" -o bin/tdsproxy ./cmd/tdsproxy
# `make dist`: one static binary per platform into dist/, with SHA256SUMS.
DIST_PLATFORMS ?= linux/amd64 linux/arm64 windows/amd64 darwin/arm64
# Count-based budgets (N execs, "Nx") on purpose: with a duration, Go's
# fuzz coordinator can fail a clean run with a bare "context deadline
# exceeded" when the clock runs out mid-exec (golang/go#75804, unfixed in
# go1.26). A count has no deadline to race; FUZZ_TIMEOUT still bounds time.
FUZZTIME  ?= 1000000x
FUZZ_TIMEOUT ?= 20m
NODE_DIR  := internal/interop/node
JDBC_DIR  := internal/interop/jdbc
JDBC_VERSION := 13.6.2.jre11
ODBC_DIR  := internal/interop/odbc
# sudo only when not root and sudo exists.
SUDO      := $(shell [ "$$(id -u)" = 0 ] || ! command -v sudo >/dev/null 2>&1 || echo sudo)

.PHONY: build deps deps-tsql deps-node deps-jdbc deps-odbc deps-chromium test vet fuzz bench bench-report lint clean

build:
	$(GO_BUILD)

.PHONY: dist
## dist: cross-build DIST_PLATFORMS (GOOS/GOARCH) into dist/, e.g.
# dist/tdsproxy-linux-amd64 and dist/tdsproxy-windows-amd64.exe, each with
# the same VERSION and COMMIT, and dist/SHA256SUMS over them.
dist:
	rm -rf dist && mkdir -p dist
	@for p in $(DIST_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ "$$os" = windows ] && ext=.exe; \
		out=dist/tdsproxy-$$os-$$arch$$ext; echo "dist: $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(GO_LDFLAGS)" -o $$out ./cmd/tdsproxy; \
	done
	cd dist && if command -v sha256sum >/dev/null 2>&1; then sha256sum tdsproxy-*; else shasum -a 256 tdsproxy-*; fi > SHA256SUMS

## deps: install what the interop tests need, only what is missing.
deps: deps-tsql deps-node deps-jdbc deps-odbc deps-chromium

# Debian chromium: report's HTML test opens the page in it, headless.
deps-chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
		echo "deps: installing chromium (headless, for the report HTML test)"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; \
	fi

# FreeTDS tsql (Debian freetds-bin 1.3.17, GnuTLS).
deps-tsql:
	@if ! command -v tsql >/dev/null 2>&1; then \
		echo "deps: installing freetds-bin (tsql)"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends freetds-bin; \
	fi

# Node.js + tedious (pinned by $(NODE_DIR)/package-lock.json). tedious 19
# needs Node >= 18.17; Debian bookworm's nodejs is 18.20, so apt is used only
# when node is absent. npm ci runs when tedious is missing or the lock is
# newer than the last install.
deps-node:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "deps: node/npm not found and no apt-get: install Node.js >= 18.17 (tedious 19.2.2 needs it)" >&2; exit 1; \
		fi; \
		echo "deps: node or npm not found, installing Debian nodejs + npm"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends nodejs npm; \
	fi
	@v=$$(node -p 'process.versions.node'); \
	if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>18||(a===18&&b>=17)?0:1)'; then \
		echo "deps: node $$v is too old: tedious 19.2.2 needs Node >= 18.17" >&2; exit 1; \
	fi
	@if [ ! -f $(NODE_DIR)/node_modules/tedious/package.json ] || \
	    [ $(NODE_DIR)/package-lock.json -nt $(NODE_DIR)/node_modules/.deps-stamp ]; then \
		echo "deps: npm ci in $(NODE_DIR)"; \
		cd $(NODE_DIR) && npm ci --no-audit --no-fund && touch node_modules/.deps-stamp; \
	fi

# Microsoft JDBC Driver for SQL Server, pinned by $(JDBC_DIR)/pom.xml, copied
# by Maven into $(JDBC_DIR)/lib (ignored by git); the tests compile the
# runner (Runner.java) with javac. A JDK (javac, not only java) and Maven come
# from apt only when absent.
deps-jdbc:
	@if ! command -v javac >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "deps: javac or mvn not found and no apt-get: install a JDK >= 11 and Maven" >&2; exit 1; \
		fi; \
		echo "deps: javac or mvn not found, installing Debian openjdk-17-jdk-headless + maven"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends openjdk-17-jdk-headless maven; \
	fi
	@if [ ! -f $(JDBC_DIR)/lib/mssql-jdbc-$(JDBC_VERSION).jar ] || \
	    [ $(JDBC_DIR)/pom.xml -nt $(JDBC_DIR)/lib/.deps-stamp ]; then \
		echo "deps: mvn dependency:copy-dependencies ($(JDBC_DIR)/pom.xml)"; \
		mvn -B -q -f $(JDBC_DIR)/pom.xml dependency:copy-dependencies -DoutputDirectory=lib -DincludeScope=runtime && \
		touch $(JDBC_DIR)/lib/.deps-stamp; \
	fi

# Microsoft ODBC Driver 18 for SQL Server through Microsoft's mssql-python
# (pinned by $(ODBC_DIR)/requirements.txt) in a virtual environment,
# $(ODBC_DIR)/.venv (ignored by git). The driver's bundled libraries need
# libltdl.so.7 (Debian libltdl7), libkrb5.so.3 and libgssapi_krb5.so.2
# (libkrb5-3, libgssapi-krb5-2; found with ldd on libmsodbcsql-18.6.so and
# libodbcinst.so.2) and the system's libssl3; apt installs the missing ones.
ODBC_DEBS := libltdl7 libkrb5-3 libgssapi-krb5-2 libssl3
deps-odbc:
	@missing=; for p in $(ODBC_DEBS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then missing="$$missing python3-venv"; fi; \
	if [ -n "$$missing" ]; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "deps: missing$$missing and no apt-get: install them (or their equivalents)" >&2; exit 1; \
		fi; \
		echo "deps: installing Debian$$missing"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi
	@if [ ! -x $(ODBC_DIR)/.venv/bin/python ]; then \
		echo "deps: python3 -m venv $(ODBC_DIR)/.venv"; \
		python3 -m venv $(ODBC_DIR)/.venv; \
	fi
	@if [ ! -f $(ODBC_DIR)/.venv/.deps-stamp ] || \
	    [ $(ODBC_DIR)/requirements.txt -nt $(ODBC_DIR)/.venv/.deps-stamp ]; then \
		echo "deps: pip install -r $(ODBC_DIR)/requirements.txt"; \
		$(ODBC_DIR)/.venv/bin/pip install --disable-pip-version-check -q -r $(ODBC_DIR)/requirements.txt && \
		touch $(ODBC_DIR)/.venv/.deps-stamp; \
	fi

# CI (.ci/run) is `make test`: go vet for linux, windows and darwin (the
# platform-specific files must build everywhere), the suite with every real
# client required,
# then each fuzz target for 50,000 execs (2-40 s each on 2 cores) and
# govulncheck (which says SKIPPED, never passes silently, when its database
# is unreachable).
CI_FUZZTIME ?= 50000x
test: deps
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./... && GOOS=darwin $(GO) vet ./...
	TDSPROXY_INTEROP=require $(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(CI_FUZZTIME)
	$(MAKE) --no-print-directory vulncheck

vet:
	$(GO) vet ./...

## fuzz: run every Fuzz* target of every package for FUZZTIME each
# (a count like 1000000x, or a duration like 60s at the risk above).
# go test -fuzz accepts one target per run, hence the loop.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz: $$pkg $$f ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s -timeout $(FUZZ_TIMEOUT) $$pkg; \
		done; \
	done

## bench: the benchmark harness (bench/, issue 6): direct vs tdsproxy vs
# HAProxy, socat and Toxiproxy on one machine, in one run; it installs what
# it needs (apt haproxy socat, go install toxiproxy) and starts and stops every
# process itself. BENCHFLAGS e.g. "-quick" or "-only bulk,direct,tdsproxy".
BENCHFLAGS ?=
bench:
	$(GO) run ./bench $(BENCHFLAGS)
	$(MAKE) --no-print-directory bench-report

## bench-report: `tdsproxy report --json` over 1,000,000 generated log
# lines (TDSPROXY_REPORT_LINES to change): wall time and peak RSS.
bench-report:
	$(GO) test -run '^$$' -bench '^BenchmarkReportCommand$$' -benchtime 1x -timeout 15m ./report/

lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './$(NODE_DIR)/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin/ dist/ coverage.out coverage.html cover.out cover.html
	find . -name '*.test' -type f -not -path './$(NODE_DIR)/*' -delete

.PHONY: soak vulncheck

## soak: the full soak of issue 7 — 500 go-mssqldb clients × 200 queries over
# 5 minutes through an in-process proxy to the emulator, 10% of connections
# hit by a fault scenario; checks answers, each faulted connection's error,
# and goroutines/heap/RSS back to their baseline. `make test` runs the short
# version (internal/soak.Short, ~30 s). No -race here: the race detector's
# shadow memory would swamp the RSS check. SOAK sets the duration.
SOAK ?= 5m
soak:
	TDSPROXY_SOAK=$(SOAK) $(GO) test -count=1 -timeout 30m -run '^TestSoak$$' -v ./internal/soak/

## vulncheck: govulncheck ./... against the Go vulnerability database.
# govulncheck is installed into bin/tools (module proxy). When the database
# (GOVULNDB, default https://vuln.go.dev) does not answer within 5 s, the
# target prints "SKIPPED: vulnerability database unreachable" and exits 0:
# never a silent pass. A file:// GOVULNDB (an offline copy) is used as is.
TOOLS_BIN         := $(CURDIR)/bin/tools
GOVULNDB          ?= https://vuln.go.dev
GOVULNCHECK_VER   ?= latest
vulncheck:
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(TOOLS_BIN) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VER)
	@case "$(GOVULNDB)" in \
	file://*) reachable=yes ;; \
	*) if command -v curl >/dev/null 2>&1 && curl -fsS --max-time 5 -o /dev/null "$(GOVULNDB)/index/db.json.gz" 2>/dev/null; then reachable=yes; else reachable=no; fi ;; \
	esac; \
	if [ "$$reachable" != yes ]; then \
		echo "vulncheck: SKIPPED: vulnerability database unreachable ($(GOVULNDB) did not answer within 5s); govulncheck did NOT run" >&2; \
		exit 0; \
	fi; \
	echo "vulncheck: $(TOOLS_BIN)/govulncheck -db $(GOVULNDB) ./..."; \
	$(TOOLS_BIN)/govulncheck -db "$(GOVULNDB)" ./...
