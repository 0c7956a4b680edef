#!/usr/bin/env bash
# The container image, as far as this machine can check it (no registry
# access: the Dockerfile's golang base image cannot be pulled):
#   1. the Dockerfile's final stage: scratch, numeric non-root USER,
#      ENTRYPOINT ["/coordinator"], EXPOSE 7400 7401 (imagecheck dockerfile);
#   2. the binary built with the Dockerfile's own `go build` line, parsed
#      from it (imagecheck build), is static, stripped and path-free
#      (imagecheck binary: debug/elf, no PT_INTERP, no DT_NEEDED);
#   3. with podman (Debian's podman and runc): the build context with
#      .dockerignore applied holds what `go build` needs (the Dockerfile's
#      line builds there) and none of .git, docs, deploy, tools, model;
#      an image from the
#      Dockerfile's final stage with that binary (imagecheck context),
#      started read-only, all capabilities dropped; `migrate` in it as a
#      database user with docs/operations.md's migration GRANTs (and
#      refused as the serving user); then serving on 0.0.0.0 with a token
#      file as the serving user (SELECT, INSERT, UPDATE, DELETE only): its
#      gRPC health service must answer SERVING, /healthz 200, its process
#      must run as uid 65532, an authenticated admin call and a committed
#      transaction must work, a call without a token must get 401, and
#      SIGTERM must stop it cleanly. Without auth it must refuse to start.
# Needs MariaDB on 127.0.0.1:3306 (.ci/run starts it). SETTLE_CI_NO_CONTAINER=1
# skips part 3 (saying so); otherwise a missing podman fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
name="settle-ci-image-$$"
cleanup() {
  if command -v podman >/dev/null 2>&1; then
    podman rm -f "$name" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/imagecheck" ./deploy/imagecheck
"$work/imagecheck" dockerfile -f Dockerfile
"$work/imagecheck" build -f Dockerfile -o "$work/coordinator"
"$work/imagecheck" binary "$work/coordinator"

if [[ "${SETTLE_CI_NO_CONTAINER:-}" == 1 ]]; then
  echo "SKIPPED (SETTLE_CI_NO_CONTAINER=1): building and running the image with podman"
  exit 0
fi
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  # A fresh machine: install them from Debian's packages.
  if command -v apt-get >/dev/null 2>&1; then
    echo "podman or runc missing: installing podman runc uidmap from Debian's packages"
    apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y podman runc uidmap >/dev/null; }
    apt_install || { apt-get update >/dev/null && apt_install; } || true
  fi
fi
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  echo "FATAL: podman and runc are needed to build and run the image and could not be installed (apt-get install podman runc), or set SETTLE_CI_NO_CONTAINER=1" >&2
  exit 1
fi

# The build context as the engine sees it (.dockerignore applied): copied
# into an image, exported, and built there with the Dockerfile's line.
printf 'FROM scratch\nCOPY . /src/\n' > "$work/Containerfile.context"
podman build -q -f "$work/Containerfile.context" -t "localhost/settle-context:ci-$$" . >/dev/null
cid=$(podman create "localhost/settle-context:ci-$$" /none)
mkdir "$work/context"
podman export "$cid" | tar -x -C "$work/context"
podman rm "$cid" >/dev/null
podman rmi -f "localhost/settle-context:ci-$$" >/dev/null
echo "build context after .dockerignore: $(find "$work/context/src" -type f | wc -l) files, $(du -sh "$work/context/src" | cut -f1)"
for f in .git tools docs deploy model Dockerfile; do
  [[ ! -e "$work/context/src/$f" ]] || { echo "FATAL: $f is in the build context (.dockerignore)" >&2; exit 1; }
done
"$work/imagecheck" build -f Dockerfile -C "$work/context/src" -o "$work/coordinator-from-context"
if cmp -s "$work/coordinator" "$work/coordinator-from-context"; then
  echo "the binary built from the context is identical to the one from the checkout"
else
  echo "note: the binary built from the context differs from the checkout's (uncommitted files?)"
fi

"$work/imagecheck" context -f Dockerfile -bin "$work/coordinator" -o "$work/ctx" >/dev/null
image="localhost/settle-coordinator:ci-$$"
podman build -q -t "$image" "$work/ctx" >/dev/null
trap 'cleanup; podman rmi -f "$image" >/dev/null 2>&1 || true' EXIT
podman image inspect "$image" --format 'image: user {{.Config.User}}, entrypoint {{.Config.Entrypoint}}, ports {{.Config.ExposedPorts}}, {{.Size}} bytes'

# runc, not crun: crun refuses this machine's hybrid cgroup layout. The
# ulimits are set below the host's because the sandbox may not raise them.
run=(podman --runtime runc run --network host --ulimit nofile=4096:4096 --ulimit nproc=4096:4096
  --read-only --cap-drop ALL --security-opt no-new-privileges)
# The two database users of docs/operations.md ("Database privileges"),
# with exactly its GRANTs: the migration runs as one (like the chart's hook
# Job: the image with the argument migrate), the coordinator as the other.
db="settle_ci_image_$$"
mig="settle_ci_mig_$$"
app="settle_ci_app_$$"
pw=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
CLIENT=$(command -v mariadb || command -v mysql)
sql() { "$CLIENT" -h127.0.0.1 -P3306 -uroot -e "$1"; }
sql "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db;
  DROP USER IF EXISTS '$mig'@'%', '$app'@'%';
  CREATE USER '$mig'@'%' IDENTIFIED BY '$pw';
  GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP ON $db.* TO '$mig'@'%';
  CREATE USER '$app'@'%' IDENTIFIED BY '$pw';
  GRANT SELECT, INSERT, UPDATE, DELETE ON $db.* TO '$app'@'%';"
teardown() {
  cleanup
  podman rmi -f "$image" >/dev/null 2>&1 || true
  sql "DROP DATABASE IF EXISTS $db; DROP USER IF EXISTS '$mig'@'%', '$app'@'%'" || true
}
trap teardown EXIT
if out=$(timeout 60 "${run[@]}" --rm -e "SETTLE_DB=mysql:$app:$pw@tcp(127.0.0.1:3306)/$db" "$image" migrate 2>&1); then
  echo "FATAL: the serving user could migrate (it must have no DDL rights)" >&2; exit 1
fi
grep -q "CREATE command denied" <<<"$out" || { echo "FATAL: unexpected migrate failure: $out" >&2; exit 1; }
echo "migrate as the serving user: refused (CREATE command denied)"
timeout 120 "${run[@]}" --rm -e "SETTLE_DB=mysql:$mig:$pw@tcp(127.0.0.1:3306)/$db" "$image" migrate
port=$((20000 + $$ % 20000))
env=(-e "SETTLE_DB=mysql:$app:$pw@tcp(127.0.0.1:3306)/$db" -e "SETTLE_LISTEN=0.0.0.0:$port"
  -e "SETTLE_HTTP_LISTEN=0.0.0.0:$((port + 1))" -e SETTLE_SHUTDOWN_TIMEOUT=5s -e SETTLE_LOG_FORMAT=json)

# No authentication on 0.0.0.0: refused.
if out=$(timeout 60 "${run[@]}" --rm "${env[@]}" "$image" 2>&1); then
  echo "FATAL: the image started on 0.0.0.0 without authentication" >&2; exit 1
fi
grep -q "without authentication" <<<"$out" || { echo "FATAL: unexpected refusal: $out" >&2; exit 1; }
echo "no auth on 0.0.0.0: refused ($out)"

token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
itoken=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s,ci,operator\n%s,ci-orders,initiator\n' "$token" "$itoken" > "$work/tokens.csv"
chmod 0444 "$work/tokens.csv"
"${run[@]}" -d --name "$name" "${env[@]}" \
  -v "$work/tokens.csv:/etc/settle/tokens/tokens.csv:ro" -e SETTLE_AUTH_TOKEN_FILE=/etc/settle/tokens/tokens.csv \
  "$image" >/dev/null
if ! "$work/imagecheck" health -timeout 60s "127.0.0.1:$port"; then
  podman logs "$name" >&2 || true; exit 1
fi
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((port + 1))/healthz")
[[ "$code" == 200 ]] || { echo "FATAL: /healthz answered $code" >&2; exit 1; }
pid=$(podman inspect "$name" --format '{{.State.Pid}}')
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
[[ "$uids" == "65532 65532 65532 65532" ]] || { echo "FATAL: container process uids $uids, want 65532" >&2; exit 1; }
echo "container process uid: $uids; /healthz 200"
podman exec -e "SETTLE_TOKEN=$token" "$name" /coordinator admin list -addr "127.0.0.1:$port" >/dev/null
echo "authenticated admin list through the image: ok"
# A transaction as the serving user (DML only): Begin and Commit over HTTP.
h="http://127.0.0.1:$((port + 1))"
code=$(curl -s -o /dev/null -w '%{http_code}' -d '{"gid":"ci-image-1","timeout":"30s"}' "$h/v1/transactions")
[[ "$code" == 401 ]] || { echo "FATAL: Begin without a token answered $code, want 401" >&2; exit 1; }
curl -sf -H "authorization: Bearer $itoken" -d '{"gid":"ci-image-1","timeout":"30s"}' "$h/v1/transactions" >/dev/null
out=$(curl -sf -H "authorization: Bearer $itoken" -d '{"gid":"ci-image-1","wait":true}' "$h/v1/transactions/ci-image-1:commit")
grep -q TRANSACTION_STATE_COMMITTED <<<"$out" || { echo "FATAL: commit: $out" >&2; exit 1; }
echo "a transaction committed as the DML-only user; Begin without a token: 401"
podman stop -t 20 "$name" >/dev/null
[[ "$(podman inspect "$name" --format '{{.State.ExitCode}}')" == 0 ]] || { podman logs "$name" >&2; echo "FATAL: nonzero exit after SIGTERM" >&2; exit 1; }
podman logs "$name" 2>&1 | grep -q '"coordinator stopped"' || { podman logs "$name" >&2; echo "FATAL: no clean shutdown logged" >&2; exit 1; }
echo "SIGTERM: clean shutdown, exit 0"
