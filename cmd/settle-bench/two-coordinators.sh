#!/usr/bin/env bash
# One coordinator against two on one MariaDB database, with the same number
# of initiators in all (BENCHMARKS.md, "Two coordinators on one database").
#
#   bash cmd/settle-bench/two-coordinators.sh [OUT.tsv]
#
# Each configuration gets a fresh database; "two" runs two settle-bench
# processes at once, each spawning its own coordinator on that database
# with half the initiators (labels two-cN-a and two-cN-b: add their tx/s).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-two-coordinators-$(date +%Y%m%d-%H%M%S).tsv}
MYSQL_DSN=${MYSQL_DSN:-root@tcp(127.0.0.1:3306)/}
REPS=${REPS:-3}
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/coordinator" ./cmd/coordinator
go build -o "$BIN/settle-bench" ./cmd/settle-bench
DB="mysql:${MYSQL_DSN}settle_scale"
fresh() { mysql -h127.0.0.1 -P3306 -uroot -e 'DROP DATABASE IF EXISTS settle_scale; CREATE DATABASE settle_scale'; }
bench() { # bench LABEL CONC
  "$BIN/settle-bench" -spawn "$BIN/coordinator" -spawn-db "$DB" -mode noop -c "$2" -register-at-begin \
    -warmup 2s -duration 8s -label "$1" -tsv "$OUT" >/dev/null
}
one() { fresh; bench "one-c$1" "$1"; }
two() {
  fresh
  "$BIN/coordinator" migrate -db "$DB" >/dev/null
  bench "two-c$1-a" $(($1 / 2)) & local a=$!
  bench "two-c$1-b" $(($1 / 2)) & local b=$!
  wait "$a" "$b"
}
for rep in $(seq 1 "$REPS"); do
  for total in 50 100; do
    if ((rep % 2)); then one "$total"; two "$total"; else two "$total"; one "$total"; fi
  done
done
echo "results in $OUT"
