#!/usr/bin/env bash
# Installs what the web build needs when it is missing: Node.js ≥ 20.19 with npm (Debian's
# package when there is no node at all), then the npm packages pinned by package-lock.json.
# With --browser, also Debian's Chromium for the browser tests (never a downloaded browser).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "missing: $* (install it with: sudo apt-get install $*)" >&2
    exit 2
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "[web] installing Node.js and npm (Debian packages)"
  apt_install nodejs npm
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "Node.js $(node --version) is too old: the web build (Vite 8) needs ≥ 20.19" >&2
  exit 2
fi

# npm ci when node_modules is missing or older than the lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[web] npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ "${1:-}" = "--browser" ] && [ ! -x "${WARD_CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "[web] installing Debian's chromium for the browser tests"
  apt_install chromium
fi
