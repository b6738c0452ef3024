#!/usr/bin/env bash
# Run the Pusher SDK compatibility suite against the Relay binary.
# Usage: compat-tests/run.sh   (RELAY_BIN overrides ../target/debug/relay)
#
# Installs the Node SDKs (npm ci) and a Python virtualenv at .venv with the
# official `pusher` PyPI SDK (python/requirements.txt), then runs every
# tests/*.test.js. The venv's interpreter is passed to the tests as
# RELAY_COMPAT_PYTHON.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

npm ci --no-audit --no-fund --loglevel=error >/dev/null

venv=.venv
stamp="$venv/.requirements.installed"
if [ ! -x "$venv/bin/python" ] || [ ! -x "$venv/bin/pip" ]; then
  rm -rf "$venv"
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    echo "compat-tests/run.sh: 'python3 -m venv' is unavailable; install it (Debian/Ubuntu: apt-get install python3-venv) and re-run" >&2
    exit 1
  fi
fi
if ! cmp -s python/requirements.txt "$stamp"; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r python/requirements.txt
  cp python/requirements.txt "$stamp"
fi
export RELAY_COMPAT_PYTHON="$PWD/$venv/bin/python"

exec node --test --test-reporter=spec tests/*.test.js
