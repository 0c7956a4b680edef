#!/usr/bin/env bash
# Model-check model/settle.pml with spin (see model/README.md).
#   1. safety: assertions (I1, I2, I3, I5, L1 lease fence, B1 branch rows)
#      and invalid end states, MAXFAULTS=1
#   2. liveness: the LTL claim `live` under weak fairness (pan -a -f), fault-free
#   1b, 2b. the same with -DDECIDER (the initiator's local decision and
#      its decider, issue 18)
#   3. each broken variant must produce a counterexample, of the property
#      named with it (a violation of some other assertion does not count)
# Runs in a temporary directory; nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="$PWD/model/settle.pml"

if ! command -v spin >/dev/null 2>&1; then
  echo "spin not found; installing it (apt-get install -y spin)"
  apt-get install -y spin || { apt-get update && apt-get install -y spin; }
fi
CC=$(command -v gcc || command -v cc)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cp "$MODEL" settle.pml

# build NAME SPIN_FLAGS CC_FLAGS [OPT]: generate pan.c and compile it to ./NAME
build() {
  local name=$1 sflags=$2 cflags=$3 opt=${4:--O2}
  rm -f pan.[chmbt] pan_* 2>/dev/null || true
  # shellcheck disable=SC2086
  spin $sflags -a settle.pml >/dev/null
  # shellcheck disable=SC2086
  "$CC" "$opt" -w $cflags -o "$name" pan.c
}

# errors OUTPUT: the "errors: N" count pan printed
errors() { sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$1" | tail -1; }

summary() { grep -E 'errors:|states, stored|elapsed time|total actual memory' "$1" | sed 's/^/    /'; }

fail=0

# verify TITLE NAME SPIN_FLAGS CC_FLAGS PAN_FLAGS: an exhaustive search that
# must complete with no error.
verify() {
  local title=$1 name=$2 sflags=$3 cflags=$4 pflags=$5
  echo "--- $title"
  build "$name" "$sflags" "$cflags"
  # shellcheck disable=SC2086
  "./$name" $pflags >"$name.out" 2>&1 || true
  summary "$name.out"
  if [[ "$(errors "$name.out")" != "0" ]] || ! grep -q 'Full statespace search' "$name.out"; then
    echo "FAIL: $title: an error was found (or the search did not complete)"; cat "$name.out"; fail=1
  fi
}

verify "safety (assertions, invalid end states)" pan_safety "" "-DNOCLAIM" "-m100000"
verify "liveness (LTL claim live, weak fairness, no faults)" pan_live "-DLIVENESS -DMAXFAULTS=0" "-DNFAIR=3" "-a -f -m200000"
verify "safety with the initiator's local decision and its decider (-DDECIDER)" pan_dsafety "-DDECIDER" "-DNOCLAIM" "-m100000"
# 10 processes with the decider: NFAIR=4
verify "liveness with the decider (-DDECIDER, weak fairness, no faults)" pan_dlive "-DDECIDER -DLIVENESS -DMAXFAULTS=0" "-DNFAIR=4" "-a -f -m200000"

# Each broken variant with the assertion its counterexample must violate
# (an extended regular expression on pan's "assertion violated" line; see
# model/README.md).  A violation of some other assertion does not count.
I1='fence\[0\]==|\|\|\(decision=='   # I1: a mix, or a confirm without a commit
variants=(
  "BUG_CHECKBACK_NO_RECORD|$I1"
  "BUG_FENCE_NO_ANTIHANGING|res_reserved\[i\]==res_released\[i\]"   # I5
  "BUG_ROUND_NO_VERSION|rec_owner==c"                                  # L1
  "BUG_CLAIM_NO_VERSION_BUMP|rec_owner==c"                             # L1
  "BUG_BATCH_TOTAL_COUNT|$I1"
  "BUG_BATCH_GROUP_FAILED|br_state\[i\]!="                             # B1
  "DECIDER -DBUG_DECIDER_NO_INSERT|local_row==.*decision=="            # I1, the initiator's row
  "DECIDER -DBUG_LOCAL_COMMIT_THEN_ROLLBACK|local_row==.*decision=="   # I1, the initiator's row
)
for v in "${variants[@]}"; do
  bug=${v%%|*} want=${v#*|}
  echo "--- broken variant $bug (a counterexample is expected)"
  build pan_bug "-D$bug" "-DNOCLAIM" -O0   # a small search: compile fast
  ./pan_bug -m100000 >bug.out 2>&1 || true
  grep -E 'assertion violated|errors:|states, stored' bug.out | sed 's/^/    /'
  n=$(errors bug.out)
  if [[ -z "$n" || "$n" == "0" ]]; then
    echo "FAIL: spin found no counterexample for $bug"; cat bug.out; fail=1
  elif ! grep 'assertion violated' bug.out | grep -qE -- "$want"; then
    echo "FAIL: $bug violated another property than the expected ($want)"; cat bug.out; fail=1
  fi
done

if [[ $fail != 0 ]]; then
  exit 1
fi
echo "spin: all checks passed"
