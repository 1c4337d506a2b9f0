"""Language-model benchmark: perplexity and real bytes per method, and where an int4 weight pays on the CPU.

Quality: the course's trained TinyLM (compresskit.models.load_tiny_lm) quantized by
round-to-nearest, GPTQ and AWQ at 8 / 4 / 3 bits (Linear layers; the embeddings at 8 bits
where said), perplexity on the first 16 KiB of the test text as chapter 9 measures it
(compresskit.text), GPTQ and AWQ over chapter 9's calibration draws 0, 1 and 2 (8 windows of 256
bytes from the training text each; the chapter uses draw 0); bytes of the real file
(compresskit.llm.save_quantized) against the float32 file.

Speed:
A square Linear layer (K = N) is quantized to int4 with groups of 128 (round-to-nearest) and run
by ONNX Runtime's MatMulNBits (compresskit.llm.kernel), timed alternately against float32 in the
same runtime (Gemm) and against torch's float32 ``F.linear``. The layer grows from 256 x 256
(256 KiB in float32) past the last-level cache: at batch 1 (generation, one token at a time) each
weight is read once per call, so a layer that does not fit in cache is bound by memory traffic,
and int4's 8x fewer bytes can pay; a layer that fits in cache gains nothing from being smaller.
Ratios above 1 mean int4 is faster. Nothing here is asserted: it depends on the machine.
"""

from __future__ import annotations

import os
import tempfile

import torch

from benchmarks import table, torch_threads
from compresskit import llm, models, text

GROUP = 128


def last_level_cache() -> tuple[str, int]:
    """The largest CPU cache as Linux reports it, and its bytes (``("unknown", 0)`` elsewhere)."""
    best = (0, "unknown", 0)
    base = "/sys/devices/system/cpu/cpu0/cache"
    for index in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        try:
            with open(f"{base}/{index}/level") as f:
                level = int(f.read())
            with open(f"{base}/{index}/size") as f:
                size = f.read().strip()
        except OSError:
            continue
        if level >= best[0]:
            units = {"K": 2**10, "M": 2**20, "G": 2**30}
            best = (level, f"L{level} {size}", int(size.rstrip("KMG")) * units.get(size[-1], 1))
    return best[1], best[2]


def sizes_past(cache_bytes: int, cap: int = 16384) -> tuple[int, ...]:
    """Square layer sizes from 256, doubling until the float32 weight is at least twice the cache (at most ``cap``)."""
    sizes, n = [], 256
    target = 2 * cache_bytes if cache_bytes else 4 * 8192**2
    while n <= cap:
        sizes.append(n)
        if 4 * n * n >= target:
            break
        n *= 2
    return tuple(sizes)


def _quantized(n: int) -> llm.QuantizedWeight:
    """A random n x n weight quantized int4 g128, made in slices of rows so a large one fits in memory."""
    parts = [llm.quantize_rtn(torch.randn(min(1024, n - i), n, generator=torch.Generator().manual_seed(i)) * 0.02, 4, GROUP)
             for i in range(0, n, 1024)]
    return llm.QuantizedWeight(torch.cat([p.codes for p in parts]), torch.cat([p.scale for p in parts]),
                               torch.cat([p.zero_point for p in parts]), 4, GROUP)


def _row(n: int, batch: int, threads: int, accuracy_level: int) -> list[object]:
    q = _quantized(n)
    repeats = max(20, min(300, int(3e8 / (n * n * batch))))
    r = llm.kernel_latency(q, batch=batch, threads=threads, repeats=repeats, accuracy_level=accuracy_level)
    ort_fp32, torch_fp32 = r["vs_ort_float32"], r["vs_torch_float32"]
    fp32_mb = n * n * 4 / 2**20
    int4_mb = (n * n // 2 + n * (n // GROUP) * 4 + n * -(-(n // GROUP) // 2)) / 2**20  # codes, float32 scales, 4-bit zero points
    return [
        f"{n} x {n}", batch, threads, accuracy_level, f"{fp32_mb:.2f}", f"{int4_mb:.2f}",
        f"{ort_fp32.a.median * 1e3:.3f}", f"{ort_fp32.b.median * 1e3:.3f}", f"{torch_fp32.b.median * 1e3:.3f}",
        f"**{1 / ort_fp32.ratio:.2f}x**", f"{1 / torch_fp32.ratio:.2f}x",
    ]


def _file_ratio(model: torch.nn.Module, quantized: torch.nn.Module) -> float:
    with tempfile.TemporaryDirectory() as d:
        return llm.save_quantized(f"{d}/q", llm.quantized_state_dict(quantized)) / llm.save_quantized(f"{d}/f", model.state_dict())


def quality(draws: int = 3) -> str:
    """Perplexity and file bytes per method (the trained model from datasets/; a note if it is missing)."""
    try:
        model = models.load_tiny_lm("main")
    except (ValueError, FileNotFoundError, OSError) as exc:
        return f"(no perplexity table: the trained model could not be loaded: {exc})"
    split = text.load_text_split()
    scored = split.test[:16384]  # the chapter's text
    base = text.perplexity(model, scored, 256)
    cal = [[x for x, _ in text.batches(split.train, 8, 256, seed=d, steps=1)] for d in range(draws)]
    rows = [["float32", "-", "-", f"{base:.4f}", "-", "1.000"]]
    settings = [(8, None, 8), (4, 128, 8), (4, 32, 8), (4, 128, None), (3, 128, 8), (3, 32, 8)]
    for bits, group, emb in settings:
        for method in ("rtn", "gptq", "awq"):
            runs = [llm.quantize_model(model, method, bits, group, c, embedding_bits=emb) for c in (cal[:1] if method == "rtn" else cal)]
            ppl = [text.perplexity(m, scored, 256) for m in runs]
            rows.append([method, f"{bits}-bit {'per channel' if group is None else f'g{group}'}", "float32" if emb is None else f"{emb}-bit",
                         " / ".join(f"{p:.4f}" for p in ppl), " / ".join(f"{100 * (p / base - 1):+.2f}%" for p in ppl),
                         f"{_file_ratio(model, runs[0]):.3f}"])
    return table(["method", "Linear weights", "embeddings", "test perplexity, 16 KiB (per draw)", "vs float32", "file / float32 file"], rows)


def run(sizes: tuple[int, ...] | None = None) -> str:
    cache, cache_bytes = last_level_cache()
    sizes = sizes_past(cache_bytes) if sizes is None else sizes
    rows = []
    with torch_threads(1):
        for n in sizes:
            for accuracy_level in (0, 4):
                rows.append(_row(n, 1, 1, accuracy_level))
            if n <= 4096:  # batch 64 reuses each weight 64 times: compute, not memory, decides
                rows.append(_row(n, 64, 1, 0))
    threads = os.cpu_count() or 1
    if threads > 1:
        with torch_threads(threads):
            for n in sizes[-2:]:
                rows.append(_row(n, 1, threads, 0))
    header = ["layer", "batch", "threads", "accuracy_level", "fp32 MiB", "int4 MiB", "int4 (ms)", "ORT fp32 (ms)",
              "torch fp32 (ms)", "int4 speed-up vs ORT fp32", "vs torch fp32"]
    return "\n".join([
        "### Language models: quantization quality and bytes",
        "",
        quality(),
        "",
        "### Language models: an int4 kernel on the CPU",
        "",
        f"Last-level cache: {cache}. int4 g{GROUP} weights (round-to-nearest) in ONNX Runtime's "
        "MatMulNBits against float32; speed-up = float32 median / int4 median, timed alternately in one run "
        "(above 1: int4 is faster). accuracy_level 0 multiplies in float32 (outputs equal to the dequantized "
        "layer, asserted in tests/test_llm_kernel.py); 4 quantizes the activations to int8 as well.",
        "",
        table(header, rows),
    ])


if __name__ == "__main__":
    print(run())
