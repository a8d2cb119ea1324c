# tdsproxy container image: a static binary on distroless, running as nonroot.
#
#   docker build -t tdsproxy \
#       --build-arg VERSION="$(git describe --tags --always --dirty)" \
#       --build-arg COMMIT="$(git rev-parse HEAD)" .
#   docker run --rm tdsproxy version
#
#   # one proxy from flags (the arguments replace CMD below)
#   docker run --rm -p 11433:11433 tdsproxy \
#       run --listen 0.0.0.0:11433 --upstream sql01.example.com:1433
#
#   # your own configuration over the example (start from `tdsproxy config example`)
#   docker run --rm -p 11433:11433 \
#       -v "$PWD/tdsproxy.yaml:/etc/tdsproxy/tdsproxy.yaml:ro" tdsproxy
#
#   # any key but the proxies list can be set with TDSPROXY_* variables
#   docker run --rm -p 11433:11433 -e TDSPROXY_LOG_LEVEL=debug \
#       -v "$PWD/tdsproxy.yaml:/etc/tdsproxy/tdsproxy.yaml:ro" tdsproxy
#
# The log goes to stderr as JSON (log.format auto picks console only on a
# terminal, i.e. with `docker run -t`).
#
# `docker stop` sends SIGTERM and kills 10s later, while tdsproxy drains open
# connections for up to shutdown.drain_timeout (30s): give `docker stop -t 40`
# (compose: stop_grace_period), or lower TDSPROXY_SHUTDOWN_DRAIN_TIMEOUT.

# Build stage, pinned by tag to go.mod's Go version.
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first: a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# What `tdsproxy version` prints. The context has no .git (.dockerignore), so
# pass them as build args (above); without them the binary says "dev".
ARG VERSION=""
ARG COMMIT=""
# keep in sync with Makefile GO_LDFLAGS and GO_BUILD: the same build line for
# `make build` and the image (a test compares them).
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=${VERSION} -X main.commit=${COMMIT}" -o bin/tdsproxy ./cmd/tdsproxy

# Runtime: no shell, no package manager; uid 65532 (nonroot).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/tdsproxy /tdsproxy
# The annotated example is the default configuration. It listens on
# 0.0.0.0:11433, which a container needs (127.0.0.1 would be unreachable
# from outside it), and points at a placeholder upstream: mount your own file
# here, or run with --listen/--upstream as above.
COPY configs/tdsproxy.yaml /etc/tdsproxy/tdsproxy.yaml
# 11433: the proxy of the example configuration; SQL Server clients connect here.
EXPOSE 11433
# 8475: the admin API (and GET /metrics). It listens on 127.0.0.1, which is
# unreachable from outside the container, unless TDSPROXY_ADMIN_LISTEN=0.0.0.0:8475;
# a non-loopback address needs TDSPROXY_ADMIN_TOKEN too, or run refuses to start.
EXPOSE 8475
# Numeric, so Kubernetes runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/tdsproxy"]
CMD ["run", "--config", "/etc/tdsproxy/tdsproxy.yaml"]
