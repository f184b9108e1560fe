#!/usr/bin/env bash
# Installs pg-boss from npm (pinned in package.json) and runs the peer benchmark.
set -euo pipefail
cd "$(dirname "$0")"
npm install --no-audit --no-fund --silent >/dev/null
node bench.mjs "$@"
