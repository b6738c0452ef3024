#!/usr/bin/env bash
# Run the Pusher SDK compatibility suite against the Relay binary.
# Usage: compat-tests/run.sh   (RELAY_BIN overrides ../target/debug/relay)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

npm ci --no-audit --no-fund --loglevel=error >/dev/null

exec node --test --test-reporter=spec tests/
