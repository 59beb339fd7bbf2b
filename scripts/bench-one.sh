#!/usr/bin/env bash
# Runs one `causerie bench` scenario against a fresh server in a fresh directory (and, for
# PostgreSQL, a fresh database), then stops the server. The JSON result goes to OUTDIR/NAME.json,
# the server's log to OUTDIR/NAME.log.
#
#   scripts/bench-one.sh sqlite|pg OUTDIR NAME [bench arguments…]
#   e.g. scripts/bench-one.sh sqlite /tmp/runs tp throughput --chats 100 --rate 0 --duration 15
#        scripts/bench-one.sh sqlite /tmp/runs list rest --path /api/chat/ --chats 20 --concurrency 32 --duration 20
#        scripts/bench-one.sh sqlite /tmp/runs storm connect-storm --count 19000 --duration 30
#        EXTRA_ENV=CAUSERIE_ACCESS_TOKEN_LIFETIME_SECS=60 scripts/bench-one.sh sqlite /tmp/runs app app --duration 120
#   (scripts/bench-app.sh runs the finished-app scenarios; bench-all.sh the message-path ones)
#
# BIN (default target/release/causerie) picks the binary, PORT (8300) the port, EXTRA_ENV extra
# `NAME=value` settings for the server, PERF=1 records `perf record -g` of the server meanwhile
# (PERF_SECS seconds, 10, from PERF_DELAY seconds after it is ready, 25).
set -euo pipefail
backend=$1 out=$2 name=$3
shift 3
bin=$(realpath "${BIN:-target/release/causerie}")
port=${PORT:-8300}
mkdir -p "$out"
out=$(realpath "$out")
dir=$(mktemp -d /tmp/causerie-bench.XXXXXX)
env_list=(CAUSERIE_BIND=127.0.0.1:$port CAUSERIE_WS_FRAMES_PER_SECOND=100000 CAUSERIE_WS_FRAMES_BURST=100000
  CAUSERIE_RATE_LOGIN_PER_MINUTE=100000 CAUSERIE_MAX_CONNECTIONS_PER_IP=0 CAUSERIE_USER_MESSAGES_PER_SECOND=0)
db=""
if [ "$backend" = pg ]; then
  db=bench_$(date +%s)_$$
  createdb -h 127.0.0.1 -U postgres "$db"
  env_list+=(CAUSERIE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db)
fi
# shellcheck disable=SC2206
env_list+=(${EXTRA_ENV:-})
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  [ -n "$db" ] && dropdb -h 127.0.0.1 -U postgres --if-exists "$db" || true
  rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"
env "${env_list[@]}" "$bin" serve >"$out/$name.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
if [ "${PERF:-}" = 1 ]; then
  (sleep "${PERF_DELAY:-25}"; perf record -F 499 -g -p "$server" -o "$out/$name.perf" -- sleep "${PERF_SECS:-10}" >/dev/null 2>&1) &
  perf_job=$!
fi
echo "$(date -u +%T) $name: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
env "${env_list[@]}" "$bin" bench "$1" --url "http://127.0.0.1:$port" "${@:2}" --json >"$out/$name.json"
[ -n "${perf_job:-}" ] && wait "$perf_job" || true
