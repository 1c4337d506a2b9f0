"""Benchmarks: tables of ratios measured in one run, with the machine they ran on.

``make bench`` (``python -m benchmarks``) runs every ``bench_*.py`` module here and writes
``benchmarks/RESULTS.md``; ``python -m benchmarks pruning notebooks`` runs only those.
Each module exposes ``run() -> str``, a Markdown section.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, then restore the caller's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
