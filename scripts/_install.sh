# Sourced by the run_*.sh scripts: install the package and what it needs.
# torch goes first, pinned to the CPU build that lies on this kind of machine:
# a bare "torch" requirement with no torch installed would pull a multi-GB
# CUDA build. An existing torch (any version >= 2.1) is kept.
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi
"$PYTHON" -m pip install --quiet -e ".[$1]"
