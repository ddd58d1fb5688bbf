# Sourced by the run_*.sh scripts: pick the Python, install the package and
# what it needs, and leave that interpreter in $PYTHON.
#
# Interpreter: $PYTHON if set, else python3. If that interpreter is
# "externally managed" (PEP 668: Debian/Ubuntu's /usr/bin/python3, where pip
# refuses to install) or has no pip, the scripts create a virtual environment
# in .venv/ (once; later runs reuse it) and install into it instead.
# USE_VENV=1 always uses .venv/, USE_VENV=0 never does.
#
# torch goes first, pinned to the CPU build that lies on this kind of machine:
# a bare "torch" requirement with no torch installed would pull a multi-GB
# CUDA build. An existing torch (any version >= 2.1) is kept.
PYTHON=${PYTHON:-python3}
VENV_DIR=.venv

_say() { echo "[$(basename "$0")] $*" >&2; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    _say "error: no Python interpreter '$PYTHON' found; install Python >= 3.9" \
         "or point PYTHON at one (PYTHON=/path/to/python3 bash $0)."
    exit 1
fi

# "managed" (PEP 668 marker, outside a venv), "nopip" or "ok".
_python_state() {
    "$1" - <<'EOF' 2>/dev/null || echo broken
import importlib.util, os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
if sys.prefix == sys.base_prefix and os.path.isfile(marker):
    print("managed")
elif importlib.util.find_spec("pip") is None:
    print("nopip")
else:
    print("ok")
EOF
}

case "${USE_VENV:-auto}" in
    1) _use_venv=1 ;;
    0) _use_venv=0 ;;
    *) _state=$(_python_state "$PYTHON")
       case "$_state" in
           ok) _use_venv=0 ;;
           managed) _use_venv=1
                    _say "$PYTHON is externally managed (PEP 668): using the virtual" \
                         "environment $VENV_DIR/ instead." ;;
           nopip) _use_venv=1
                  _say "$PYTHON has no pip: using the virtual environment $VENV_DIR/." ;;
           *) _say "error: '$PYTHON' does not run as a Python interpreter."; exit 1 ;;
       esac ;;
esac

if [ "$_use_venv" = 1 ]; then
    if [ "$(_python_state "$VENV_DIR/bin/python")" != ok ]; then
        _say "creating $VENV_DIR/ with $PYTHON -m venv (once; later runs reuse it;" \
             "delete $VENV_DIR/ to start afresh)"
        rm -rf "$VENV_DIR"
        if ! "$PYTHON" -m venv "$VENV_DIR" >"$VENV_DIR.log" 2>&1; then
            rm -rf "$VENV_DIR"
            _say "error: '$PYTHON -m venv' failed:"
            sed 's/^/    /' "$VENV_DIR.log" >&2
            rm -f "$VENV_DIR.log"
            _version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' \
                       2>/dev/null || echo 3)
            _say "On Debian/Ubuntu, install the venv module, then run this command again:" \
                 "sudo apt-get install python3-venv (or python$_version-venv)."
            exit 1
        fi
        rm -f "$VENV_DIR.log"
    fi
    PYTHON=$VENV_DIR/bin/python
fi

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    _say "installing torch==2.13.0 (CPU build)"
    "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi
_say "installing retune_sklearn[$1] (editable) into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
"$PYTHON" -m pip install --quiet -e ".[$1]"
