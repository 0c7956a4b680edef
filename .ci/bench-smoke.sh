#!/usr/bin/env bash
# Benchmark smoke run: builds the coordinator and settle-bench, and for
# SQLite and MariaDB starts a coordinator on a free loopback port, runs a
# 10-second load (2s warm-up + 8s window, 10 initiators, two-branch
# transactions, built-in no-op participants) and fails on any error or any
# transaction not finished afterwards. No thresholds: numbers from a shared
# CI machine mean little. Kills only what it started.
#
#   bash .ci/bench-smoke.sh
#
# Environment: SETTLE_BENCH_MYSQL_DSN (default root@tcp(127.0.0.1:3306)/),
# the server to use; the script creates and drops its own database there.
# SETTLE_BENCH_SKIP_MYSQL=1 runs SQLite only.
set -euo pipefail
cd "$(dirname "$0")/.."

DSN_BASE=${SETTLE_BENCH_MYSQL_DSN:-root@tcp(127.0.0.1:3306)/}
DBNAME=settle_bench_smoke_$$
WORK=$(mktemp -d)
COORD_PID=""

cleanup() {
  if [[ -n "$COORD_PID" ]] && kill -0 "$COORD_PID" 2>/dev/null; then
    kill -TERM "$COORD_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$COORD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$COORD_PID" 2>/dev/null || true
  fi
  COORD_PID=""
  if [[ -n "${CLIENT:-}" ]]; then
    "$CLIENT" -h127.0.0.1 -P3306 -uroot -e "DROP DATABASE IF EXISTS \`$DBNAME\`" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "=== build"
go build -o "$WORK/coordinator" ./cmd/coordinator
go build -o "$WORK/settle-bench" ./cmd/settle-bench

# start_coordinator DB: starts a coordinator on 127.0.0.1:0 and sets
# COORD_PID and COORD_ADDR from its startup log line.
start_coordinator() {
  local log="$WORK/coordinator.log"
  : >"$log"
  "$WORK/coordinator" -listen 127.0.0.1:0 -http-listen "" -db "$1" -log-level info >"$log" 2>&1 &
  COORD_PID=$!
  COORD_ADDR=""
  for _ in $(seq 1 300); do
    COORD_ADDR=$(sed -n 's/.*coordinator started.* listen=\([0-9.:]*\).*/\1/p' "$log" | head -n1)
    [[ -n "$COORD_ADDR" ]] && return 0
    kill -0 "$COORD_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "FATAL: coordinator did not start:" >&2
  cat "$log" >&2
  exit 1
}

stop_coordinator() {
  kill -TERM "$COORD_PID"
  wait "$COORD_PID" || { echo "FATAL: coordinator exited with an error:" >&2; cat "$WORK/coordinator.log" >&2; exit 1; }
  COORD_PID=""
}

# smoke NAME DBSPEC [bench flags...]
smoke() {
  local name=$1 spec=$2
  shift 2
  echo "=== bench smoke: $name"
  start_coordinator "$spec"
  if ! "$WORK/settle-bench" -coordinator "$COORD_ADDR" -coordinator-pid "$COORD_PID" -store "$name" \
      -mode noop -c 10 -branches 2 -warmup 2s -duration 8s -drain-timeout 30s "$@"; then
    echo "FATAL: bench smoke on $name failed (errors or unfinished transactions); coordinator log:" >&2
    tail -n 50 "$WORK/coordinator.log" >&2
    exit 1
  fi
  stop_coordinator
}

smoke sqlite "sqlite:$WORK/settle.db" -db-process ""

if [[ "${SETTLE_BENCH_SKIP_MYSQL:-}" != 1 ]]; then
  CLIENT=$(command -v mariadb || command -v mysql || true)
  if [[ -z "$CLIENT" ]]; then
    echo "FATAL: no MariaDB/MySQL client found (set SETTLE_BENCH_SKIP_MYSQL=1 to skip)" >&2
    exit 1
  fi
  "$CLIENT" -h127.0.0.1 -P3306 -uroot -e "CREATE DATABASE \`$DBNAME\`"
  smoke mariadb "mysql:${DSN_BASE}${DBNAME}" -mysql-status "$DSN_BASE"
fi
echo "=== bench smoke passed"
