"""Benchmarks: tables of ratios measured in one run, with the machine they ran on.

``make bench`` (``python -m benchmarks``) runs every ``bench_*.py`` module here and writes
``benchmarks/RESULTS.md``; ``python -m benchmarks pruning notebooks`` runs only those.
Each module exposes ``run() -> str``, a Markdown section.
"""
