#!/usr/bin/env bash
# Makes sure the tools the test suite needs are available, each a Debian
# package (name = what apt-get installs):
#   - redis-server: redis-server and redis-cli on PATH (tests spawn their own);
#   - chromium at /usr/bin/chromium (the browser tests drive it with
#     playwright-core, which never downloads a browser of its own);
#   - haproxy (the deploy test runs the shipped HAProxy config in front of
#     three local nodes; Debian puts it in /usr/sbin);
#   - prometheus: prometheus and promtool on PATH (the monitoring test checks
#     the alert rules with promtool and scrapes a node with a real prometheus);
#   all installed with apt-get (one `apt-get update`, only when something is
#   missing) when running as root; otherwise the install command is printed.
#   Packages that start a system service (redis-server, haproxy, prometheus)
#   have it stopped and disabled: the tests start their own, on free ports.
#   - the uWebSockets.js native binary loads on this platform.
# Quiet when everything is already present. Run from anywhere.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CHROMIUM=/usr/bin/chromium

# present PACKAGE: whether what the tests use of PACKAGE is there.
present() {
  case "$1" in
    redis-server) command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ;;
    chromium) [[ -x "$CHROMIUM" ]] ;;
    haproxy) command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] ;;
    prometheus) command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 ;;
  esac
}

PACKAGES=(redis-server chromium haproxy prometheus)
SERVICES=(redis-server haproxy prometheus)

missing=()
for package in "${PACKAGES[@]}"; do
  present "$package" || missing+=("$package")
done

if ((${#missing[@]} > 0)); then
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-deps: installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for package in "${missing[@]}"; do
      if [[ " ${SERVICES[*]} " == *" $package "* ]]; then
        # No-op in containers without an init system.
        service "$package" stop >/dev/null 2>&1 || true
        if command -v systemctl >/dev/null 2>&1; then
          systemctl disable --now "$package" >/dev/null 2>&1 || true
        fi
      fi
      if ! present "$package"; then
        echo "ensure-test-deps: apt-get install $package finished but what the tests need of it is still missing" >&2
        exit 1
      fi
    done
  else
    echo "ensure-test-deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if ! node -e "process.exit(require('uWebSockets.js').App.toString().includes('[native code]') ? 0 : 1)" >/dev/null 2>&1; then
  echo "ensure-test-deps: the uWebSockets.js native binary does not load for $(node -p 'process.platform + "-" + process.arch + " abi " + process.versions.modules') (is node_modules installed? run: npm ci)" >&2
  exit 1
fi
