#!/usr/bin/env bash
# Makes sure the tools the test suite needs are available:
#   - redis-server and redis-cli on PATH (tests spawn their own redis-server);
#   - chromium at /usr/bin/chromium (the browser test of the demo page drives it
#     with playwright-core, which never downloads a browser of its own);
#   - prometheus and promtool on PATH (the monitoring test checks the alert
#     rules with promtool and scrapes a node with a real prometheus);
#   all installed with apt-get (one `apt-get update`, only when something is
#   missing) when running as root; otherwise the install command is printed.
#   - the uWebSockets.js native binary loads on this platform.
# Quiet when everything is already present. Run from anywhere.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHROMIUM=/usr/bin/chromium

have_redis() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1
}

have_chromium() {
  [[ -x "$CHROMIUM" ]]
}

have_prometheus() {
  command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1
}

# Debian packages to install, each with the check that says it is present.
missing=()
have_redis || missing+=(redis-server)
have_chromium || missing+=(chromium)
have_prometheus || missing+=(prometheus)

if ((${#missing[@]} > 0)); then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-deps: installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [[ " ${missing[*]} " == *" redis-server "* ]]; then
      # Tests spawn their own redis-server; stop the system service if the
      # package started one (no-op in containers without an init system).
      service redis-server stop >/dev/null 2>&1 || true
      if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now redis-server >/dev/null 2>&1 || true
      fi
    fi
    if [[ " ${missing[*]} " == *" prometheus "* ]]; then
      # The monitoring test runs its own prometheus on a free port; stop and
      # disable the system service the package enables (port 9090).
      service prometheus stop >/dev/null 2>&1 || true
      if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now prometheus >/dev/null 2>&1 || true
      fi
    fi
    if ! have_redis; then
      echo "ensure-test-deps: apt-get install redis-server finished but redis-server/redis-cli are still not on PATH" >&2
      exit 1
    fi
    if ! have_chromium; then
      echo "ensure-test-deps: apt-get install chromium finished but $CHROMIUM is still missing" >&2
      exit 1
    fi
    if ! have_prometheus; then
      echo "ensure-test-deps: apt-get install prometheus finished but prometheus/promtool are still not on PATH" >&2
      exit 1
    fi
  else
    echo "ensure-test-deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if ! node -e "process.exit(require('uWebSockets.js').App.toString().includes('[native code]') ? 0 : 1)" >/dev/null 2>&1; then
  echo "ensure-test-deps: the uWebSockets.js native binary does not load for $(node -p 'process.platform + "-" + process.arch + " abi " + process.versions.modules') (is node_modules installed? run: npm ci)" >&2
  exit 1
fi
