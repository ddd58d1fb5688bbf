#!/usr/bin/env bash
# Install what the demo needs, then run it: bash scripts/run_demo.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_install.sh examples
exec "$PYTHON" examples/demo_denoising.py "$@"
