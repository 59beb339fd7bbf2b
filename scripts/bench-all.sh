#!/usr/bin/env bash
# Runs every scenario of docs/benchmarks.md on SQLite and on PostgreSQL, one fresh server each,
# and prints a summary. Needs a release build (`cargo build --release`) and, for the PostgreSQL
# half, `createdb`/`dropdb` reaching 127.0.0.1:5432 as `postgres`.
#
#   scripts/bench-all.sh OUTDIR [sqlite|pg ...]
#
# Nothing else should run on the machine meanwhile: the server and the load generator share it.
set -euo pipefail
out=$1
shift
backends=("${@:-sqlite}")
[ $# -eq 0 ] && backends=(sqlite pg)
here=$(dirname "$0")
for b in "${backends[@]}"; do
  "$here/bench-one.sh" "$b" "$out" "$b-connections" connections --count 19000 --hold 5 --duration 120
  "$here/bench-one.sh" "$b" "$out" "$b-throughput-max" throughput --chats 100 --rate 0 --window 128 --duration 60
  "$here/bench-one.sh" "$b" "$out" "$b-throughput-5k" throughput --chats 100 --rate 5000 --duration 30
  "$here/bench-one.sh" "$b" "$out" "$b-login-storm" throughput --chats 100 --rate 2000 --duration 20 --login-storm 16
  "$here/bench-one.sh" "$b" "$out" "$b-fanout-100" fanout --members 100 --rate 0 --window 64 --duration 20
  "$here/bench-one.sh" "$b" "$out" "$b-fanout-1000" fanout --members 1000 --rate 0 --window 64 --duration 20
  "$here/bench-one.sh" "$b" "$out" "$b-history" history --workers 16 --messages 10000 --duration 20
done
python3 "$here/bench-summary.py" "$out"
