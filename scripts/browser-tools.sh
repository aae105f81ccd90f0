#!/bin/sh
# Installs what the console's browser test drives: Debian's Chromium, and
# playwright-core (which never downloads a browser of its own) into
# target/browser-tools. Run by .ci/run and, when missing, by the test.
set -eu
cd "$(dirname "$0")/.."
TOOLS=target/browser-tools
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! command -v chromium >/dev/null 2>&1; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
fi
if ! command -v npm >/dev/null 2>&1; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nodejs npm
fi
if [ ! -f "$TOOLS/node_modules/playwright-core/package.json" ]; then
    mkdir -p "$TOOLS"
    cp tests/console/package.json tests/console/package-lock.json "$TOOLS/"
    (cd "$TOOLS" && npm ci --silent --no-audit --no-fund)
fi
