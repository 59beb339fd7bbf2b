#!/usr/bin/env bash
# The finished app's load (docs/benchmarks.md, "The finished app's load"): the REST reads the
# app repeats, a connect storm, and the ramp of simulated app users, on SQLite and PostgreSQL,
# one fresh server each; then a summary. Needs a release build (`cargo build --release`).
#
#   scripts/bench-app.sh OUTDIR [sqlite|pg ...]
#
# Nothing else should run on the machine meanwhile: the server and the load generator share it.
set -euo pipefail
out=$1
shift
backends=("${@:-sqlite}")
[ $# -eq 0 ] && backends=(sqlite pg)
here=$(dirname "$0")
for b in "${backends[@]}"; do
  "$here/bench-one.sh" "$b" "$out" "$b-rest-chat-20" rest --path /api/chat/ --chats 20 --concurrency 32 --duration 20
  "$here/bench-one.sh" "$b" "$out" "$b-rest-chat-200" rest --path /api/chat/ --chats 200 --concurrency 32 --duration 20
  "$here/bench-one.sh" "$b" "$out" "$b-rest-history-p1" rest --path '/api/message/?refChat={chat}&page=1' \
    --chats 1 --messages 100000 --concurrency 32 --duration 20
  "$here/bench-one.sh" "$b" "$out" "$b-rest-history-p50" rest --path '/api/message/?refChat={chat}&page=50' \
    --chats 1 --messages 100000 --concurrency 32 --duration 20
  "$here/bench-one.sh" "$b" "$out" "$b-rest-me" rest --path /auth/users/me/ --chats 1 --concurrency 32 --duration 20
  "$here/bench-one.sh" "$b" "$out" "$b-connect-storm" connect-storm --count 19000 --concurrency 1024 --duration 30
  # Access tokens of 60 s, so that every user refreshes a few times within the ramp.
  EXTRA_ENV="CAUSERIE_ACCESS_TOKEN_LIFETIME_SECS=60" "$here/bench-one.sh" "$b" "$out" "$b-app" app \
    --start 1000 --step 1000 --max-users 12000 --step-secs 10 --duration 300
done
python3 "$here/bench-summary.py" "$out"
