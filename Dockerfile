# syntax=docker/dockerfile:1
#
# Settle's coordinator as a container image: a static Go binary on an
# empty (scratch) base, running as the numeric non-root user 65532.
#
#   docker build -t settle-coordinator .
#   docker run --rm -p 7400:7400 -p 7401:7401 \
#     -e SETTLE_DB='mysql:settle:...@tcp(db:3306)/settle' \
#     -e SETTLE_AUTH_TOKEN_FILE=/etc/settle/tokens/tokens.csv \
#     -v "$PWD/tokens.csv:/etc/settle/tokens/tokens.csv:ro" \
#     settle-coordinator -listen 0.0.0.0:7400 -http-listen 0.0.0.0:7401
#
# Ports: 7400 gRPC (CoordinatorService, AdminService, grpc.health.v1.Health,
# reflection), 7401 HTTP (/healthz, /metrics, the JSON API). The
# coordinator refuses to listen on a non-loopback address without
# authentication (a token file or mutual-TLS identities) unless given
# -insecure-no-auth; see docs/operations.md.
#
# Health: the image has no shell and no curl, so there is no HEALTHCHECK
# instruction. Probe from outside: Kubernetes `grpc:` probes on port 7400
# (the gRPC health service answers SERVING while the instance accepts
# calls, NOT_SERVING while it shuts down; it is open to every caller, with
# or without authentication), `grpc-health-probe -addr=HOST:7400`, or an
# HTTP GET of /healthz on 7401. With TLS on, /healthz and the gRPC health
# service are served over TLS too. See docs/operations.md, "Container image".
#
# The build line below is parsed by the deploy tests (deploy/image_test.go),
# which build the binary with exactly these flags and check that it is
# static, stripped and path-free; keep it on one line.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/coordinator ./cmd/coordinator
# The final image has no user database: give it one line for 65532.
RUN mkdir -p /out/etc && \
    echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > /out/etc/passwd && \
    echo 'nonroot:x:65532:' > /out/etc/group

FROM scratch
# CA certificates, for MySQL over TLS and participants over TLS verified
# against public roots (-participant-tls-ca names its own bundle).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/coordinator /coordinator
USER 65532:65532
# The root filesystem needs no writes: give SETTLE_DB (MySQL; or
# sqlite:/data/settle.db on a volume writable by 65532, one instance only).
EXPOSE 7400 7401
ENTRYPOINT ["/coordinator"]
