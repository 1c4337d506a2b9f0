"""Run the benchmarks and write benchmarks/RESULTS.md (see benchmarks/__init__.py)."""

from __future__ import annotations

import datetime
import importlib
import sys
import time
from pathlib import Path

from compresskit.measure import machine_info

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> None:
    available = sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; available: {available}")
    info = machine_info()
    parts = [
        "# Benchmark results",
        "",
        f"Measured {datetime.date.today().isoformat()} by `make bench` on: "
        + ", ".join(f"{k} {v}" for k, v in info.items()) + ".",
        "Latency ratios are medians of alternating timings in one run (compresskit.measure.latency_ratio).",
        "",
    ]
    for name in names or available:
        start = time.perf_counter()
        print(f"running benchmarks/bench_{name}.py ...", file=sys.stderr, flush=True)
        section = importlib.import_module(f"benchmarks.bench_{name}").run()
        parts += [section.strip(), "", f"_({time.perf_counter() - start:.0f} s to measure)_", ""]
    text = "\n".join(parts)
    out = HERE / ("RESULTS.md" if not names else "RESULTS-partial.md")
    out.write_text(text)
    print(text)
    print(f"\nwrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
