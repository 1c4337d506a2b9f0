"""Repository-wide pytest set-up, loaded for every run in this checkout, a lone notebook too.

The exercise checkers record a learner's progress in their home
(``compresskit.course.progress``). The tests, and the notebooks nbval and nbclient execute
(their kernels inherit this process's environment), record into a throwaway file instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_progress_dir = tempfile.mkdtemp(prefix="compresskit-progress-")


def pytest_configure(config):
    os.environ["COMPRESSKIT_PROGRESS"] = os.path.join(_progress_dir, "progress.jsonl")


def pytest_unconfigure(config):
    shutil.rmtree(_progress_dir, ignore_errors=True)
