"""Every ```python block of README.md runs as written, in a fresh namespace.

Each block is self-contained (imports, data from ``retune_sklearn.datasets``)
and ends with its expected output and run time in a comment::

    print(...)
    # Prints (about 20 s on 2 CPU cores):
    # 30.97 dB

By default the blocks run in a *quick mode*, so that the whole README takes
seconds: the generated problems have at most 4 training and 2 test samples,
every fit runs at most one epoch of solves of at most K=5, T=2 iterations,
and a Dask ``LocalCluster`` runs its
workers as threads of this process. The code paths are those of the README;
only the sizes shrink. With ``README_FULL=1`` in the environment, the blocks
run unchanged and their printed output must equal the ``# Prints`` comment
(minutes)::

    README_FULL=1 python -m pytest tests/test_readme.py

A block preceded by ``<!-- skip-test: reason -->`` is skipped with that
reason.
"""

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FULL = os.environ.get("README_FULL", "") not in ("", "0")
QUICK_SAMPLES = {"n_train": 4, "n_test": 2}
QUICK_FIT = {"max_epochs": 1, "K": 5, "T": 2}  # upper bounds

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_SKIP = re.compile(r"<!--\s*skip-test:\s*(.*?)\s*-->\s*\Z", re.S)
_PRINTS = re.compile(r"^# Prints \(([^)]*)\):\n((?:#.*\n?)*)\Z", re.M)


def _blocks():
    """(line of the block's first code line, section heading, code, skip reason)."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in _BLOCK.finditer(text):
        before = text[:match.start()]
        line = before.count("\n") + 2
        prose = re.sub(r"^```.*?^```", "", before, flags=re.S | re.M)  # no code comments
        headings = re.findall(r"^#+ (.*)$", prose, re.M)
        skip = _SKIP.search(before)
        blocks.append((line, headings[-1] if headings else "top", match.group(1),
                       skip.group(1) if skip else None))
    return blocks


BLOCKS = _blocks()
IDS = [f"L{line}-{re.sub(r'[^a-z0-9]+', '-', heading.lower()).strip('-')}"
       for line, heading, _, _ in BLOCKS]


def _expected_output(code):
    """The ``# Prints (...):`` comment lines at the end of a block, without ``# ``."""
    match = _PRINTS.search(code)
    if match is None:
        return None
    return [line[2:] if line.startswith("# ") else line[1:]
            for line in match.group(2).splitlines()]


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("line, heading, code, skip", BLOCKS, ids=IDS)
def test_block_shows_its_output_and_time(line, heading, code, skip):
    expected = _expected_output(code)
    assert expected, (f"README.md line {line} ({heading}): end the block with "
                      "'# Prints (about N s on 2 CPU cores):' and the output, one '# ' line each")
    time_note = _PRINTS.search(code).group(1)
    assert re.search(r"\d+ s\b", time_note), f"no run time in '# Prints ({time_note}):'"


@pytest.fixture
def quick(monkeypatch):
    """Shrink the README's problems and fits (not in README_FULL mode)."""
    if FULL:
        return
    from retune_sklearn import ReTuneRegularizer, datasets

    make_image_problem = datasets.make_image_problem

    def small_image_problem(*args, **kwargs):
        for name, cap in QUICK_SAMPLES.items():
            kwargs[name] = min(kwargs.get(name, cap), cap)
        return make_image_problem(*args, **kwargs)

    monkeypatch.setattr(datasets, "make_image_problem", small_image_problem)

    fit = ReTuneRegularizer.fit

    def short_fit(self, X, y=None, **kwargs):
        for name, cap in QUICK_FIT.items():
            if getattr(self, name) != "auto":  # K="auto" chooses at most 50 (1 on denoising)
                setattr(self, name, min(getattr(self, name), cap))  # transform uses them too
        return fit(self, X, y, **kwargs)

    monkeypatch.setattr(ReTuneRegularizer, "fit", short_fit)

    try:
        import dask.distributed
    except ImportError:
        return
    local_cluster = dask.distributed.LocalCluster

    def in_process_cluster(*args, **kwargs):
        # Worker processes would not see the patches above (and take seconds to start).
        return local_cluster(*args, **{**kwargs, "processes": False,
                                       "dashboard_address": None})

    monkeypatch.setattr(dask.distributed, "LocalCluster", in_process_cluster)


@pytest.mark.parametrize("line, heading, code, skip", BLOCKS, ids=IDS)
def test_block_runs(line, heading, code, skip, quick, capsys):
    if skip:
        pytest.skip(f"README.md line {line}: {skip}")
    if "dask" in code:
        pytest.importorskip("dask.distributed")
    if "make_image_problem" in code or "make_denoising_problem" in code:
        pytest.importorskip("skimage")
    # Padded with newlines so that tracebacks give README.md's line numbers.
    compiled = compile("\n" * (line - 1) + code, str(README), "exec")
    exec(compiled, {"__name__": "__main__"})
    printed = capsys.readouterr().out.splitlines()
    expected = _expected_output(code)
    if FULL:
        assert printed == expected
    else:
        assert len(printed) == len(expected)
