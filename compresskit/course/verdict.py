"""Judge a claim about speed on the machine the notebook runs on: measured, shown, never asserted.

A claim that holds on every machine (accuracy at a fixed seed, bytes, MACs, agreement) is an
``assert`` in the chapters. A claim about speed depends on the CPU: a ratio of 3.7x on one
machine was 1.1x on a CPU a few years older. So a chapter measures it, shows it, and calls
:func:`judge`, which prints whether the claim holds *on this machine*, and where it does not,
what about this machine is the likely reason. The notebook goes on either way.

    >>> judge("int8 faster than float32 at batch 256", 1.11, above=1.5, hardware=("int8",))
    ⚠️ does not hold on this machine: int8 faster than float32 at batch 256: 1.11x, expected > 1.5x
       this machine: AMD EPYC 7551 ...; no int8 dot-product instructions (VNNI) ...
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from compresskit import measure
from compresskit._validation import check_real, check_type

HOLDS = "\u2705"      # shown before a claim that holds here
DOES_NOT = "\u26a0\ufe0f"  # a warning sign, not an error: the claim is about the hardware

TOPICS = ("cpu", "simd", "int8", "threads", "cache", "onnxruntime")


@dataclass(frozen=True)
class Verdict:
    """What :func:`judge` found: the claim, the measured value, and whether it holds here."""

    claim: str
    value: float
    holds: bool
    expected: str
    notes: tuple[str, ...]
    why: str | None = None
    random_clock: bool = False

    def __str__(self) -> str:
        if self.holds:
            text = f"{HOLDS} holds on this machine: {self.claim}: {self.value:.2f}x (expected {self.expected})"
            return text + (f"\n   but: {self.notes[-1]}" if self.random_clock else "")
        lines = [f"{DOES_NOT} does not hold on this machine: {self.claim}: {self.value:.2f}x, expected {self.expected}"]
        if self.why:
            lines.append(f"   likely why: {self.why}")
        lines.append("   this machine: " + "; ".join(self.notes))
        return "\n".join(lines)


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cache_sizes() -> str | None:
    sizes = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind != "Instruction":
            sizes.append(f"L{level} {size}")
    return ", ".join(sizes) if sizes else None


def machine_notes(topics: Sequence[str] = ("cpu",)) -> tuple[str, ...]:
    """Facts about this machine that decide speed claims, one short phrase per topic.

    ``cpu`` (model and cores), ``simd`` (the vector instructions torch's kernels use),
    ``int8`` (dot-product instructions for int8 GEMMs), ``threads`` (torch threads, cores,
    load), ``cache`` (cache sizes), ``onnxruntime`` (its version).
    """
    unknown = [t for t in topics if t not in TOPICS]
    if unknown:
        raise ValueError(f"`topics` must be drawn from {TOPICS}; got {unknown}")
    info = measure.machine_info()
    notes = []
    if "cpu" in topics:
        notes.append(f"{info['cpu']} ({platform.machine()}), {info['cores']} cores")
    if "simd" in topics:
        notes.append(f"torch's kernels use {torch.backends.cpu.get_cpu_capability()}")
    if "int8" in topics:
        flags = _cpu_flags()
        found = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"})
        notes.append(f"int8 dot-product instructions: {', '.join(found)}" if found else
                     "no int8 dot-product instructions (VNNI on x86, dotprod on ARM) reported by the CPU")
    if "threads" in topics:
        load = f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"
        notes.append(f"torch threads {torch.get_num_threads()} of {info['cores']} cores, load average {load}")
    if "cache" in topics:
        notes.append(f"caches {_cache_sizes() or 'not reported'}")
    if "onnxruntime" in topics:
        try:
            import onnxruntime

            notes.append(f"onnxruntime {onnxruntime.__version__}")
        except ImportError:
            notes.append("onnxruntime not installed")
    if measure.clock_is_random():
        notes.append(f"timings come from the random test clock ({measure.CLOCK_ENV}): they say nothing about this machine")
    return tuple(notes)


def judge(
    claim: str,
    value: float,
    *,
    above: float | None = None,
    below: float | None = None,
    why: str | None = None,
    hardware: Sequence[str] = (),
    show: bool = True,
) -> Verdict:
    """Print whether ``claim`` holds on this machine (``value`` above ``above`` and/or below
    ``below``) and return the :class:`Verdict`. Never raises because of the value measured.

    ``why`` says what about a machine would make the claim fail (printed only when it does);
    ``hardware`` names the :func:`machine_notes` topics worth showing then.
    """
    check_type("claim", claim, str)
    value = check_real("value", value, 0.0)
    if above is None and below is None:
        raise ValueError("`above` or `below` must be given: the claim needs a threshold; got neither")
    parts = []
    holds = True
    if above is not None:
        above = check_real("above", above)
        parts.append(f"> {above:g}x")
        holds &= value > above
    if below is not None:
        below = check_real("below", below)
        parts.append(f"< {below:g}x")
        holds &= value < below
    verdict = Verdict(claim=claim, value=value, holds=bool(holds), expected=" and ".join(parts),
                      notes=machine_notes(("cpu", *hardware)), why=why,
                      random_clock=measure.clock_is_random())
    if show:
        print(verdict)
    return verdict
