#!/bin/sh
# Installs what `cargo bench` compares itself with: wrk (Debian package),
# the reference HTTP load generator. The benchmark runs without it, saying
# so, and then reports its own load tool's figures only.
set -eu
if command -v wrk >/dev/null 2>&1; then
    echo "wrk is installed: $(wrk --version 2>&1 | head -1)"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get install -y wrk || { $SUDO apt-get update && $SUDO apt-get install -y wrk; }
