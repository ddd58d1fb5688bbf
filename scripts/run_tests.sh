#!/usr/bin/env bash
# Install what the tests need, then run them: bash scripts/run_tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_install.sh test
exec "$PYTHON" -m pytest "$@"
