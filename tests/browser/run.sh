#!/usr/bin/env bash
# Builds the debug binary, starts it on a free port with a fresh SQLite database in a temp
# directory and Web Push on (a fresh VAPID key: the admin test's fake push service receives the
# test push), makes a staff account with `causerie createsuperuser`, runs the browser tests
# (the chat page, then the admin site) against it, stops it, and exits non-zero if one failed.
# Needs node (>= 18), npm and Debian's chromium (/usr/bin/chromium, or set CHROMIUM_PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

(cd "$root" && cargo build --bin causerie)

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port="$(node -e '
  const s = require("net").createServer();
  s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });
')"
url="http://127.0.0.1:$port"
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/vapid.pem" 2>/dev/null

(
  cd "$tmp"
  CAUSERIE_DATABASE_URL="sqlite://$tmp/b.db" CAUSERIE_PUSH_VAPID_PRIVATE_KEY_FILE="$tmp/vapid.pem" \
    CAUSERIE_PUSH_VAPID_SUBJECT="mailto:ops@example.test" \
    exec "$root/target/debug/causerie" serve --bind "127.0.0.1:$port"
) >"$tmp/server.log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 150); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the server exited during start-up:" >&2
    cat "$tmp/server.log" >&2
    exit 1
  fi
  if curl -fsS "$url/healthz" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.2
done
if [[ -z "$ready" ]]; then
  echo "the server did not answer $url/healthz within 30 s:" >&2
  tail -n 50 "$tmp/server.log" >&2
  exit 1
fi

admin_email="admin@example.test"
admin_password="Staff-Lantern-$RANDOM-$RANDOM"
(
  cd "$tmp"
  CAUSERIE_DATABASE_URL="sqlite://$tmp/b.db" CAUSERIE_NEW_PASSWORD="$admin_password" \
    "$root/target/debug/causerie" createsuperuser --email "$admin_email" --no-input
) >>"$tmp/server.log" 2>&1

cd "$here"
npm ci --no-audit --no-fund >/dev/null 2>&1 || npm install --no-audit --no-fund

status=0
CAUSERIE_URL="$url" node chat.spec.mjs || status=$?
CAUSERIE_URL="$url" CAUSERIE_ADMIN_EMAIL="$admin_email" CAUSERIE_ADMIN_PASSWORD="$admin_password" \
  node admin.spec.mjs || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- server log (last 50 lines) ---" >&2
  tail -n 50 "$tmp/server.log" >&2
fi
exit "$status"
