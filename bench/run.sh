#!/usr/bin/env bash
# `npm run bench [-- --quick | --only W1,W3 | --profile | --runs N]`
# Builds the project (tsc also compiles bench/*.ts), makes sure redis-server,
# nginx, wrk and curl are present (apt-get when missing and root), compiles
# the C load generator with the machine's gcc, then runs the orchestrator
# (dist/bench/run.js), which writes bench/out/results.md and results.json.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -d node_modules ]]; then
  echo "bench: node_modules missing; running npm ci" >&2
  npm ci --no-audit --no-fund
fi

npm run build --silent

# Debian packages the bench runs, each named like its command: redis-server
# (W2, W6 across two nodes), and for W6 nginx (the reference proxy and the
# back end), wrk (the HTTP load generator) and curl (the downloads).
missing=()
for tool in redis-server nginx wrk curl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]} > 0)); then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "bench: installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The orchestrator starts its own redis-server and nginx instances on free
    # ports; stop the services the packages may have started.
    for service in redis-server nginx; do
      if [[ " ${missing[*]} " == *" $service "* ]]; then
        service "$service" stop >/dev/null 2>&1 || true
        if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$service" >/dev/null 2>&1 || true; fi
      fi
    done
  else
    echo "bench: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
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
