"""`import mnist_viz` from this checkout, whatever copy is installed.

The installed package maps the top-level folders compute/, viz/, shaders/ and
assets/ to mnist_viz.compute, mnist_viz.viz, ... (pyproject.toml). With
tests/checkout first on sys.path, this stand-in takes the name and points its
search path at the repository root, so the same names resolve to the folders of
this checkout: the tests, their subprocesses and the benchmarks run the code
next to them (a git worktree included), not an editable install elsewhere.
"""
from pathlib import Path

__path__ = [str(Path(__file__).resolve().parents[3])]
