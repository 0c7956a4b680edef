#!/usr/bin/env bash
# Runs the benchmark matrix of BENCHMARKS.md and prints the medians.
#
#   bash cmd/settle-bench/matrix.sh [OUT.tsv]
#
# Every configuration runs REPS times (default 3), repetitions interleaved
# so that a burst of load from elsewhere spreads over configurations. Each
# run gets a fresh coordinator process (started by settle-bench -spawn) and
# a fresh database. Environment:
#   MYSQL_DSN   server DSN without a database (default root@tcp(127.0.0.1:3306)/)
#   PG_URL      PostgreSQL server URL without a database (default
#               postgres://postgres@127.0.0.1:5432); databases get
#               ?sslmode=disable
#   STORES      stores of the main loops and the demo runs (default
#               "mariadb postgres sqlite")
#   REPS        repetitions (default 3)
#   WARMUP, DURATION   per run (default 2s, 8s)
#   BEFORE      optional coordinator binary of an older commit, run as
#               labels "before" and "before-perbranch" (MariaDB, 10 and 50)
#   ONLY        optional regexp: run only configurations whose name matches
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${1:-bench-$(date +%Y%m%d-%H%M%S).tsv}
MYSQL_DSN=${MYSQL_DSN:-root@tcp(127.0.0.1:3306)/}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
STORES=${STORES:-mariadb postgres sqlite}
REPS=${REPS:-3}
WARMUP=${WARMUP:-2s}
DURATION=${DURATION:-8s}
BIN=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$BIN"
}
trap cleanup EXIT

go build -o "$BIN/coordinator" ./cmd/coordinator
go build -o "$BIN/settle-bench" ./cmd/settle-bench
go build -o "$BIN/participant-demo" ./cmd/participant-demo
mysql_cli() { mysql -h127.0.0.1 -P3306 -uroot "$@"; }
pg_cli() { psql "$PG_URL/postgres?sslmode=disable" -v ON_ERROR_STOP=1 -q "$@"; }
pg_fresh() { pg_cli -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"; }

fresh_db() { # fresh_db NAME -> prints the spec
  case $1 in
    mariadb) mysql_cli -e "DROP DATABASE IF EXISTS settle_bench; CREATE DATABASE settle_bench"
             echo "mysql:${MYSQL_DSN}settle_bench" ;;
    postgres) pg_fresh settle_bench >&2
             echo "postgres:$PG_URL/settle_bench?sslmode=disable" ;;
    sqlite)  rm -f "$BIN"/settle.db*; echo "sqlite:$BIN/settle.db" ;;
  esac
}

# Demo participants, one process per resource, each with its own database,
# per store (started once, reused by every demo run of that store).
start_demo() { # start_demo STORE -> sets DEMO_FLAGS
  local store=$1 a i
  if [[ $store == mariadb ]]; then
    mysql_cli -e "DROP DATABASE IF EXISTS settle_demo_a; CREATE DATABASE settle_demo_a; DROP DATABASE IF EXISTS settle_demo_i; CREATE DATABASE settle_demo_i"
    a="mysql:${MYSQL_DSN}settle_demo_a"; i="mysql:${MYSQL_DSN}settle_demo_i"
  elif [[ $store == postgres ]]; then
    pg_fresh settle_demo_a; pg_fresh settle_demo_i
    a="postgres:$PG_URL/settle_demo_a?sslmode=disable"; i="postgres:$PG_URL/settle_demo_i?sslmode=disable"
  else
    rm -f "$BIN"/demo_*.db*; a="sqlite:$BIN/demo_a.db"; i="sqlite:$BIN/demo_i.db"
  fi
  "$BIN/participant-demo" serve -listen 127.0.0.1:${DEMO_PORT_A:-27501} -db "$a" -resources accounts -log-level warn >"$BIN/demo_a.log" 2>&1 &
  local pa=$!
  "$BIN/participant-demo" serve -listen 127.0.0.1:${DEMO_PORT_I:-27502} -db "$i" -resources inventory -log-level warn >"$BIN/demo_i.log" 2>&1 &
  local pi=$!
  PIDS+=("$pa" "$pi")
  sleep 2
  if ! kill -0 "$pa" 2>/dev/null || ! kill -0 "$pi" 2>/dev/null; then
    echo "FATAL: demo participants did not start:" >&2
    cat "$BIN/demo_a.log" "$BIN/demo_i.log" >&2
    exit 1
  fi
  DEMO_FLAGS="-mode demo -demo-accounts 127.0.0.1:${DEMO_PORT_A:-27501} -demo-inventory 127.0.0.1:${DEMO_PORT_I:-27502} -demo-seed $a,$i -participant-pids $pa,$pi"
}

run() { # run LABEL STORE CONC BRANCHES [extra flags...]
  local label=$1 store=$2 c=$3 br=$4
  shift 4
  local name="$label/$store/c$c/b$br/$*"
  if [[ -n "${ONLY:-}" && ! $name =~ $ONLY ]]; then return 0; fi
  local coord="$BIN/coordinator" flags=()
  if [[ $label == before* ]]; then coord=$BEFORE; fi
  if [[ $store == none ]]; then
    flags=(-mode baseline)
  else
    flags=(-spawn "$coord" -spawn-db "$(fresh_db "$store")")
  fi
  case $store in
    mariadb)  flags+=(-mysql-status "$MYSQL_DSN") ;;
    # PostgreSQL runs a process per connection: no single database pid to
    # measure CPU of; the counters come from pg_stat_database/pg_stat_wal.
    postgres) flags+=(-postgres-status "$PG_URL/settle_bench?sslmode=disable" -db-process "") ;;
    *)        flags+=(-db-process "") ;;
  esac
  echo "== $name  (loadavg $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "$BIN/settle-bench" "${flags[@]}" -label "$label" -store "$store" -c "$c" -branches "$br" \
    -warmup "$WARMUP" -duration "$DURATION" -tsv "$OUT" "$@" >&2 || echo "run $name failed" >&2
}

# Registration: "begin" registers the branches with Begin, "perbranch" with
# one RegisterBranch per branch (the client SDK's Try).
for rep in $(seq 1 "$REPS"); do
  echo "=== repetition $rep" >&2
  for c in 10 50; do
    for store in $STORES; do
      run begin "$store" "$c" 2 -register-at-begin
      run perbranch "$store" "$c" 2
    done
    if [[ -n "${BEFORE:-}" ]]; then
      run before "mariadb" "$c" 2 -register-at-begin
      run before-perbranch "mariadb" "$c" 2
    fi
    run baseline none "$c" 2
  done
  # Curves: MariaDB, branches registered with Begin.
  for c in 1 200; do run begin mariadb "$c" 2 -register-at-begin; done
  for br in 1 8 32; do run begin mariadb 10 "$br" -register-at-begin; done
done
# Demo participants last (their databases grow with every run).
for store in $STORES; do
  if [[ -n "${ONLY:-}" && ! "demo/$store" =~ $ONLY ]]; then continue; fi
  start_demo "$store"
  for rep in $(seq 1 "$REPS"); do
    for c in 10 50; do
      # shellcheck disable=SC2086
      run demo "$store" "$c" 2 -register-at-begin $DEMO_FLAGS
      # shellcheck disable=SC2086
      run demo-perbranch "$store" "$c" 2 $DEMO_FLAGS
    done
  done
  kill "${PIDS[-1]}" "${PIDS[-2]}" 2>/dev/null || true
  wait "${PIDS[-1]}" "${PIDS[-2]}" 2>/dev/null || true
done
"$BIN/settle-bench" summarize "$OUT"
