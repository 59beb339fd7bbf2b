#!/usr/bin/env bash
# Checks that the OpenAPI document is valid OpenAPI 3.1, with openapi-spec-validator (PyPI) in a
# virtualenv of its own under target/. The document checked is the snapshot that tests/web.rs
# holds the served document to (tests/snapshots/web__openapi.snap), so run after the tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/openapi-venv"

if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    echo "check-openapi: installing python3-venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q openapi-spec-validator
fi

document="$(mktemp --suffix=.json)"
trap 'rm -f "$document"' EXIT
# The snapshot is insta's header between two `---` lines, then the document.
awk 'seen >= 2 { print } /^---$/ { seen++ }' "$root/tests/snapshots/web__openapi.snap" >"$document"
"$venv/bin/openapi-spec-validator" "$document"
