"""Repository-wide pytest set-up, loaded for every run in this checkout, a lone notebook too.

The exercise checkers record a learner's progress in their home
(``compresskit.course.progress``). The tests, and the notebooks nbval and nbclient execute
(their kernels inherit this process's environment), record into a throwaway file instead.

Trained models are cached (``compresskit.cache``) in a fresh folder per test session, never the
learner's: every notebook's first run in a session trains for real, as on a fresh machine, so
CI measures and checks honest first runs; later runs of the same chapter in the session (the
random-clock and browser tests) load what the first one trained, bit for bit the same weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile

# book/record.py keeps each notebook nbval runs in build/executed/, for the site (`make book`,
# tests/test_book.py), so the site reuses this run instead of executing the chapters again.
pytest_plugins = ["book.record"]

_progress_dir = tempfile.mkdtemp(prefix="compresskit-progress-")
_cache_dir = tempfile.mkdtemp(prefix="compresskit-cache-")


def pytest_configure(config):
    os.environ["COMPRESSKIT_PROGRESS"] = os.path.join(_progress_dir, "progress.jsonl")
    os.environ["COMPRESSKIT_CACHE"] = _cache_dir


def pytest_unconfigure(config):
    shutil.rmtree(_progress_dir, ignore_errors=True)
    shutil.rmtree(_cache_dir, ignore_errors=True)
