#!/bin/sh
# Installs what `cargo bench` compares itself with: wrk (Debian package),
# the reference HTTP load generator, and nats-server (with the test tools,
# in target/test-tools) for the stream phase's JetStream server. The
# benchmark runs without either, saying so, and then reports its own load
# tool's figures only, and no stream phase.
set -eu
cd "$(dirname "$0")/.."
scripts/test-tools.sh
if command -v wrk >/dev/null 2>&1; then
    echo "wrk is installed: $(wrk --version 2>&1 | head -1)"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get install -y wrk || { $SUDO apt-get update && $SUDO apt-get install -y wrk; }
