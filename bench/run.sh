#!/usr/bin/env bash
# `npm run bench [-- --quick | --only W1,W3 | --profile | --runs N]`
# Builds the project (tsc also compiles bench/*.ts), makes sure redis-server is
# present (apt-get when missing and root), compiles the C load generator with
# the machine's gcc, then runs the orchestrator (dist/bench/run.js), which
# writes bench/out/results.md and bench/out/results.json.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -d node_modules ]]; then
  echo "bench: node_modules missing; running npm ci" >&2
  npm ci --no-audit --no-fund
fi

npm run build --silent

if ! command -v redis-server >/dev/null 2>&1; then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "bench: installing redis-server with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # The orchestrator starts its own redis-server on a free port; stop the service the package may have started.
    service redis-server stop >/dev/null 2>&1 || true
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
  else
    echo "bench: redis-server is missing; run: sudo apt-get install -y redis-server" >&2
    exit 1
  fi
fi

if ! command -v gcc >/dev/null 2>&1; then
  echo "bench: gcc is missing; run: sudo apt-get install -y gcc" >&2
  exit 1
fi

mkdir -p bench/out
gcc -O2 -Wall -o bench/out/loadgen bench/loadgen.c

# W4 holds 15,000 connections in each of loadgen and the server: ask for the fd limit the machine allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec node dist/bench/run.js "$@"
